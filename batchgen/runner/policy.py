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

    def pause_after_failures(
        self, failures: int, *, unreachable: bool, rng: random.Random, ceiling: float
    ) -> float:
        """How long every create waits after `failures` creates in a row were not carried out:
        from the first when no connection could be made (at most `ceiling`, so the provider's
        return, or the stop, is seen in time), from the third 5xx; 0 for no pause."""
        in_a_row = failures if unreachable else failures - 2
        if in_a_row < 1:
            return 0.0
        pause = self.backoff(in_a_row, rng)
        return min(pause, ceiling) if unreachable else pause

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
    first_poll: float = 0.5  # before any task has finished: the first poll, this long in
    growth: float = 0.2  # then every this share of the time waited (also past the slowest seen)
    # A slot may idle this share of a generation, on average, before the run learns it ended:
    # polls are spaced 2 * idle_target * the mean generation time between the fastest and the
    # slowest generation seen. 5 % keeps slots 95 % busy at about 6 polls a task.
    idle_target: float = 0.05
    min_interval: float = 0.05
    max_interval: float = 30.0
    fixed_interval: float | None = None  # poll every N s instead (the naive baseline)
    # Callbacks report the ends: polls only catch those that never come, from this many times
    # the slowest generation seen, then at growing intervals.
    backup_after: float | None = None


class PollSchedule:
    """When to next ask about a task, from the generation times seen so far.

    Before any task has finished: a first poll after `first_poll` seconds, then polls spaced a
    `growth` share of the time waited (a 200 s generation costs about thirty polls, and is
    seen within 20 % of its end). Once times are known: the first poll one spacing after the
    fastest time seen (at the slowest, where that is sooner), then evenly spaced polls up to
    the slowest, then growing intervals.
    Even spacing is close to the best idle-versus-calls trade-off for the spreads seen so far
    (a numeric model put it about 12 % more idle than a hazard-shaped schedule at the same
    number of queries). With callbacks (`backup_after`) polls wait for the slowest time seen.
    """

    def __init__(self, config: PollConfig | None = None, window: int = 200) -> None:
        self.config = config or PollConfig()
        self._window: deque[float] = deque(maxlen=window)
        self._sorted: list[float] = []
        self.provider_clock_trusted = False

    def learn(self, last_running: float | None, seen_done: float, provider: float | None) -> float:
        """Learn from a task seen done (see `generation_seconds`); returns how long it took."""
        if provides_a_trustworthy_clock(last_running, seen_done, provider):
            self.provider_clock_trusted = True
        took = generation_seconds(
            last_running,
            seen_done,
            provider,
            self.spacing,
            provider_clock_trusted=self.provider_clock_trusted,
        )
        self.observe(took)
        return took

    def observe(self, generation_seconds: float) -> None:
        if len(self._window) == self._window.maxlen:
            del self._sorted[bisect.bisect_left(self._sorted, self._window[0])]
        self._window.append(generation_seconds)
        bisect.insort(self._sorted, generation_seconds)

    @property
    def expected(self) -> float:
        """The mean generation time seen (the first poll's delay before any was seen)."""
        if not self._sorted:
            return self.config.first_poll
        return sum(self._sorted) / len(self._sorted)

    def first_delay(self) -> float:
        c = self.config
        if c.fixed_interval is not None:
            return c.fixed_interval
        if not self._sorted:
            return c.first_poll
        if c.backup_after is not None:
            return max(c.min_interval, c.backup_after * self._sorted[-1])
        return max(c.min_interval, self._first_poll_at())

    def next_delay(self, waited: float) -> float:
        """Delay after a poll that found the task still running, `waited` s after submission."""
        c = self.config
        if c.fixed_interval is not None:
            return c.fixed_interval
        growing = min(c.max_interval, max(c.min_interval, c.growth * waited))
        if not self._sorted or c.backup_after is not None:
            return growing
        fastest, slowest = self._sorted[0], self._sorted[-1]
        if waited < fastest:
            return max(c.min_interval, self._first_poll_at() - waited)
        return self.spacing if waited < slowest else max(self.spacing, growing)

    def _first_poll_at(self) -> float:
        """One spacing after the fastest time seen, or at the slowest where that comes first:
        times are counted from the create's answer, which comes after the provider started the
        task, so tasks no slower than any seen have all ended by then (one poll, no idle
        spacing, where every generation takes the same time)."""
        return min(self._sorted[0] + self.spacing, self._sorted[-1])

    @property
    def spacing(self) -> float:
        """The time between two polls of a task while it may end."""
        c = self.config
        return min(c.max_interval, max(c.min_interval, 2 * c.idle_target * self.expected))


def generation_seconds(
    last_running: float | None,
    seen_done: float,
    provider: float | None,
    gap: float,
    *,
    provider_clock_trusted: bool = False,
) -> float:
    """How long a task took, from what the run saw: it was running `last_running` s after its
    submission (None if never seen so: the span starts at 0, and without a believable provider
    figure the end is taken as 1.5 poll `gap`s before `seen_done`, so that the first poll of
    the next tasks moves earlier until it finds them running, rather than later) and done at
    `seen_done` s.
    The provider's own figure (updated_at − created_at) is believed when it falls inside that
    span and clear of its end: a relay that stamps `updated_at` with the time it was asked
    would otherwise pass our own polling delay off as generation time, and stretch the
    schedule. Once its clock is trusted (`provides_a_trustworthy_clock`), a figure at the very
    end is believed too: a task seen done by a poll right at its end (a well-tuned schedule)."""
    earliest = 0.0 if last_running is None else last_running
    margin = _clear_of(earliest, seen_done)
    latest = seen_done + margin if provider_clock_trusted else seen_done - margin
    if provider is not None and earliest - margin <= provider <= latest:
        return min(provider, seen_done)
    if last_running is None:
        return max(0.0, seen_done - 1.5 * gap)
    return (last_running + seen_done) / 2


def provides_a_trustworthy_clock(
    last_running: float | None, seen_done: float, provider: float | None
) -> bool:
    """A provider figure strictly inside a span the run saw (running at one poll, done at the
    next, the figure clear of both) is the task's own time: a clock stamped by our queries
    cannot land there."""
    if last_running is None or provider is None:
        return False
    return last_running < provider <= seen_done - _clear_of(last_running, seen_done)


def _clear_of(earliest: float, seen_done: float) -> float:
    """How far inside a seen span a provider figure must fall to be its own, not our poll's."""
    return max(0.05, 0.1 * (seen_done - earliest))
