"""The poll stage: follow every task the provider holds for the run until it ends.

Due tasks are asked about by the task list where the provider has one (one call for many),
else one query each. What the provider says is applied by `apply`, which the other stages use
too (an adopted task, a callback). A callback that says a task ended is confirmed by a query
sent at once, outside the schedule (`confirm`), unless it is signed and says the task succeeded
with its video. A task the provider does not find, or calls finished without a video URL, is
given `not_found_grace` seconds before its job is failed: a relay's own store can lag behind
the task.
"""

from __future__ import annotations

import math

import anyio

from batchgen.errors import (
    AccountError,
    LeaseLost,
    ProviderError,
    ProviderUnreachable,
    TaskNotFound,
    Unsupported,
)
from batchgen.providers import TaskInfo
from batchgen.providers.answers import MODERATION, THROTTLING
from batchgen.runner.context import RunContext, Tracked
from batchgen.state.changes import Advanced, Failed, Generated, Regenerated
from batchgen.status import JobStatus, status_of_task


def _cannot_follow(error: ProviderError) -> str:
    return (
        f"the provider refuses to answer about tasks ({error.describe()}): the run cannot "
        "follow what it paid for, so it ends here; the tasks stay in the state"
    )


class Poller:
    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx

    async def run(self, feeding_done: anyio.Event, checks_done: anyio.Event) -> None:
        """Poll until nothing is followed, nothing is being submitted and the feed is over;
        then close the download queue (the shutdown of the download stage)."""
        ctx = self.ctx
        while ctx.tracked or ctx.active or not feeding_done.is_set() or not checks_done.is_set():
            now = anyio.current_time()
            due = [t for t in ctx.tracked.values() if t.next_poll <= now and self._asks(t, now)]
            if due:
                await self.poll(due)
                self._check_timeouts()
            else:
                await self._sleep_until_due(now)
        ctx.queue.close()

    def _asks(self, tracked: Tracked, now: float) -> bool:
        """Whether a due task is asked about now: not while a sibling found running at its age
        answers for it (PollSchedule.covered); its next poll then moves on."""
        age = now - tracked.started
        if not self.ctx.schedule.covered(age, tracked.kind):
            return True
        tracked.next_poll = now + self.ctx.schedule.next_delay(age, tracked.kind)
        return False

    async def _sleep_until_due(self, now: float) -> None:
        ctx = self.ctx
        next_at = min((t.next_poll for t in ctx.tracked.values()), default=now + 1.0)
        with anyio.move_on_after(max(0.0, next_at - now)):
            await ctx.wake_poll.wait()
        ctx.wake_poll = anyio.Event()

    async def poll(self, due: list[Tracked]) -> None:
        remaining = due
        ctx = self.ctx
        if ctx.config.use_list_endpoint and ctx.provider.lists_tasks and len(ctx.tracked) > 1:
            remaining = await self._poll_by_list(due)
        if remaining:
            async with anyio.create_task_group() as tg:
                for tracked in remaining:
                    tg.start_soon(self._poll_one, tracked)

    async def _poll_by_list(self, due: list[Tracked]) -> list[Tracked]:
        """Learn many tasks' states from one list call (newest first: a page about twice the
        tasks in flight covers them); returns the due tasks it did not show."""
        ctx = self.ctx
        try:
            tasks = await ctx.provider.list_tasks(1, page_size=2 * len(ctx.tracked) + 20)
        except Unsupported:
            return due  # not served after all: one query each
        except ProviderError as error:
            self._poll_error(due, error)
            return []
        by_id = {t.task_id: t for t in tasks}
        for tracked in list(ctx.tracked.values()):
            info = by_id.get(tracked.task_id)
            if info is not None:
                self.apply(tracked, info)
        return [t for t in due if t.task_id not in by_id and t.job_id in ctx.tracked]

    async def confirm(self, tracked: Tracked) -> None:
        """A callback says the task ended: ask the provider now (once, however often the
        callback comes; the poll loop leaves the task alone meanwhile) and act on its answer."""
        if tracked.confirming:
            return
        tracked.confirming, tracked.next_poll = True, math.inf
        try:
            await self._poll_one(tracked)
        finally:
            tracked.confirming = False
            if tracked.next_poll == math.inf:  # (an answer that moved nothing on)
                tracked.next_poll = anyio.current_time()
            self.ctx.wake_poll.set()

    def succeeded_by_callback(self, tracked: Tracked, info: TaskInfo) -> None:
        """A signed callback, the provider's own word, says the task succeeded with its video:
        acted on as a query's answer would be (the slot freed, the download queued)."""
        self.apply(tracked, info)
        self.ctx.wake_poll.set()

    async def _poll_one(self, tracked: Tracked) -> None:
        try:
            info = await self.ctx.provider.get(tracked.task_id)
        except ProviderError as error:
            self._poll_error([tracked], error)
            return
        self.apply(tracked, info)

    def _poll_error(self, tracked: list[Tracked], error: ProviderError) -> None:
        ctx = self.ctx
        if isinstance(error, AccountError):
            # Queries refused (a revoked key, a JWT gone invalid): nothing can be drained.
            ctx.stop("account", _cannot_follow(error), at_once=True)
        elif isinstance(error, ProviderUnreachable):
            ctx.stop("unreachable", error.describe())
        now = anyio.current_time()
        for t in tracked:
            if isinstance(error, TaskNotFound):
                try:
                    self._missing(
                        t, now, f"the provider does not know task {t.task_id}", "lost_task"
                    )
                except LeaseLost:
                    ctx.let_go(t.job_id)
            else:
                t.next_poll = now + ctx.config.retry.backoff(1, ctx.rng) + 1.0

    def apply(self, tracked: Tracked, info: TaskInfo) -> None:
        """Act on what the provider says of a followed task (unless another worker holds its
        job now)."""
        try:
            self._apply(tracked, info)
        except LeaseLost:
            self.ctx.let_go(tracked.job_id)

    def _apply(self, tracked: Tracked, info: TaskInfo) -> None:
        ctx = self.ctx
        if tracked.job_id not in ctx.tracked:
            return
        status = status_of_task(info.status)
        now = anyio.current_time()
        if status == JobStatus.DOWNLOADING and not info.video_url:
            reason = "the provider reported success but gave no video URL"
            self._missing(tracked, now, reason, "no_video")
        elif status == JobStatus.DOWNLOADING:
            self._finished(tracked, info, now)
        elif status == JobStatus.FAILED:
            ctx.untrack(tracked, finished=True)
            self._failed(tracked.job_id, info)
        else:
            tracked.missing_since = None
            if status != tracked.status:
                ctx.record(tracked.job_id, Advanced(status), held=tracked.status)
                tracked.status = status
            tracked.running_seen = now - tracked.started
            tracked.polled_running = True
            ctx.schedule.seen_running(tracked.running_seen, tracked.kind)
            tracked.next_poll = now + ctx.schedule.next_delay(tracked.running_seen, tracked.kind)

    def _failed(self, job_id: str, info: TaskInfo) -> None:
        """A task the provider failed: a generation that failed, a refusal by moderation
        (sent again for a new generation only as often as --retry-moderation says), or a task
        failed for lack of slots (throttling: the cap drops; sent again only by the user,
        since whether such a task is billed is not documented)."""
        ctx = self.ctx
        reason = info.message or "the provider reported the generation failed"
        units = info.final_unit_deduction
        if THROTTLING.search(reason):
            ctx.slots.throttled()
            ctx.gate.close_for_throttle(anyio.current_time() + ctx.config.retry.backoff(1, ctx.rng))
            said = (
                f"{reason}: the provider failed the task for lack of slots; whether it bills "
                "such a task is not documented, so it is not sent again on its own "
                "(`batchgen retry --failed` does)"
            )
            ctx.record(job_id, Failed(said, "throttled_task", ctx.wall(), units, info.cash))
        elif MODERATION.search(reason):
            job = ctx.record(job_id, Failed(reason, "moderation", ctx.wall(), units, info.cash))
            if job.moderation_retries < ctx.config.retry_moderation:
                note = f"{reason}: sent again for a new generation (--retry-moderation)"
                ctx.record(job, Regenerated(note))
                ctx.wake_feed.set()
        else:
            ctx.record(job_id, Failed(reason, "generation_failed", ctx.wall(), units, info.cash))

    def _finished(self, tracked: Tracked, info: TaskInfo, now: float) -> None:
        ctx = self.ctx
        provider = None
        if info.created_at and info.updated_at:
            provider = (info.updated_at - info.created_at) / 1000
        seen = tracked.running_seen if tracked.polled_running else None
        first_of_kind = not ctx.schedule.knows(tracked.kind)
        took = ctx.schedule.learn(seen, now - tracked.started, provider, tracked.kind)
        ctx.untrack(tracked, finished=True, busy=took)
        if first_of_kind:
            self._bring_forward(now)
        generated = Generated(
            info.video_url,
            info.video_duration,
            info.final_unit_deduction,
            info.updated_at,
            info.watermark_url,
            info.cash,
        )
        ctx.record(tracked.job_id, generated, held=tracked.status)
        ctx.enqueue_download(tracked.job_id)

    def _bring_forward(self, now: float) -> None:
        """A kind's first end was seen: every task is asked about by the schedule as it now is,
        where that is sooner than its poll set before (the siblings that a climbing first task
        answered for, the kinds whose expected range the new time rescaled)."""
        schedule = self.ctx.schedule
        for t in self.ctx.tracked.values():
            t.next_poll = min(t.next_poll, max(now, t.started + schedule.first_delay(t.kind)))

    def _missing(self, tracked: Tracked, now: float, reason: str, kind: str) -> None:
        """The task is not (yet) where it should be: ask again, then give up after the grace."""
        ctx = self.ctx
        if tracked.missing_since is None:
            tracked.missing_since = now
        if now - tracked.missing_since < ctx.config.not_found_grace:
            tracked.next_poll = now + min(5.0, max(0.5, ctx.config.not_found_grace / 10))
            return
        ctx.untrack(tracked, finished=True)
        waited = f"{ctx.config.not_found_grace:.0f} s"
        ctx.record(tracked.job_id, Failed(f"{reason} (still so after {waited})", kind, ctx.wall()))

    def _check_timeouts(self) -> None:
        ctx = self.ctx
        now = anyio.current_time()
        for tracked in list(ctx.tracked.values()):
            if now - tracked.started > ctx.config.task_timeout:
                ctx.untrack(tracked, finished=False)
                reason = (
                    f"task {tracked.task_id} still not finished after "
                    f"{ctx.config.task_timeout:.0f} s; `batchgen retry` polls it again"
                )
                try:
                    ctx.record(tracked.job_id, Failed(reason, "task_timeout", ctx.wall()))
                except LeaseLost:
                    ctx.let_go(tracked.job_id)
