"""What to do after a provider error, and when to poll a task. Pure: values in, values out.

Retries are scheduled, not slept: a decision carries a delay that the runner turns into the
job's `not_before` in the state, so a back-off survives a restart. That is why this is not a
retry decorator (stamina, tenacity): those sleep inside one call of one process.
"""

from __future__ import annotations

import bisect
import random
from collections import deque
from dataclasses import dataclass
from enum import StrEnum

from batchgen.errors import (
    AccountError,
    ConnectFailed,
    DuplicateExternalId,
    OutcomeUnknown,
    ProviderError,
    ProviderUnreachable,
    RetryableError,
    ThrottledError,
)


class Action(StrEnum):
    RETRY = "retry"  # not carried out: try again after `delay`, counts as an attempt
    WAIT = "wait"  # throttled or unreachable: try again after `delay`, not a failure
    SETTLE = "settle"  # the provider may hold the task: look it up, or mark the job unknown
    FAIL_JOB = "fail_job"
    STOP_RUN = "stop_run"


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    delay: float = 0.0
    reason: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """Exponential back-off with jitter, bounded by a number of attempts; throttling waits
    grow with the throttles in a row and honour the provider's Retry-After."""

    max_attempts: int = 8
    base_delay: float = 1.0
    max_delay: float = 60.0
    throttle_base: float = 1.0  # Kling: back off from at least 1 s (kling-api.md §17 E15)
    throttle_max: float = 60.0

    def backoff(self, attempt: int, rng: random.Random) -> float:
        """Delay before retry number `attempt` (1-based): uniform in [base/2, base·2^(n-1)]."""
        ceiling = min(self.max_delay, self.base_delay * 2 ** max(attempt - 1, 0))
        return rng.uniform(min(self.base_delay / 2, ceiling), ceiling)

    def throttle_wait(self, consecutive: int, rng: random.Random) -> float:
        """Wait after the `consecutive`-th throttle in a row: uniform in [c/2, c] where
        c = base·2^(n-1) (at least `throttle_base`, at most `throttle_max`)."""
        ceiling = min(self.throttle_max, self.throttle_base * 2 ** max(consecutive - 1, 0))
        return max(self.throttle_base, rng.uniform(ceiling / 2, ceiling))

    def decide(
        self, error: ProviderError, attempts: int, throttles: int, rng: random.Random
    ) -> Decision:
        """What to do after a create failed. `attempts`: counted failures the job had before;
        `throttles`: throttled answers in a row, this one included."""
        reason = error.describe()
        if isinstance(error, AccountError | ProviderUnreachable):
            return Decision(Action.STOP_RUN, reason=reason)
        if isinstance(error, DuplicateExternalId | OutcomeUnknown):
            return Decision(Action.SETTLE, reason=reason)
        if isinstance(error, ThrottledError):
            wait = self.throttle_wait(throttles, rng)
            return Decision(Action.WAIT, max(wait, error.retry_after or 0.0), reason)
        if isinstance(error, ConnectFailed):
            return Decision(Action.WAIT, self.backoff(2, rng), reason)
        if isinstance(error, RetryableError):
            if attempts + 1 >= self.max_attempts:
                return Decision(
                    Action.FAIL_JOB, reason=f"gave up after {attempts + 1} tries: {reason}"
                )
            delay = max(self.backoff(attempts + 1, rng), error.retry_after or 0.0)
            return Decision(Action.RETRY, delay, reason)
        return Decision(Action.FAIL_JOB, reason=reason)


@dataclass(frozen=True, slots=True, kw_only=True)
class PollConfig:
    initial_estimate: float = 2.0  # seconds of generation assumed before any task finished
    min_interval: float = 0.05
    max_interval: float = 30.0
    quantiles: tuple[float, ...] = (0.5, 0.8, 0.95, 1.0)  # poll as these shares would be done
    margin: float = 1.01  # poll this much after a quantile, to find the task finished
    backoff_fraction: float = 0.2  # past the slowest seen: this share of the time waited
    fixed_interval: float | None = None  # poll every N s instead (the naive baseline)


class PollSchedule:
    """When to next ask about a task. The generation times seen so far set the schedule: the
    first poll just after the median, then after the 80th and 95th percentile and the slowest,
    then at intervals that grow with the time already waited. A narrow spread of times is
    caught by the first poll; a wide one costs about two polls a task."""

    def __init__(self, config: PollConfig | None = None, window: int = 200) -> None:
        self.config = config or PollConfig()
        self._window: deque[float] = deque(maxlen=window)
        self._sorted: list[float] = []

    def observe(self, generation_seconds: float) -> None:
        if len(self._window) == self._window.maxlen:
            del self._sorted[bisect.bisect_left(self._sorted, self._window[0])]
        self._window.append(generation_seconds)
        bisect.insort(self._sorted, generation_seconds)

    @property
    def expected(self) -> float:
        return self._quantile(0.5)

    def first_delay(self) -> float:
        if self.config.fixed_interval is not None:
            return self.config.fixed_interval
        return max(self._floor(), self.expected * self.config.margin)

    def next_delay(self, waited: float) -> float:
        """Delay after a poll that found the task still running, `waited` s after submission."""
        c = self.config
        if c.fixed_interval is not None:
            return c.fixed_interval
        floor = self._floor()
        for q in c.quantiles:
            at = self._quantile(q) * c.margin
            if at - waited >= floor:
                return at - waited
        return min(c.max_interval, max(floor, c.backoff_fraction * waited))

    def _quantile(self, q: float) -> float:
        if not self._sorted:
            return self.config.initial_estimate
        return self._sorted[min(len(self._sorted) - 1, int(q * len(self._sorted)))]

    def _floor(self) -> float:
        """The shortest wait between polls: a small share of the expected generation time."""
        return max(self.config.min_interval, 0.02 * self.expected)
