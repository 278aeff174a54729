"""What to do after a provider error, and when to poll a task. Pure: values in, values out.

Retries are scheduled, not slept: a decision carries a delay that the runner turns into the
job's `not_before` in the state, so a back-off survives a restart. That is why this is not a
retry decorator (stamina, tenacity): those sleep inside one call of one process.
"""

from __future__ import annotations

import bisect
import random
from collections import deque
from collections.abc import Callable
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
from batchgen.runner.generation_times import ANY_KIND, Kind, Typical, typical


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
    # Before a task of a kind has ended, its first polls go across the range the table gives
    # for its kind (generation_times.py): `prior_polls` of them, evenly to the range's end.
    expected: Callable[[Kind], Typical] = typical
    prior_polls: int = 3
    # The table may be far off (a relay, a simulator): until a task has ended, polls also climb
    # from `first_poll` by `growth` to that range, one task of each kind asking for its siblings.
    # False where the range is known (the demo's simulator).
    hedge: bool = True
    first_poll: float = 0.5
    growth: float = 0.2  # also past the slowest time seen: every this share of the time waited
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


class _Seen:
    """The generation times seen of one kind, the last `window` of them, sorted too."""

    def __init__(self, window: int) -> None:
        self.times: deque[float] = deque(maxlen=window)
        self.sorted: list[float] = []

    def add(self, seconds: float) -> None:
        if len(self.times) == self.times.maxlen:
            del self.sorted[bisect.bisect_left(self.sorted, self.times[0])]
        self.times.append(seconds)
        bisect.insort(self.sorted, seconds)

    def replace(self, old: float, new: float) -> None:
        """`old`, where still in the window, becomes `new` in its place."""
        try:
            self.times[self.times.index(old)] = new
        except ValueError:
            return
        del self.sorted[bisect.bisect_left(self.sorted, old)]
        bisect.insort(self.sorted, new)


@dataclass(frozen=True, slots=True)
class _Doubted:
    """A time learned while the provider's clock was not yet trusted, with what it came from:
    learned again once the clock is trusted."""

    kind: Kind
    took: float
    last_running: float | None
    seen_done: float
    provider: float
    gap: float


