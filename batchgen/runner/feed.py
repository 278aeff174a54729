"""The feed stage: pending jobs into the provider's slots.

    slot free → `submitting` committed durably → create → `submitted` committed → followed

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
    DuplicateExternalId,
    ProviderError,
    ProviderUnreachable,
    ThrottledError,
)
from batchgen.jobs import external_task_id, resolve_body
from batchgen.policy import Action, Decision
from batchgen.providers import TaskInfo
from batchgen.runner.context import RunContext
from batchgen.runner.recovery import DUPLICATE, Recovery
from batchgen.status import JobStatus, status_of_task
from batchgen.store import JobRecord

FEED_BATCH = 256


class Feeder:
    def __init__(self, ctx: RunContext, recovery: Recovery) -> None:
        self.ctx = ctx
        self.recovery = recovery

    async def run(self, tg: TaskGroup, done: anyio.Event) -> None:
        """Submit every due job until none is pending or waiting, or the run stops. Creates
        and look-ups run in `tg`; `done` is set when no more will be started."""
        ctx = self.ctx
        cursor = -1
        try:
            while ctx.stopping is None and ctx.config.submit:
                now = ctx.wall()
                lookups = [j for j in ctx.store.due_lookups(now) if j.job_id not in ctx.active]
                batch = lookups + ctx.store.due_pending(now, FEED_BATCH, cursor)
                if batch:
                    cursor = await self._dispatch(batch, tg, cursor)
                    continue
                cursor = -1
                if not ctx.active and ctx.store.next_not_before() is None:
                    break
                await self._sleep_until_work()
        finally:
            done.set()
            ctx.wake_poll.set()

    async def _dispatch(self, batch: list[JobRecord], tg: TaskGroup, cursor: int) -> int:
        ctx = self.ctx
        for job in batch:
            await ctx.slots.acquire()
            await self._wait_out_throttling()
            if ctx.stopping is not None:
                ctx.slots.release(finished=False)
                break
            if job.status == JobStatus.PENDING and not self._fits_budget(job):
                ctx.slots.release(finished=False)
                break
            if job.status == JobStatus.PENDING:
                cursor = max(cursor, job.seq)
                ext = external_task_id(job.job_id, job.generation)
                old = ctx.store.mark_submitting(job.job_id, ext, ctx.wall())
                ctx.announce(job, old, JobStatus.SUBMITTING)
                job = ctx.job(job.job_id)
                tg.start_soon(self._guarded, self.create, job)
            else:
                ctx.store.lease(job.job_id, ctx.wall())
                reason = job.last_error or "its create's answer was lost"
                tg.start_soon(self._guarded, self._settle, job, reason)
            ctx.active.add(job.job_id)
        return cursor

    def _fits_budget(self, job: JobRecord) -> bool:
        """Whether the job's highest price fits in what the budget has left; stops the run's
        submissions if not."""
        budget = self.ctx.budget
        if budget is None or budget.fits(job.request):
            return True
        self.ctx.stop("budget", budget.stop_message())
        return False

    async def _wait_out_throttling(self) -> None:
        ctx = self.ctx
        while ctx.stopping is None and anyio.current_time() < self._resume_at():
            with anyio.move_on_after(self._resume_at() - anyio.current_time()):
                await ctx.wake_feed.wait()
            ctx.wake_feed = anyio.Event()

    def _resume_at(self) -> float:
        return max(self.ctx.throttled_until, self.ctx.paused_until)

    async def _sleep_until_work(self) -> None:
        ctx = self.ctx
        next_at = ctx.store.next_not_before()
        delay = 1.0 if next_at is None else max(0.01, next_at - ctx.wall())
        with anyio.move_on_after(min(delay, 5.0)):
            await ctx.wake_feed.wait()
        ctx.wake_feed = anyio.Event()

    async def _guarded(
        self, step: Callable[..., Awaitable[None]], job: JobRecord, *args: Any
    ) -> None:
        """Run one job's step; the job is no longer active after it, whatever happens."""
        try:
            await step(job, *args)
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
            await self._create_failed(job, error)
            return
        except BatchgenError as error:
            ctx.fail(job, str(error), "input")
            ctx.slots.release(finished=False)
            return
        self._accepted(job, task)

    def _accepted(self, job: JobRecord, task: TaskInfo) -> None:
        ctx = self.ctx
        ctx.throttles = ctx.failures = 0
        status = status_of_task(task.status or "submitted")
        if status in (JobStatus.DOWNLOADING, JobStatus.FAILED):
            status = JobStatus.SUBMITTED  # the first poll acts on it
        if ctx.store.job_of_task(task.task_id) not in (None, job.job_id):
            self.recovery.adopt(job, task, "accepted")  # refuses a task id another job has
            return
        old = ctx.store.mark_accepted(job.job_id, task.task_id, status, created_at=task.created_at)
        ctx.slots.accepted()
        ctx.announce(job, old, status)
        ctx.track(job, task.task_id, status)

    async def _create_failed(self, job: JobRecord, error: ProviderError) -> None:
        ctx = self.ctx
        if isinstance(error, ThrottledError) and anyio.current_time() >= ctx.throttled_until:
            ctx.throttles += 1  # creates refused together count once: they met one throttle
        decision = ctx.config.retry.decide(error, job.attempts, ctx.throttles, ctx.rng)
        if decision.action == Action.SETTLE:
            await self._settle_after(job, error, decision)
            return
        if decision.action in (Action.WAIT, Action.RETRY) and not isinstance(error, ThrottledError):
            self._pause_after_failure(unreachable=decision.action == Action.WAIT)
        self._requeue(job, error, decision)
        ctx.slots.release(finished=False)

    def _pause_after_failure(self, *, unreachable: bool) -> None:
        """Count a create not carried out (those failing together count once) and pause all
        creates: at once when no connection could be made, from the third 5xx in a row."""
        ctx = self.ctx
        now = anyio.current_time()
        if now < ctx.paused_until:
            return
        ctx.failures += 1
        pause = ctx.config.retry.pause_after_failures(
            ctx.failures,
            unreachable=unreachable,
            rng=ctx.rng,
            ceiling=ctx.config.unreachable_at_start / 3,
        )
        ctx.paused_until = now + pause

    async def _settle_after(self, job: JobRecord, error: ProviderError, decision: Decision) -> None:
        if isinstance(error, DuplicateExternalId):
            self.ctx.store.mark_waiting(job.job_id, 0, decision.reason, DUPLICATE, count=False)
            await self.recovery.settle(self.ctx.job(job.job_id), decision.reason, None)
        else:
            await self.recovery.settle(job, decision.reason, self.create)

    def _requeue(self, job: JobRecord, error: ProviderError, decision: Decision) -> None:
        """Back to pending (wait, retry), failed, or stopped, as `decision` says."""
        ctx = self.ctx
        now = ctx.wall()
        if decision.action == Action.WAIT:
            if isinstance(error, ThrottledError):
                ctx.slots.throttled()
                resume = anyio.current_time() + decision.delay
                ctx.throttled_until = max(ctx.throttled_until, resume)
            kind = "throttled" if isinstance(error, ThrottledError) else "unreachable"
            old = ctx.store.mark_retry(
                job.job_id, now + decision.delay, decision.reason, kind, count=False
            )
            ctx.announce(job, old, JobStatus.PENDING, decision.reason)
        elif decision.action == Action.RETRY:
            old = ctx.store.mark_retry(
                job.job_id, now + decision.delay, decision.reason, "transient"
            )
            ctx.announce(job, old, JobStatus.PENDING, decision.reason)
        elif decision.action == Action.STOP_RUN:
            old = ctx.store.mark_retry(job.job_id, now, decision.reason, "stopped", count=False)
            ctx.announce(job, old, JobStatus.PENDING, decision.reason)
            unreachable = isinstance(error, ProviderUnreachable)
            ctx.stop("unreachable" if unreachable else "account", decision.reason)
        else:
            ctx.fail(job, decision.reason, "rejected")
