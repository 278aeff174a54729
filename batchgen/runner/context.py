"""What the stages of a run share: the state, the provider, the slots, the tasks being
followed, the download queue, and the one way a job's change is recorded and announced."""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import anyio
import httpx
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from batchgen.budget import Budget
from batchgen.events import Event, Heartbeat, JobChanged, Listener, Notice
from batchgen.limits import SlotLimiter
from batchgen.policy import PollSchedule
from batchgen.providers import Provider
from batchgen.runner.config import RunConfig
from batchgen.runner.reachability import Reachability
from batchgen.status import JobStatus
from batchgen.store import JobRecord, Store

PayloadFn = Callable[[str], str]


@dataclass(slots=True)
class Tracked:
    """A task the provider holds for us, and when to ask about it next."""

    job_id: str
    row_id: str
    task_id: str
    started: float  # monotonic time of submission
    next_poll: float
    status: JobStatus
    running_seen: float = 0.0  # seconds after submission of the last poll that found it unfinished
    polled_running: bool = False  # a poll has found it unfinished
    missing_since: float | None = None  # first "not found" / "done without a video" seen


class RunContext:
    """The shared state of one run. Stages change jobs only through `record` and friends, so
    that every change is in the store and announced with the status it really left."""

    def __init__(
        self,
        store: Store,
        provider: Provider,
        downloads: httpx.AsyncClient,
        payload: PayloadFn,
        run_dir: Path,
        config: RunConfig,
        listeners: Sequence[Listener],
        wall_clock: Callable[[], float] = time.time,
        budget: Budget | None = None,
    ) -> None:
        self.store = store
        self.budget = budget
        self.provider = provider
        self.downloads = downloads
        self.payload = payload
        self.run_dir = run_dir
        self.config = config
        self.listeners = list(listeners)
        self.wall = wall_clock
        self.rng = random.Random(config.seed)
        self.slots = SlotLimiter(config.concurrency)
        self.schedule = PollSchedule(config.poll)
        self.reachability = Reachability(config.unreachable_at_start, config.unreachable_later)
        self.run_started = anyio.current_time()
        self.tracked: dict[str, Tracked] = {}
        self.active: set[str] = set()  # jobs whose create or look-up is under way
        self.stopping: str | None = None
        self.stop_reason = ""
        self.busy_seconds = 0.0
        self.adopted = 0
        self.throttles = 0  # throttled creates in a row
        self.throttled_until = 0.0  # monotonic: no create before this
        self.failures = 0  # creates in a row that were not carried out (5xx, no connection)
        self.paused_until = 0.0  # monotonic: no create before this either
        self.wake_poll = anyio.Event()
        self.wake_feed = anyio.Event()
        self.cancel_run: Callable[[], None] = lambda: None
        self.queue: MemoryObjectSendStream[str]
        self.queued: MemoryObjectReceiveStream[str]
        self.queue, self.queued = anyio.create_memory_object_stream[str](math.inf)

    # -- jobs -------------------------------------------------------------------------------

    def job(self, job_id: str) -> JobRecord:
        job = self.store.get(job_id)
        assert job is not None, job_id
        return job

    def announce(
        self,
        job: JobRecord,
        old: JobStatus,
        new: JobStatus,
        detail: str = "",
        units: str | None = None,
    ) -> None:
        """Tell the listeners (and the budget) a job moved; `units`: what the provider
        charged for it, where that is newer than `job` knows."""
        if old == new:
            return
        if self.budget is not None:
            self.budget.ledger.moved(job.request, units or job.unit_deduction, old, new)
        self.emit(JobChanged(job.job_id, job.row_id, old, new, detail))

    def progress(
        self, job: JobRecord, status: JobStatus, detail: str = "", **fields: object
    ) -> None:
        old = self.store.mark_progress(job.job_id, status, **fields)
        self.announce(job, old, status, detail)

    def fail(self, job: JobRecord, reason: str, kind: str, units: str | None = None) -> None:
        """`units`: what the provider charged for the failed task, if it said."""
        fields = {"unit_deduction": units} if units is not None else {}
        old = self.store.mark_failed(job.job_id, reason, kind, self.wall(), **fields)
        self.announce(job, old, JobStatus.FAILED, reason, units)

    def unknown(self, job: JobRecord, reason: str) -> None:
        old = self.store.mark_unknown(job.job_id, reason, self.wall())
        self.announce(job, old, JobStatus.UNKNOWN, reason)
        self.emit(Notice(f"{job.row_id}: outcome unknown: {reason}", "warning"))

    def enqueue_download(self, job_id: str) -> None:
        self.queue.send_nowait(job_id)

    # -- tasks followed ---------------------------------------------------------------------

    def track(
        self,
        job: JobRecord,
        task_id: str,
        status: JobStatus,
        *,
        since: float | None = None,
        resumed: bool = False,
    ) -> Tracked:
        """Follow a task; `since` is when it was submitted (wall clock), default now. A task
        found on resume takes a slot past the cap, and is polled at once."""
        now = anyio.current_time()
        started = now - max(0.0, self.wall() - since) if since else now
        if resumed:
            self.slots.adopt()
        first_poll = now if resumed else started + self.schedule.first_delay()
        tracked = Tracked(job.job_id, job.row_id, task_id, started, first_poll, status)
        self.tracked[job.job_id] = tracked
        self.wake_poll.set()
        return tracked

    def untrack(self, tracked: Tracked, *, finished: bool, busy: float | None = None) -> None:
        """Stop following a task. Its slot counts as busy for `busy` seconds (its generation,
        where known), else until now, within this run."""
        if self.tracked.pop(tracked.job_id, None) is not None:
            now = anyio.current_time()
            end = now if busy is None else min(now, tracked.started + busy)
            self.busy_seconds += max(0.0, end - max(tracked.started, self.run_started))
            self.slots.release(finished=finished)

    # -- the run ----------------------------------------------------------------------------

    def stop(self, kind: str, reason: str) -> None:
        """Stop submitting (the first stop's kind and reason are kept). A provider that cannot
        be reached cannot be polled either: that stop ends the run at once."""
        if self.stopping is None:
            self.stopping, self.stop_reason = kind, reason
            self.throttled_until = self.paused_until = 0.0  # no create will resume
            self.emit(Heartbeat(self.slots.cap))
            self.emit(Notice(reason, "warning"))
        self.wake_feed.set()
        self.wake_poll.set()
        if kind == "unreachable":
            self.cancel_run()

    def observe_exchange(self, answered: bool, reason: str) -> None:
        """Told by the transport of every API exchange (see Reachability)."""
        now = anyio.current_time()
        if answered:
            self.reachability.answered()
            return
        self.reachability.failed(now, reason)
        if self.reachability.unreachable(now):
            self.stop("unreachable", self.unreachable_message())

    def unreachable_message(self) -> str:
        base = self.provider.transport.base_url
        return (
            f"the provider at {base} cannot be reached: {self.reachability.last_failure}. "
            "Nothing was marked failed; check the network and --base-url, then run the same "
            "command again"
        )

    def emit(self, event: Event) -> None:
        for listener in self.listeners:
            listener(event)
