"""What the stages of a run share: the state, the provider, the slots, the tasks being
followed, the download queue, and the one way a job's change is recorded and announced."""

from __future__ import annotations

import math
import os
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import anyio
import httpx
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from batchgen.events import Event, Heartbeat, JobChanged, Listener, Notice
from batchgen.money.budget import Budget
from batchgen.providers import Provider
from batchgen.runner.config import RunConfig
from batchgen.runner.gate import CreateGate
from batchgen.runner.generation_times import ANY_KIND, Kind, kind_of
from batchgen.runner.limits import SlotLimiter
from batchgen.runner.policy import PollSchedule
from batchgen.runner.reachability import Reachability
from batchgen.runner.sharing import SharedAccount
from batchgen.state.changes import Change, Unknown
from batchgen.state.records import JobRecord
from batchgen.state.store import Store
from batchgen.status import JobStatus

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
    confirming: bool = False  # a query a callback asked for is under way (Poller.confirm)
    kind: Kind = ANY_KIND  # what its generation time depends on (generation_times.py)


class RunContext:
    """The shared state of one run. Stages change jobs only through `record`, so that every
    change is in the store and announced with the status it really left."""

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
        shared: SharedAccount | None = None,
    ) -> None:
        self.store = store
        self.budget = budget
        self.shared = shared  # the account's other runs, through the ledger (sharing.py)
        # A worker's downloads are written apart from another's fetching the same video.
        self.part_tag = f".{os.getpid()}" if store.claims is not None else ""
        self.provider = provider
        self.downloads = downloads
        self.payload = payload
        self.run_dir = run_dir
        self.config = config
        self.listeners = list(listeners)
        self.wall = wall_clock
        self.rng = random.Random(config.seed)
        self.slots = SlotLimiter(
            config.concurrency, shared=shared.slots if shared is not None else None
        )
        self.schedule = PollSchedule(config.poll)
        self.reachability = Reachability(config.unreachable_at_start, config.unreachable_later)
        self.run_started = anyio.current_time()
        self.tracked: dict[str, Tracked] = {}
        self.active: set[str] = set()  # jobs whose create or look-up is under way
        self.stopping: str | None = None
        self.stop_reason = ""
        self.interrupted = False  # told to stop at once (a signal while stopping)
        self.busy_seconds = 0.0
        self.adopted = 0
        self.refused_models: dict[str, str] = {}  # model → why the provider refuses it
        self.touched: set[str] = set()  # jobs this run changed (API calls are per such job)
        self.gate = CreateGate(config.retry, self.rng, config.unreachable_at_start / 3)
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

    def record(
        self,
        job: JobRecord | str,
        change: Change,
        detail: str | None = None,
        *,
        held: JobStatus | None = None,
    ) -> JobRecord:
        """The one door for a job's change: write `change` to the state (and to the account
        ledger, for a create of this state's), tell the budget and the listeners the status it
        really left (when it moved), and return the job as it now is. `detail` overrides what
        the change says of itself. The status the caller holds for the job (a record's, or
        `held` with a job id) saves reading it first; the write checks it all the same."""
        job_id, held = (job, held) if isinstance(job, str) else (job.job_id, job.status)
        old, new = self.store.apply(job_id, change, held)
        if self.shared is not None:
            self.shared.recorded(new, change, self.run_dir)
        self.touched.add(job_id)
        if old != new.status:
            if self.budget is not None and new.reused_from is None:  # paid by another state
                self.budget.tally.moved(new.request, new.unit_deduction, old, new.status)
            said = change.detail() if detail is None else detail
            self.emit(JobChanged(new.job_id, new.row_id, old, new.status, said))
        if isinstance(change, Unknown):
            self.emit(Notice(f"{new.row_id}: outcome unknown: {change.reason}", "warning"))
        return new

    def let_go(self, job_id: str) -> None:
        """Another worker holds the job now (this one's lease ran out): stop following it and
        write nothing more for it."""
        tracked = self.tracked.get(job_id)
        if tracked is not None:
            self.untrack(tracked, finished=False)
        self.active.discard(job_id)
        self.emit(Notice(f"job {job_id}: another worker took it over; this one lets it go"))

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
        kind = kind_of(job.request)
        first_poll = now if resumed else started + self.schedule.first_delay(kind)
        tracked = Tracked(job.job_id, job.row_id, task_id, started, first_poll, status, kind=kind)
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

    def stop(self, kind: str, reason: str, *, at_once: bool = False) -> None:
        """Stop submitting (the first stop's kind and reason are kept) and drain what is paid
        for; `at_once` ends the run now instead, as for a provider that can no longer be
        reached or that refuses the queries a drain needs (credentials revoked, a JWT that a
        clock jump made invalid)."""
        if self.stopping is None:
            self.stopping, self.stop_reason = kind, reason
            self.gate.open()  # no create will resume
            self.emit(Heartbeat(self.slots.cap, stopping=kind))
            self.emit(Notice(reason, "warning"))
        self.wake_feed.set()
        self.wake_poll.set()
        if at_once or kind == "unreachable":
            self.cancel_run()

    def interrupt(self) -> bool:
        """A Ctrl-C or SIGTERM: the first stops submitting and drains; one that comes once
        the run is stopping, whatever stopped it, ends the run at once. True when it ends."""
        if self.stopping is None:
            self.stop("interrupted", "interrupted: no new submissions; finishing paid tasks")
            return False
        self.interrupted = True
        first = self.stopping
        said = f"interrupted after the {first} stop"
        if first == "interrupted":
            said = "second interrupt"
        self.emit(Notice(f"{said}: stopping now", "warning"))
        self.cancel_run()
        return True

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
