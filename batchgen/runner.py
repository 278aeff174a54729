"""The run: submit jobs into the provider's slots, poll what runs, download what finished.

Three stages share one task group:
    feed       pending jobs → slot → `submitting` committed → create → `submitted`
    poll       in-flight tasks, by the list endpoint where served, else one query per due task
    download   finished tasks → .part → rename → probe + QA → sidecar → `done` committed
A job whose create answer was lost stays `submitting`; before it is sent again it is looked up
by external_task_id and adopted if the provider has it. The run ends when nothing is pending,
in flight or downloading; a first Ctrl-C stops submitting and drains the rest.
"""

from __future__ import annotations

import math
import random
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import httpx
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from batchgen import output
from batchgen.download import PART_SUFFIX, UrlExpired, download
from batchgen.errors import (
    EXIT_ACCOUNT,
    EXIT_INTERRUPTED,
    EXIT_JOBS_FAILED,
    EXIT_OK,
    AccountError,
    BatchgenError,
    ProviderError,
    RetryableError,
    TaskNotFound,
    ThrottledError,
)
from batchgen.events import Event, JobChanged, Listener, Notice, RunFinished, RunStarted
from batchgen.jobs import external_task_id, resolve_body
from batchgen.kling import KlingClient, TaskInfo
from batchgen.limits import SlotLimiter
from batchgen.media import NotAVideo, check_download
from batchgen.policy import Action, PollConfig, PollSchedule, RetryPolicy
from batchgen.status import JobStatus, status_of_task
from batchgen.store import DoneVideo, JobRecord, Store

FEED_BATCH = 256
DONE_CHECK_BATCH = 2000
COMMIT_INTERVAL = 0.05  # seconds of job updates a crash may lose (each safe to redo)


@dataclass(frozen=True, slots=True, kw_only=True)
class RunConfig:
    concurrency: int = 4
    task_timeout: float = 3600.0
    download_workers: int = 4
    download_attempts: int = 5
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    poll: PollConfig = field(default_factory=PollConfig)
    use_list_endpoint: bool = True
    submit: bool = True  # False: only follow and download what the provider already has
    seed: int | None = None
    handle_signals: bool = True


@dataclass(frozen=True, slots=True)
class RunOutcome:
    counts: dict[JobStatus, int]
    wall_seconds: float
    api_calls: int
    stopped: str | None = None  # "account" or "interrupted"
    stop_reason: str = ""
    concurrency: int = 0
    busy_seconds: float = 0.0  # sum over tasks of submission → end seen, this run

    @property
    def slot_utilisation(self) -> float:
        """Share of the slot-time the run had that held a task (as the client saw it)."""
        capacity = self.concurrency * self.wall_seconds
        return self.busy_seconds / capacity if capacity else 0.0

    @property
    def exit_code(self) -> int:
        if self.stopped == "account":
            return EXIT_ACCOUNT
        if self.stopped == "interrupted":
            return EXIT_INTERRUPTED
        unfinished = sum(n for s, n in self.counts.items() if s != JobStatus.DONE)
        return EXIT_JOBS_FAILED if unfinished else EXIT_OK


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


PayloadFn = Callable[[str], str]


