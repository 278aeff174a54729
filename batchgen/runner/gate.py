"""The gate creates pass before they are sent, beside the slot limiter: closed while a throttle
lasts (1302, 1303, any 429) and while creates are paused after failures in a row (no
connection, 5xx). Throttles that arrive together count once, and so do failures: they met one
throttle, one outage. Times are the event loop's monotonic clock, given by the caller."""

from __future__ import annotations

import random

from batchgen.runner.policy import RetryPolicy


class CreateGate:
    """When the next create may leave, and how many throttles and failures came in a row."""

    def __init__(self, policy: RetryPolicy, rng: random.Random, pause_ceiling: float) -> None:
        self._policy = policy
        self._rng = rng
        self._ceiling = pause_ceiling  # the longest pause after failures
        self.throttles = 0  # throttled creates in a row
        self.throttled_until = 0.0  # no create before this
        self.failures = 0  # creates in a row that were not carried out
        self.paused_until = 0.0  # no create before this either

    def opens_at(self) -> float:
        """The time before which no create is sent."""
        return max(self.throttled_until, self.paused_until)

    def accepted(self) -> None:
        """A create went through: nothing in a row any more."""
        self.throttles = self.failures = 0

    def throttled(self, now: float) -> int:
        """A create was throttled; returns the throttles in a row, this one included (those
        answered while the gate is already closed for a throttle count once)."""
        if now >= self.throttled_until:
            self.throttles += 1
        return self.throttles

    def close_for_throttle(self, until: float) -> None:
        self.throttled_until = max(self.throttled_until, until)

    def failed(self, now: float, *, unreachable: bool) -> None:
        """A create was not carried out: pause all creates, at once when no connection could be
        made, from the third 5xx in a row (failures during a pause count once)."""
        if now < self.paused_until:
            return
        self.failures += 1
        pause = self._policy.pause_after_failures(
            self.failures, unreachable=unreachable, rng=self._rng, ceiling=self._ceiling
        )
        self.paused_until = now + pause

    def open(self) -> None:
        """Nothing is waited for any more (the run stops submitting)."""
        self.throttled_until = self.paused_until = 0.0

    def waits(self, now: float) -> tuple[float, float]:
        """Seconds left of the throttle and of the pause (0 when none), for the heartbeat."""
        return max(0.0, self.throttled_until - now), max(0.0, self.paused_until - now)
