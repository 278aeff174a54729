"""The feed stage: pending jobs into the provider's slots.

    slot free → claimed in the account ledger → `submitting` committed durably → create →
    `submitted` committed → followed

What each failed create means is decided by the retry policy: wait (throttled, unreachable;
never a failure), retry (refused, not carried out), settle (the task may exist: recovery.py),
fail the job, or stop the run (credentials, balance). Throttling waits grow with the throttles
in a row, honour Retry-After, and lower the slot cap; while one lasts, no create is sent.
Creates that fail in a row (no connection; 5xx from the third on) pause all creates, for
longer each time, rather than try the next pending job at once: a provider that is down is
not hammered with one create per pending job.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from anyio.abc import TaskGroup

from batchgen.errors import (
    BatchgenError,
    ContentRefused,
    DuplicateExternalId,
    JobRejected,
    LeaseLost,
    ModelRefused,
    ProviderError,
    ProviderUnreachable,
    ThrottledError,
)
from batchgen.events import Notice
from batchgen.jobs import external_task_id, resolve_body
from batchgen.providers import TaskInfo
from batchgen.runner.context import RunContext
from batchgen.runner.policy import Action, Decision
from batchgen.runner.recovery import DUPLICATE, RESENT, Recovery
from batchgen.runner.reuse import claim_creates
from batchgen.state.changes import (
    Accepted,
    Change,
    Failed,
    Leased,
    Retrying,
    Submitting,
    Waiting,
)
from batchgen.state.records import JobRecord
from batchgen.status import JobStatus, status_of_task

FEED_BATCH = 256
WORKER_IDLE = 0.25  # seconds a worker waits when others hold every job due


class Feeder:
    def __init__(self, ctx: RunContext, recovery: Recovery) -> None:
        self.ctx = ctx
        self.recovery = recovery

    async def run(self, tg: TaskGroup, done: anyio.Event) -> None:
        """Submit every due job until none is pending or waiting, or the run stops. Creates
        and look-ups run in `tg`; `done` is set when no more will be started."""
        ctx = self.ctx
        cursor = -1
        claims = ctx.store.claims
        owner = claims.worker if claims is not None else None
        next_takeover = ctx.wall()
        try:
            while ctx.stopping is None and ctx.config.submit:
                now = ctx.wall()
                due = ctx.store.due_lookups(now, owner)
                lookups = [j for j in due if j.job_id not in ctx.active]
                batch = lookups + self._due_pending(now, cursor)
                if batch:
                    cursor = await self._dispatch(batch, tg, cursor)
                    continue
                cursor = -1
                idle = not ctx.active and ctx.store.next_not_before() is None
                if claims is not None:
                    elsewhere = claims.in_flight_elsewhere(now)
                    if now >= next_takeover or (idle and not elsewhere):
                        self.recovery.take_over()  # (before ending: leases just run out)
                        next_takeover = now + claims.ttl / 3
                    # Others' jobs are taken over should their worker die: stay till they end.
                    idle = idle and not ctx.tracked and not elsewhere
                # A task refused by moderation may yet come back to be sent again.
                regenerating = ctx.config.retry_moderation > 0 and bool(ctx.tracked)
                # (A sweep under way may yet send an unknown job again: not before it ends.)
                resending = self.recovery.resend_at is not None or self.recovery.sweeping
                if idle and not resending and not regenerating:
                    break
                ctx.slots.trim()
                await self._sleep_until_work(at_least=0.0 if claims is None else WORKER_IDLE)
        finally:
            done.set()
            ctx.wake_poll.set()

    async def _dispatch(self, batch: list[JobRecord], tg: TaskGroup, cursor: int) -> int:
        """Start the jobs of `batch` in order as slots come free: each group of jobs whose
        slots are free at once shares one synced commit of its write-ahead records."""
        ctx = self.ctx
        start = 0
        while start < len(batch) and ctx.stopping is None:
            await ctx.slots.acquire()
            await self._wait_out_throttling()
            if ctx.stopping is not None:
                ctx.slots.release(finished=False)
                break
            more = ctx.slots.take_free(len(batch) - start - 1)
            group = batch[start : start + 1 + more]
            start += len(group)
            cursor = await self._start(group, tg, cursor)
        return cursor

    async def _start(self, group: list[JobRecord], tg: TaskGroup, cursor: int) -> int:
        """Start jobs each holding a slot: their creates, or the look-ups of lost ones. The
        creates are claimed in the ledger and recorded `submitting`, one commit each for the
        group, and leave once both are synced (off the event loop, which goes on meanwhile:
        the slots freed while a group syncs make the next group). Returns the feed's
        cursor."""
        ctx = self.ctx
        creates: list[tuple[JobRecord, str]] = []
        committed = 0.0  # what the group's creates may cost, before they are recorded
        for n, job in enumerate(group):
            if job.status != JobStatus.PENDING:
                self._look_up(job, tg)
                continue
            refused = ctx.refused_models.get(str(job.request.get("model_name")))
            if refused is not None:
                if self._record_or_let_go(job, Failed(refused, "model_refused", ctx.wall())):
                    ctx.slots.release(finished=False)
                continue
            if not self._fits_budget(job, committed):
                for _ in group[n:]:
                    ctx.slots.release(finished=False)
                break
            if ctx.budget is not None:
                committed += ctx.budget.tally.reserve(job.request)
            cursor = max(cursor, job.seq)
            creates.append((job, external_task_id(job.job_id, job.generation)))
        mine = claim_creates(ctx, creates)  # (those another state of the account sent: not)
        submitting = []
        with ctx.store.durably(synced=False):
            for job, ext in mine:
                recorded = self._record_or_let_go(job, Submitting(ext, ctx.wall()))
                if recorded is not None:
                    submitting.append(recorded)
                    ctx.active.add(job.job_id)
        if submitting:
            await self._synced()
        for job in submitting:  # (each record survives a power cut now)
            tg.start_soon(self._guarded, self.create, job)
        return cursor

    async def _synced(self) -> None:
        """The ledger's claims and the state's records of this group survive a power cut
        (both files synced at once, in worker threads); an interrupt waits for it."""
        ctx = self.ctx
        with anyio.CancelScope(shield=True):
            async with anyio.create_task_group() as syncs:
                syncs.start_soon(anyio.to_thread.run_sync, ctx.store.sync)
                if ctx.shared is not None:
                    syncs.start_soon(anyio.to_thread.run_sync, ctx.shared.ledger.sync)

    def _look_up(self, job: JobRecord, tg: TaskGroup) -> None:
        """Start the look-up of a job whose create's answer was lost, in the slot it holds."""
        job_now = self._record_or_let_go(job, Leased(self.ctx.wall()))
        if job_now is None:
            return
        reason = job_now.last_error or "its create's answer was lost"
        tg.start_soon(self._guarded, self._settle, job_now, reason)
        self.ctx.active.add(job_now.job_id)

    def _record_or_let_go(self, job: JobRecord, change: Change) -> JobRecord | None:
        """`record`, or None, the job's slot given back and the job let go, when another
        worker holds the job now."""
        try:
            return self.ctx.record(job, change)
        except LeaseLost:
            self.ctx.slots.release(finished=False)
            self.ctx.let_go(job.job_id)
            return None

    def _fits_budget(self, job: JobRecord, committed: float = 0.0) -> bool:
        """Whether the job's highest price fits in what the budget has left (less what
        `committed` to the creates of its group before it); stops the run's submissions if
        not."""
        budget = self.ctx.budget
        if budget is None or budget.fits(job.request, committed):
            return True
        self.ctx.stop("budget", budget.stop_message())
        return False

    async def _wait_out_throttling(self) -> None:
        ctx = self.ctx
        while ctx.stopping is None and anyio.current_time() < ctx.gate.opens_at():
            with anyio.move_on_after(ctx.gate.opens_at() - anyio.current_time()):
                await ctx.wake_feed.wait()
            ctx.wake_feed = anyio.Event()

    def _due_pending(self, now: float, cursor: int) -> list[JobRecord]:
        """Pending jobs due now after `cursor`; a worker claims them (as many as it has slots
        free), so that no other worker sends them."""
        ctx = self.ctx
        if ctx.store.claims is None:
            return ctx.store.due_pending(now, FEED_BATCH, cursor)
        free = max(1, min(FEED_BATCH, ctx.slots.cap - ctx.slots.in_use))
        return ctx.store.claims.claim_pending(now, free, cursor)

    async def _sleep_until_work(self, at_least: float = 0.0) -> None:
        ctx = self.ctx
        next_at = ctx.store.next_not_before()
        delay = 1.0 if next_at is None else max(0.01, at_least, next_at - ctx.wall())
        with anyio.move_on_after(min(delay, 5.0)):
            await ctx.wake_feed.wait()
        ctx.wake_feed = anyio.Event()

    async def _guarded(
        self, step: Callable[..., Awaitable[None]], job: JobRecord, *args: Any
    ) -> None:
        """Run one job's step; the job is no longer active after it, whatever happens (another
        worker taking it over included)."""
        try:
            await step(job, *args)
        except LeaseLost:
            self.ctx.let_go(job.job_id)
        finally:
            self.ctx.active.discard(job.job_id)
            self.ctx.wake_feed.set()
            self.ctx.wake_poll.set()

    async def _settle(self, job: JobRecord, reason: str) -> None:
        resend = None if job.error_kind == DUPLICATE else self.create
        await self.recovery.settle(job, reason, resend)

    async def create(self, job: JobRecord) -> None:
        """Send the create of a `submitting` job holding a slot, and act on the answer."""
        ctx = self.ctx
        try:
            body = resolve_body(job.request, ctx.payload, job.current_external_id)
            if ctx.config.callback_url:
                body["callback_url"] = ctx.config.callback_url
            task = await ctx.provider.create(body)
        except ProviderError as error:
            # Look-ups of a lost answer count from when the failure came back, not from the
            # record (committed before its group's sync): a task-list scan begun before then
            # may have been answered before the provider made the task.
            await self._create_failed(job._replace(submitted_at=ctx.wall()), error)
            return
        except BatchgenError as error:
            ctx.record(job, Failed(str(error), "input", ctx.wall()))
            ctx.slots.release(finished=False)
            return
        self._accepted(job, task)

    def _accepted(self, job: JobRecord, task: TaskInfo) -> None:
        ctx = self.ctx
        ctx.gate.accepted()
        status = status_of_task(task.status or "submitted")
        if status in (JobStatus.DOWNLOADING, JobStatus.FAILED):
            status = JobStatus.SUBMITTED  # the first poll acts on it
        if ctx.store.job_of_task(task.task_id) not in (None, job.job_id):
            self.recovery.adopt(job, task, "accepted")  # refuses a task id another job has
            return
        try:
            job = ctx.record(job, Accepted(task.task_id, status, task.created_at))
        except LeaseLost:
            # Paused past its lease while the create was out: the worker that took the job
            # over finds the task in the ledger instead of sending the create again.
            if ctx.shared is not None:
                ctx.shared.accepted_elsewhere(job, task.task_id)
            ctx.slots.release(finished=False)
            raise
        ctx.slots.accepted()
        ctx.track(job, task.task_id, status)

    async def _create_failed(self, job: JobRecord, error: ProviderError) -> None:
        ctx = self.ctx
        if job.error_kind == RESENT and isinstance(error, JobRejected):
            # Refused for a reason we cannot read: the first create may have been paid for.
            reason = f"the provider refused the resend ({error.describe()})"
            await self.recovery.settle(job, reason, None)
            return
        throttles = ctx.gate.throttles
        if isinstance(error, ThrottledError):
            throttles = ctx.gate.throttled(anyio.current_time())
        decision = ctx.config.retry.decide(error, job.attempts, throttles, ctx.rng)
        if decision.action == Action.SETTLE:
            await self._settle_after(job, error, decision)
            return
        if isinstance(error, ModelRefused):
            self._refuse_model(job, error)
        if decision.action in (Action.WAIT, Action.RETRY) and not isinstance(error, ThrottledError):
            ctx.gate.failed(anyio.current_time(), unreachable=decision.action == Action.WAIT)
        self._requeue(job, error, decision)
        ctx.slots.release(finished=False)

    async def _settle_after(self, job: JobRecord, error: ProviderError, decision: Decision) -> None:
        if isinstance(error, DuplicateExternalId):
            self.recovery.saw_duplicate_refused()
            waiting = Waiting(0, decision.reason, DUPLICATE, counted=False)
            await self.recovery.settle(self.ctx.record(job, waiting), decision.reason, None)
        else:
            await self.recovery.settle(job, decision.reason, self.create)

    def _requeue(self, job: JobRecord, error: ProviderError, decision: Decision) -> None:
        """Back to pending (wait, retry), failed, or stopped, as `decision` says."""
        ctx = self.ctx
        now = ctx.wall()
        if decision.action == Action.WAIT:
            if isinstance(error, ThrottledError):
                ctx.slots.throttled()
                ctx.gate.close_for_throttle(anyio.current_time() + decision.delay)
            kind = "throttled" if isinstance(error, ThrottledError) else "unreachable"
            ctx.record(job, Retrying(now + decision.delay, decision.reason, kind, counted=False))
        elif decision.action == Action.RETRY:
            ctx.record(job, Retrying(now + decision.delay, decision.reason, "transient"))
        elif decision.action == Action.STOP_RUN:
            ctx.record(job, Retrying(now, decision.reason, "stopped", counted=False))
            unreachable = isinstance(error, ProviderUnreachable)
            ctx.stop("unreachable" if unreachable else "account", decision.reason)
        else:
            ctx.record(job, Failed(decision.reason, _rejection_kind(error), ctx.wall()))

    def _refuse_model(self, job: JobRecord, error: ModelRefused) -> None:
        """The provider refuses this job's model: no other job of it is sent, with one notice
        naming the model and its rows."""
        ctx = self.ctx
        model = str(job.request.get("model_name"))
        if model in ctx.refused_models:
            return
        reason = f"{ctx.provider.name} refuses model {model}: {error.describe()}"
        ctx.refused_models[model] = reason
        count, rows = ctx.store.pending_rows_of_model(model, 10)
        more = f" and {count - len(rows)} more" if count > len(rows) else ""
        shown = ", ".join(rows) + more if rows else "no other row"
        ctx.emit(
            Notice(
                f"{reason}. Its other {count} job(s) are not sent ({shown}); change the "
                "rows' model_name (`batchgen validate` lists the models) and run again",
                "warning",
            )
        )


def _rejection_kind(error: ProviderError) -> str:
    if isinstance(error, ModelRefused):
        return "model_refused"
    if isinstance(error, ContentRefused):
        return "moderation"
    return "rejected"