class Runner:
    """Runs every unfinished job of a store to an end. Use `await Runner(...).run()`."""

    def __init__(
        self,
        store: Store,
        client: KlingClient,
        downloads: httpx.AsyncClient,
        payload: PayloadFn,
        run_dir: Path,
        config: RunConfig | None = None,
        listeners: Sequence[Listener] = (),
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.client = client
        self.downloads = downloads
        self.payload = payload
        self.run_dir = run_dir
        self.config = config or RunConfig()
        self.listeners = list(listeners)
        self.wall = wall_clock
        self.rng = random.Random(self.config.seed)
        self.slots = SlotLimiter(self.config.concurrency)
        self.schedule = PollSchedule(self.config.poll)
        self.inflight: dict[str, Tracked] = {}
        self.active: set[str] = set()
        self.stopping: str | None = None
        self.busy_seconds = 0.0
        self.stop_reason = ""
        self._feed_done = False
        self._done_checked = False
        self._wake_poll = anyio.Event()
        self._wake_feed = anyio.Event()
        self._send: MemoryObjectSendStream[str]
        self._receive: MemoryObjectReceiveStream[str]

    # -- the whole run ---------------------------------------------------------------------

    async def run(self) -> RunOutcome:
        started = time.monotonic()
        calls_before = self.client.calls
        self._send, self._receive = anyio.create_memory_object_stream[str](math.inf)
        counts = self.store.counts()
        self._emit(RunStarted(sum(counts.values()), counts))
        self.store.group_commits()
        try:
            async with anyio.create_task_group() as tg:
                if self.config.handle_signals:
                    tg.start_soon(self._watch_signals, tg)
                tg.start_soon(self._commit_often)
                self._recover()
                async with self._receive, anyio.create_task_group() as stages:
                    for _ in range(self.config.download_workers):
                        stages.start_soon(self._download_worker, self._receive.clone())
                    stages.start_soon(self._poll_loop)
                    stages.start_soon(self._check_done_videos)
                    await self._feed_loop(stages)
                tg.cancel_scope.cancel()
        finally:
            self.store.end_grouping()
        output.write_indexes(self.store, self.run_dir)
        outcome = RunOutcome(
            counts=self.store.counts(),
            wall_seconds=time.monotonic() - started,
            api_calls=self.client.calls - calls_before,
            stopped=self.stopping,
            stop_reason=self.stop_reason,
            concurrency=self.config.concurrency,
            busy_seconds=self.busy_seconds,
        )
        self._emit(RunFinished(outcome.counts, outcome.wall_seconds, outcome.stopped))
        return outcome

    def _recover(self) -> None:
        """Pick up what an earlier run left: tasks in flight, downloads, missing videos."""
        self.store.release_leases()
        for part in (self.run_dir / output.VIDEOS_DIR).glob(f"*{PART_SUFFIX}"):
            part.unlink(missing_ok=True)
        for job in self.store.with_status(JobStatus.SUBMITTED, JobStatus.RUNNING):
            self._track(job, job.task_id or "", job.status, since=job.submitted_at, resumed=True)
        for job in self.store.with_status(JobStatus.DOWNLOADING):
            self._send.send_nowait(job.job_id)

    async def _check_done_videos(self) -> None:
        """Download again the done jobs whose video is gone or has another size (`verify`
        re-hashes). Runs beside the first submissions, so a large run starts at once."""
        after = -1
        while batch := self.store.done_videos(after, DONE_CHECK_BATCH):
            after = batch[-1][0]
            gone = await anyio.to_thread.run_sync(_videos_not_intact, self.run_dir, batch)
            for job_id in gone:
                self._move(
                    self._job(job_id),
                    JobStatus.DOWNLOADING,
                    "video missing or changed; downloading again",
                )
                self._send.send_nowait(job_id)
        self._done_checked = True
        self._wake_poll.set()

    async def _commit_often(self) -> None:
        while True:
            await anyio.sleep(COMMIT_INTERVAL)
            self.store.commit()

    async def _watch_signals(self, tg: TaskGroup) -> None:
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for _ in signals:
                if self.stopping == "interrupted":
                    self._emit(Notice("second interrupt: stopping now", "warning"))
                    tg.cancel_scope.cancel()
                    return
                self._stop("interrupted", "interrupted: no new submissions; finishing paid tasks")

    def _stop(self, kind: str, reason: str) -> None:
        if self.stopping is None:
            self.stopping, self.stop_reason = kind, reason
            self._emit(Notice(reason, "warning"))
        self._wake_feed.set()

    # -- feed: submit pending jobs ---------------------------------------------------------

    async def _feed_loop(self, tg: TaskGroup) -> None:
        cursor = -1
        while self.stopping is None and self.config.submit:
            now = self.wall()
            lookups = [j for j in self.store.due_lookups(now) if j.job_id not in self.active]
            batch = lookups + self.store.due_pending(now, FEED_BATCH, cursor)
            if batch:
                cursor = await self._dispatch(batch, tg, cursor)
                continue
            cursor = -1
            if not self.active and self.store.next_not_before() is None:
                break
            await self._sleep_until_work()
        self._feed_done = True
        self._wake_poll.set()

    async def _dispatch(self, batch: list[JobRecord], tg: TaskGroup, cursor: int) -> int:
        for job in batch:
            if self.stopping is not None:
                break
            await self.slots.acquire()
            if self.stopping is not None:
                self.slots.release(finished=False)
                break
            if job.status == JobStatus.PENDING:
                cursor = max(cursor, job.seq)
                ext = external_task_id(job.job_id, job.generation)
                self.store.mark_submitting(job.job_id, ext, self.wall())
                self.store.commit()  # durable before the create can be sent
                self._changed(job, JobStatus.SUBMITTING)
            else:
                self.store.lease(job.job_id, self.wall())
            self.active.add(job.job_id)
            tg.start_soon(self._submit, job)
        return cursor

    async def _sleep_until_work(self) -> None:
        next_at = self.store.next_not_before()
        delay = 1.0 if next_at is None else max(0.01, next_at - self.wall())
        with anyio.move_on_after(min(delay, 5.0)):
            await self._wake_feed.wait()
        self._wake_feed = anyio.Event()

    async def _submit(self, job: JobRecord) -> None:
        ext = job.current_external_id
        try:
            if job.status == JobStatus.SUBMITTING:
                task = await self.client.find_by_external_id(ext)
                if task is not None:
                    self._adopt(job, task, "adopted a task the provider already had")
                    return
            body = resolve_body(job.request, self.payload, ext)
            task = await self.client.create(body)
            self._accepted(job, task)
        except ProviderError as error:
            await self._create_failed(job, error)
        except BatchgenError as error:
            self._fail(job, str(error), "input")
            self.slots.release(finished=False)
        finally:
            self.active.discard(job.job_id)
            self._wake_feed.set()

    def _accepted(self, job: JobRecord, task: TaskInfo) -> None:
        status = status_of_task(task.status or "submitted")
        if status in (JobStatus.DOWNLOADING, JobStatus.FAILED):
            status = JobStatus.SUBMITTED
        self.store.mark_accepted(job.job_id, task.task_id, status, created_at=task.created_at)
        self.slots.accepted()
        self._changed(job, status)
        self._track(job, task.task_id, status)

    def _adopt(self, job: JobRecord, task: TaskInfo, note: str) -> None:
        """Take over a task the provider already has instead of paying for a new one."""
        self.store.mark_accepted(
            job.job_id, task.task_id, JobStatus.SUBMITTED, created_at=task.created_at
        )
        self._emit(Notice(f"{job.row_id}: {note} (task {task.task_id})"))
        since = task.created_at / 1000 if task.created_at else None
        tracked = self._track(job, task.task_id, JobStatus.SUBMITTED, since=since)
        self._apply(tracked, task)

    async def _create_failed(self, job: JobRecord, error: ProviderError) -> None:
        decision = self.config.retry.decide(error, job.attempts, self.rng)
        now = self.wall()
        if decision.action == Action.ADOPT:
            task = await self._lookup_quietly(job.current_external_id)
            if task is not None:
                self._adopt(job, task, "the provider already had this job (1201)")
                return
            self._fail(
                job,
                "the provider has this job's external_task_id but does not show the "
                "task; run `batchgen reconcile` to adopt it",
                "lost_task",
            )
        elif decision.action == Action.WAIT:
            if isinstance(error, ThrottledError) and error.slots_full:
                self.slots.throttled()
            self.store.mark_retry(
                job.job_id, now + decision.delay, decision.reason, "throttled", count=False
            )
            self._changed(job, JobStatus.PENDING, decision.reason)
        elif decision.action == Action.RETRY:
            self.store.mark_waiting(job.job_id, now + decision.delay, decision.reason, "transient")
        elif decision.action == Action.STOP_RUN:
            self.store.mark_retry(job.job_id, now, decision.reason, "account", count=False)
            self._changed(job, JobStatus.PENDING, decision.reason)
            self._stop("account", decision.reason)
        elif isinstance(error, RetryableError):
            task = await self._lookup_quietly(job.current_external_id)
            if task is not None:
                self._adopt(job, task, "adopted after the create answers were lost")
                return
            self._fail(job, decision.reason, "transient")
        else:
            self._fail(job, decision.reason, "rejected")
        self.slots.release(finished=False)

    async def _lookup_quietly(self, external_id: str) -> TaskInfo | None:
        try:
            return await self.client.find_by_external_id(external_id)
        except ProviderError:
            return None

    # -- poll: follow tasks to their end ---------------------------------------------------

    def _track(
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
        self.inflight[job.job_id] = tracked
        self._wake_poll.set()
        return tracked

    async def _poll_loop(self) -> None:
        while self.inflight or not self._feed_done or not self._done_checked:
            now = anyio.current_time()
            due = [t for t in self.inflight.values() if t.next_poll <= now]
            if not due:
                await self._sleep_until_due(now)
                continue
            await self._poll(due)
            self._check_timeouts()
        self._send.close()

    async def _sleep_until_due(self, now: float) -> None:
        next_at = min((t.next_poll for t in self.inflight.values()), default=now + 1.0)
        with anyio.move_on_after(max(0.0, next_at - now)):
            await self._wake_poll.wait()
        self._wake_poll = anyio.Event()

    async def _poll(self, due: list[Tracked]) -> None:
        remaining = due
        if (
            self.config.use_list_endpoint
            and self.client.list_supported is not False
            and len(self.inflight) > 1
        ):
            remaining = await self._poll_by_list(due)
        if remaining:
            async with anyio.create_task_group() as tg:
                for tracked in remaining:
                    tg.start_soon(self._poll_one, tracked)

    async def _poll_by_list(self, due: list[Tracked]) -> list[Tracked]:
        """Learn many tasks' states from one list call (newest first: a page about twice the
        tasks in flight covers them); returns the due tasks it did not show."""
        try:
            tasks = await self.client.list_tasks(1, page_size=2 * len(self.inflight) + 20)
        except TaskNotFound:
            return due
        except ProviderError as error:
            self._poll_error(due, error)
            return []
        by_id = {t.task_id: t for t in tasks}
        for tracked in list(self.inflight.values()):
            info = by_id.get(tracked.task_id)
            if info is not None:
                self._apply(tracked, info)
        return [t for t in due if t.task_id not in by_id and t.job_id in self.inflight]

    async def _poll_one(self, tracked: Tracked) -> None:
        try:
            info = await self.client.get(tracked.task_id)
        except ProviderError as error:
            self._poll_error([tracked], error)
            return
        self._apply(tracked, info)

    def _poll_error(self, tracked: list[Tracked], error: ProviderError) -> None:
        if isinstance(error, AccountError):
            self._stop("account", error.describe())
        now = anyio.current_time()
        for t in tracked:
            if isinstance(error, TaskNotFound):
                self._untrack(t, finished=True)
                job = self._job(t.job_id)
                self._fail(job, f"the provider no longer knows task {t.task_id}", "lost_task")
            else:
                t.next_poll = now + self.config.retry.backoff(1, self.rng) + 1.0

    def _apply(self, tracked: Tracked, info: TaskInfo) -> None:
        """Act on what the provider says of a task."""
        if tracked.job_id not in self.inflight:
            return
        status = status_of_task(info.status)
        now = anyio.current_time()
        job = self._job(tracked.job_id)
        if status == JobStatus.DOWNLOADING:
            self._untrack(tracked, finished=True)
            self.schedule.observe(_generation_seconds(info, tracked, now))
            self.store.mark_progress(
                job.job_id,
                JobStatus.DOWNLOADING,
                video_url=info.video_url,
                video_duration=info.video_duration,
                unit_deduction=info.final_unit_deduction,
                task_updated_at=info.updated_at,
                not_before=0,
            )
            self._changed(job, JobStatus.DOWNLOADING)
            self._send.send_nowait(job.job_id)
        elif status == JobStatus.FAILED:
            self._untrack(tracked, finished=True)
            self._fail(
                job,
                info.message or "the provider reported the generation failed",
                "generation_failed",
            )
        else:
            if status != tracked.status:
                self.store.mark_progress(job.job_id, status)
                self._changed(job, status)
                tracked.status = status
            tracked.running_seen = now - tracked.started
            tracked.next_poll = now + self.schedule.next_delay(tracked.running_seen)

    def _check_timeouts(self) -> None:
        now = anyio.current_time()
        for tracked in list(self.inflight.values()):
            if now - tracked.started > self.config.task_timeout:
                self._untrack(tracked, finished=False)
                self._fail(
                    self._job(tracked.job_id),
                    f"task {tracked.task_id} still not finished after "
                    f"{self.config.task_timeout:.0f} s; `batchgen retry` polls it again",
                    "task_timeout",
                )

    def _untrack(self, tracked: Tracked, *, finished: bool) -> None:
        if self.inflight.pop(tracked.job_id, None) is not None:
            self.busy_seconds += anyio.current_time() - tracked.started
            self.slots.release(finished=finished)

    # -- download: bring finished videos home ----------------------------------------------

    async def _download_worker(self, jobs: MemoryObjectReceiveStream[str]) -> None:
        async with jobs:
            async for job_id in jobs:
                await self._download_job(job_id)

    async def _download_job(self, job_id: str) -> None:
        for attempt in range(1, self.config.download_attempts + 1):
            job = self._job(job_id)
            try:
                url = job.video_url or await self._fresh_url(job)
                await self._fetch(job, url)
                return
            except UrlExpired:
                self.store.mark_progress(job_id, JobStatus.DOWNLOADING, video_url=None)
            except NotAVideo as error:
                self.store.mark_waiting(job_id, 0, error.describe(), "not_a_video")
                self.store.mark_progress(job_id, JobStatus.DOWNLOADING, video_url=None)
                await anyio.sleep(self.config.retry.backoff(attempt, self.rng))
            except (RetryableError, ThrottledError, TaskNotFound) as error:
                self.store.mark_waiting(job_id, 0, error.describe(), "download")
                await anyio.sleep(self.config.retry.backoff(attempt, self.rng))
            except AccountError as error:
                self._stop("account", error.describe())
                return
            except ProviderError as error:
                self.store.mark_waiting(job_id, 0, error.describe(), "download")
                return
        self._emit(
            Notice(
                f"{self._job(job_id).row_id}: download did not complete; run again to resume it",
                "warning",
            )
        )

    async def _fresh_url(self, job: JobRecord) -> str:
        info = await self.client.get(job.task_id or "")
        if not info.video_url:
            raise RetryableError(f"task {job.task_id} has no video URL yet")
        self.store.mark_progress(job.job_id, JobStatus.DOWNLOADING, video_url=info.video_url)
        return info.video_url

    async def _fetch(self, job: JobRecord, url: str) -> None:
        dest = output.video_path(self.run_dir, job.row_id)
        result = await download(self.downloads, url, dest)
        check = await check_download(self.store, job, dest, result.sha256)
        relative = dest.relative_to(self.run_dir).as_posix()
        entry = output.sidecar(job, relative, result.sha256, result.size, check.as_json())
        await anyio.to_thread.run_sync(output.write_json_atomic, dest.with_suffix(".json"), entry)
        self.store.mark_done(job.job_id, relative, result.sha256, result.size, self.wall())
        self._changed(job, JobStatus.DONE)

    # -- shared ----------------------------------------------------------------------------

    def _job(self, job_id: str) -> JobRecord:
        job = self.store.get(job_id)
        assert job is not None, job_id
        return job

    def _fail(self, job: JobRecord, reason: str, kind: str) -> None:
        self.store.mark_failed(job.job_id, reason, kind, self.wall())
        self._changed(job, JobStatus.FAILED, reason)

    def _move(self, job: JobRecord, status: JobStatus, detail: str) -> None:
        self.store.mark_progress(job.job_id, status)
        self._changed(job, status, detail)

    def _changed(self, job: JobRecord, new: JobStatus, detail: str = "") -> None:
        self._emit(JobChanged(job.job_id, job.row_id, job.status, new, detail))

    def _emit(self, event: Event) -> None:
        for listener in self.listeners:
            listener(event)


def _generation_seconds(info: TaskInfo, tracked: Tracked, now: float) -> float:
    """How long the provider took: its own timestamps where given, else the middle of the
    span in which it ended (between the last poll that found it running and the one that found
    it done; the end alone would feed our own poll delay back into the schedule)."""
    if info.created_at and info.updated_at and info.updated_at >= info.created_at:
        return (info.updated_at - info.created_at) / 1000
    return (tracked.running_seen + now - tracked.started) / 2


def _videos_not_intact(run_dir: Path, done: list[DoneVideo]) -> list[str]:
    """Job ids among (seq, job id, video path, bytes) whose file is missing or of another size."""
    gone = []
    for _, job_id, video, size in done:
        try:
            intact = video is not None and (run_dir / video).stat().st_size == size
        except OSError:
            intact = False
        if not intact:
            gone.append(job_id)
    return gone
