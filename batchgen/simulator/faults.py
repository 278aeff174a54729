"""Seeded fault decisions. One `random.Random(seed)` decides every fault in arrival order, so
a seeded run with the same sequence of requests meets the same faults."""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from batchgen.simulator.config import SimulatorConfig
from batchgen.simulator.envelopes import gateway_error, kling_error

KLING_5XX = ((5000, 500), (5001, 503), (5002, 504))
GATEWAY_5XX = (500, 502, 503)


class Fault(StrEnum):
    """What goes wrong with one request."""

    SERVER_ERROR = "server_error"  # a 5xx answer instead of the real one
    RESET_BEFORE_ACCEPT = "reset_before_accept"  # connection dropped, no task recorded
    RESET_AFTER_ACCEPT = "reset_after_accept"  # task recorded, connection dropped
    SLOW = "slow"  # the answer comes `slow_seconds` late
    TRUNCATE = "truncate"  # a download stops early and the connection closes
    HTML_PAGE = "html_page"  # a download answered 200 with an HTML page (defects.py)


@dataclass
class Faults:
    """Draws faults for API calls and downloads from one seeded generator."""

    rng: random.Random

    def for_api_call(self, config: SimulatorConfig, is_create: bool) -> Fault | None:
        """The fault an API call meets, if any; resets only happen to creates."""
        bands = (
            (Fault.SERVER_ERROR, config.error_rate),
            (Fault.RESET_BEFORE_ACCEPT, config.reset_before_accept_rate if is_create else 0.0),
            (Fault.RESET_AFTER_ACCEPT, config.reset_after_accept_rate if is_create else 0.0),
            (Fault.SLOW, config.slow_rate),
        )
        roll = self.rng.random()
        for fault, rate in bands:
            if roll < rate:
                return fault
            roll -= rate
        return None

    def cut_at(self, config: SimulatorConfig, length: int) -> int | None:
        """Where a download of `length` bytes stops (a fault), or None to send it all."""
        if length < 2 or self.rng.random() >= config.truncate_rate:
            return None
        return max(1, int(length * self.rng.uniform(0.1, 0.9)))

    def server_error(self, request_id: str) -> tuple[int, dict[str, Any]]:
        """A 5xx answer: half in Kling's envelope, half in CometAPI's gateway envelope."""
        if self.rng.random() < 0.5:
            code, status = self.rng.choice(KLING_5XX)
            return status, kling_error(code, request_id)
        status = self.rng.choice(GATEWAY_5XX)
        return status, gateway_error(status, request_id)
