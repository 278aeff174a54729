"""Seeded fault decisions. One `random.Random(seed)` decides every fault in arrival order, so
a seeded run with the same sequence of requests meets the same faults."""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import StrEnum

from batchgen.simulator.config import SimulatorConfig

CUT_JSON_BYTES = 20
RETRY_AFTER_SHARE = 0.5


class Fault(StrEnum):
    """What goes wrong with one request."""

    SERVER_ERROR = "server_error"  # a 5xx answer instead of the real one
    RESET_BEFORE_ACCEPT = "reset_before_accept"  # connection dropped, no task recorded
    RESET_AFTER_ACCEPT = "reset_after_accept"  # task recorded, connection dropped
    GATEWAY_TIMEOUT = "gateway_timeout"  # create processed, answered 524 with an HTML page
    MALFORMED_ANSWER = "malformed_answer"  # task recorded, answered 200 with a broken body
    SLOW = "slow"  # the answer comes `slow_seconds` late
    NOT_FOUND_GRACE = "not_found_grace"  # a new task answered "not found"
    TRUNCATE = "truncate"  # a download stops early and the connection closes
    HTML_PAGE = "html_page"  # a download answered 200 with an HTML page (defects.py)
    MISSING_VIDEO = "missing_video"  # a task succeeds with no video in its result


CREATE_ONLY = (
    Fault.RESET_BEFORE_ACCEPT,
    Fault.RESET_AFTER_ACCEPT,
    Fault.GATEWAY_TIMEOUT,
    Fault.MALFORMED_ANSWER,
)


@dataclass
class Faults:
    """Draws faults for API calls, downloads and callbacks from one seeded generator."""

    rng: random.Random

    def for_api_call(self, config: SimulatorConfig, is_create: bool) -> Fault | None:
        """The fault an API call meets, if any; some only happen to creates."""
        bands = (
            (Fault.SERVER_ERROR, config.error_rate),
            (Fault.RESET_BEFORE_ACCEPT, config.reset_before_accept_rate),
            (Fault.RESET_AFTER_ACCEPT, config.reset_after_accept_rate),
            (Fault.GATEWAY_TIMEOUT, config.gateway_timeout_rate),
            (Fault.MALFORMED_ANSWER, config.malformed_answer_rate),
            (Fault.SLOW, config.slow_rate),
        )
        roll = self.rng.random()
        for fault, rate in bands:
            rate = rate if is_create or fault not in CREATE_ONLY else 0.0
            if roll < rate:
                return fault
            roll -= rate
        return None

    def cut_at(self, config: SimulatorConfig, length: int) -> int | None:
        """Where a download of `length` bytes stops (a fault), or None to send it all."""
        if length < 2 or self.rng.random() >= config.truncate_rate:
            return None
        return max(1, int(length * self.rng.uniform(0.1, 0.9)))

    def malformed_length(self) -> int | None:
        """How many bytes of the real answer a malformed one keeps; None: an HTML page instead."""
        return CUT_JSON_BYTES if self.rng.random() < 0.5 else None

    def retry_after(self, config: SimulatorConfig) -> int | None:
        """The Retry-After seconds a throttling 429 carries, if any."""
        if config.retry_after is None or self.rng.random() >= RETRY_AFTER_SHARE:
            return None
        return config.retry_after

    def drops_callback(self, config: SimulatorConfig) -> bool:
        return self.rng.random() < config.callback_drop_rate
