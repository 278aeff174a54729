"""Faults in what a download delivers, drawn on demand (SimulatorConfig's *_rate knobs) from a
seeded generator of their own, so that switching them on does not change which API faults a
seeded run meets. Nothing is drawn while every rate is 0."""

from __future__ import annotations

import random

from batchgen.simulator.config import VIDEO_DEFECT_RATES, SimulatorConfig
from batchgen.simulator.footage import Defect

HTML_PAGE = (
    b"<!DOCTYPE html>\n<html><head><title>Access Denied</title></head>\n"
    b"<body><h1>Access Denied</h1><p>You don't have permission to access this resource.</p>"
    b"</body></html>\n"
)


def draw_defect(rng: random.Random, config: SimulatorConfig) -> Defect | None:
    """The defect a new task's video gets, if any."""
    rates = [
        (Defect(name.removesuffix("_rate")), getattr(config, name)) for name in VIDEO_DEFECT_RATES
    ]
    if not any(rate for _, rate in rates):
        return None
    roll = rng.random()
    for defect, rate in rates:
        if roll < rate:
            return defect
        roll -= rate
    return None


def draw_html_page(rng: random.Random, config: SimulatorConfig) -> bool:
    """Whether a download is answered 200 with HTML_PAGE instead of the video."""
    return config.html_rate > 0 and rng.random() < config.html_rate