class PollSchedule:
    """When to next ask about a task, from its kind (model, mode, duration) and the generation
    times seen so far. Pure: times in, delays out, no clock.

    Times seen of the task's kind: the first poll one spacing after the fastest time seen (at
    the slowest, where that is sooner), then evenly spaced polls up to the slowest, then growing
    intervals. Even spacing is close to the best idle-versus-calls trade-off for the spreads
    seen so far (a numeric model put it about 12 % more idle than a hazard-shaped schedule at
    the same number of queries).
    None seen of its kind: the table's range for it (scaled by how the kinds seen compare with
    their ranges, once any has been seen), `prior_polls` polls across it, then growing
    intervals; with `hedge`, while nothing has ended at all, polls climb from `first_poll` by
    `growth` up to that range, and a task is not asked about at an age where a sibling of its
    kind was already found running (`covered`): one task asks for all.
    With callbacks (`backup_after`) polls wait for the slowest time expected.
    """

    def __init__(self, config: PollConfig | None = None, window: int = 200) -> None:
        self.config = config or PollConfig()
        self._window = window
        self._seen: dict[Kind, _Seen] = {}
        self._ratios = _Seen(window)  # time seen / middle of its kind's range, every kind
        self._running: dict[Kind, float] = {}  # oldest age found running, kinds none ended of
        self.provider_clock_trusted = False
        self._doubted: deque[_Doubted] = deque(maxlen=window)

    def learn(
        self,
        last_running: float | None,
        seen_done: float,
        provider: float | None,
        kind: Kind = ANY_KIND,
    ) -> float:
        """Learn from a task seen done (see `generation_seconds`); returns how long it took.
        The first time the provider's clock earns trust, the times learned before with a
        provider figure are learned again as they would be now: a first poll set by a guess
        made while the figure was doubted (the task's end put 1.5 polls early) would otherwise
        come before the tasks' ends for as long as the guess stays in the window."""
        if not self.provider_clock_trusted and provides_a_trustworthy_clock(
            last_running, seen_done, provider
        ):
            self.provider_clock_trusted = True
            self._learn_again()
        gap = self.spacing(kind)
        if kind not in self._seen:  # the polls before it climbed, at most one spacing apart
            gap = min(gap, max(self.config.min_interval, self.config.growth * seen_done))
        took = generation_seconds(
            last_running,
            seen_done,
            provider,
            gap,
            provider_clock_trusted=self.provider_clock_trusted,
        )
        self.observe(took, kind)
        if provider is not None and not self.provider_clock_trusted:
            self._doubted.append(_Doubted(kind, took, last_running, seen_done, provider, gap))
        return took

    def _learn_again(self) -> None:
        while self._doubted:
            d = self._doubted.popleft()
            took = generation_seconds(
                d.last_running, d.seen_done, d.provider, d.gap, provider_clock_trusted=True
            )
            if took != d.took and d.kind in self._seen:
                self._seen[d.kind].replace(d.took, took)
                self._ratios.replace(d.took / self._middle(d.kind), took / self._middle(d.kind))

    def observe(self, generation_seconds: float, kind: Kind = ANY_KIND) -> None:
        self._seen.setdefault(kind, _Seen(self._window)).add(generation_seconds)
        self._ratios.add(generation_seconds / self._middle(kind))
        self._running.pop(kind, None)

    def knows(self, kind: Kind) -> bool:
        """Whether a task of this kind has been seen to end."""
        return kind in self._seen

    def seen_running(self, age: float, kind: Kind = ANY_KIND) -> None:
        """A task of `kind` was found unfinished `age` s after its submission."""
        if kind not in self._seen:
            self._running[kind] = max(age, self._running.get(kind, 0.0))

    def covered(self, age: float, kind: Kind = ANY_KIND) -> bool:
        """While the schedule climbs (nothing ended yet): a sibling of `kind` was found running
        at `age` or older (within half a climbing step: their polls are due together, and
        answered one after the other), so a poll of this task now would most likely say the
        same."""
        if not self._climbing(age, kind):
            return False
        return self._running.get(kind, -1.0) >= age * (1 - self.config.growth / 2)

    def expected(self, kind: Kind = ANY_KIND) -> float:
        """The mean generation time seen of `kind`, else the middle of its expected range."""
        seen = self._seen.get(kind)
        if seen is not None:
            return sum(seen.sorted) / len(seen.sorted)
        low, high = self._range(kind)
        return (low + high) / 2

    def first_delay(self, kind: Kind = ANY_KIND) -> float:
        c = self.config
        if c.fixed_interval is not None:
            return c.fixed_interval
        if self._climbing(0.0, kind):
            return min(c.first_poll, self._first_poll_at(kind))
        if c.backup_after is not None:
            return max(c.min_interval, c.backup_after * self._bounds(kind)[1])
        return max(c.min_interval, self._first_poll_at(kind))

    def next_delay(self, waited: float, kind: Kind = ANY_KIND) -> float:
        """Delay after a poll that found the task still running, `waited` s after submission."""
        c = self.config
        if c.fixed_interval is not None:
            return c.fixed_interval
        growing = min(c.max_interval, max(c.min_interval, c.growth * waited))
        first = self._first_poll_at(kind)
        if self._climbing(waited, kind):
            return min(growing, max(c.min_interval, first - waited))
        if c.backup_after is not None:
            return growing
        _, slowest = self._bounds(kind)
        if waited < first:
            return max(c.min_interval, first - waited)
        return self.spacing(kind) if waited < slowest else max(self.spacing(kind), growing)

    def spacing(self, kind: Kind = ANY_KIND) -> float:
        """The time between two polls of a task while it may end."""
        c = self.config
        if kind not in self._seen:
            low, high = self._range(kind)
            return max(c.min_interval, (high - low) / max(1, c.prior_polls))
        return min(c.max_interval, max(c.min_interval, 2 * c.idle_target * self.expected(kind)))

    def _first_poll_at(self, kind: Kind) -> float:
        """Times seen: one spacing after the fastest, or at the slowest where that comes first
        (times are counted from the create's answer, which comes after the provider started the
        task, so tasks no slower than any seen have all ended by then: one poll, no idle
        spacing, where every generation takes the same time). Else one spacing into the
        expected range."""
        fastest, slowest = self._bounds(kind)
        return min(fastest + self.spacing(kind), slowest)

    def _bounds(self, kind: Kind) -> tuple[float, float]:
        """The fastest and slowest time seen of `kind`, else its expected range."""
        seen = self._seen.get(kind)
        return (seen.sorted[0], seen.sorted[-1]) if seen is not None else self._range(kind)

    def _range(self, kind: Kind) -> tuple[float, float]:
        """The table's range for `kind`, scaled by the median of time seen / range middle."""
        low, high = self._table(kind)
        if not self._ratios.sorted:
            return low, high
        ratio = self._ratios.sorted[len(self._ratios.sorted) // 2]
        return low * ratio, high * ratio

    def _middle(self, kind: Kind) -> float:
        """The middle of the table's range for `kind`."""
        low, high = self._table(kind)
        return (low + high) / 2

    def _table(self, kind: Kind) -> tuple[float, float]:
        expected = self.config.expected(kind)
        return expected.low, expected.high

    def _climbing(self, age: float, kind: Kind) -> bool:
        """Hedging, nothing of any kind ended yet, and `age` short of the expected range."""
        c = self.config
        if not c.hedge or self._ratios.sorted:
            return False
        return age < self._first_poll_at(kind)


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
    """A provider figure strictly inside a span the run saw (from the last poll that found the
    task running, or from its create where none did, to the poll that found it done; the
    figure clear of both ends) is the task's own time: a clock stamped by our queries cannot
    land there, only at the span's end."""
    if provider is None:
        return False
    earliest = 0.0 if last_running is None else last_running
    return earliest < provider <= seen_done - _clear_of(earliest, seen_done)


def _clear_of(earliest: float, seen_done: float) -> float:
    """How far inside a seen span a provider figure must fall to be its own, not our poll's."""
    return max(0.05, 0.1 * (seen_done - earliest))
