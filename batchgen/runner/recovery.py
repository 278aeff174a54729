"""Creates whose outcome is unknown, and what an earlier run left behind.

A job is `submitting` from the moment before its create leaves until the answer is recorded.
When that answer is lost (a reset, a timeout, a gateway's 524, a cut-off body, a kill), the
task may or may not exist. It is looked up by its external id in every form (lookup.py):

    found, echoing exactly that id          → adopted: followed and downloaded, paid once
    not found, and this account has been
      seen to refuse a reused external id   → sent again (a duplicate would be refused)
    not found                               → `unknown`: never sent again on its own

A negative answer is evidence, not a licence: no provider documents that it refuses a reused
external id (kling-api.md §18.2 (2)), so "not found" alone never spends money. Unknown jobs
are looked up again when a run starts and every `unknown_lookup_every` seconds while it goes
on, and adopted the moment a look-up finds them. With `--resend-unfound`, the user allows
those no look-up has found for that long to be sent again, knowing they may be paid twice.

A create refused as a duplicate (the provider has the id) is looked up and never sent again;
the refusal is recorded: from then on this account is known to refuse reused ids.
"""

from __future__ import annotations

import glob
from collections.abc import Awaitable, Callable

import anyio

from batchgen import output
from batchgen.download import PART_SUFFIX
from batchgen.errors import AccountError, LeaseLost, ProviderError
from batchgen.events import Notice
from batchgen.output import VIDEOS_DIR
from batchgen.providers import TaskInfo
from batchgen.runner.context import RunContext
from batchgen.runner.lookup import Finder, Found
from batchgen.runner.poll import Poller
from batchgen.runner.reuse import SENT_ELSEWHERE, settle_from_ledger
from batchgen.state.changes import Accepted, SentAgain, Unknown, Waiting
from batchgen.state.records import JobRecord
from batchgen.status import JobStatus

Resend = Callable[[JobRecord], Awaitable[None]]
DUPLICATE = "duplicate_external_id"
RESENT = "resent"  # error_kind of a job sent again under the id it was sent with before
SWEEP_TICK = 0.5  # seconds between checks whether unknown jobs are due a look-up
LOOKING_AGAIN = "; looking it up again: "  # joins a create's answer to the look-ups so far


class Recovery:
    def __init__(self, ctx: RunContext, poller: Poller) -> None:
        self.ctx = ctx
        self.poller = poller
        self.finder = Finder(ctx.provider, ctx.store, ctx.wall)
        self.resend_at: float | None = None  # wall time an unknown job is next due a resend
        # A sweep is under way: `resend_at` is being worked out again, and a job it looks up
        # may be sent again before it ends (the feed waits for it before it stops).
        self.sweeping = False

    def recover_at_start(self) -> bool:
        """Pick up what an earlier run left: tasks in flight, downloads, lost creates (these
        are due for a look-up at once). True when no other worker is on the run."""
        ctx = self.ctx
        claims = ctx.store.claims
        alone = claims is None or len(claims.workers(ctx.wall())) <= 1
        if alone:  # no other process may be writing a download
            for part in (ctx.run_dir / VIDEOS_DIR).glob(f"*{PART_SUFFIX}"):
                part.unlink(missing_ok=True)
        if claims is not None:  # a worker: only what no live worker holds
            self.take_over()
            return alone
        ctx.store.release_leases()
        for job in ctx.store.with_status(JobStatus.SUBMITTED, JobStatus.RUNNING):
            ctx.track(job, job.task_id or "", job.status, since=job.submitted_at, resumed=True)
        for job in ctx.store.with_status(JobStatus.DOWNLOADING):
            ctx.enqueue_download(job.job_id)
        return True

    def take_over(self) -> None:
        """A worker's share of what others left: the jobs in flight whose worker stopped
        renewing its lease, followed, downloaded or looked up (never sent again blindly)."""
        ctx = self.ctx
        assert ctx.store.claims is not None
        jobs = ctx.store.claims.take_over(ctx.wall())
        for job in jobs:
            video = output.video_path(ctx.run_dir, job.row_id)
            for part in video.parent.glob(f"{glob.escape(video.name)}*{PART_SUFFIX}"):
                part.unlink(missing_ok=True)  # the download of the worker that held it
            if job.status in (JobStatus.SUBMITTED, JobStatus.RUNNING):
                ctx.track(job, job.task_id or "", job.status, since=job.submitted_at, resumed=True)
            elif job.status == JobStatus.DOWNLOADING:
                ctx.enqueue_download(job.job_id)
        if jobs:
            ctx.emit(Notice(f"took over {len(jobs)} job(s) no live worker holds"))
            ctx.wake_feed.set()

    @property
    def refusal_key(self) -> str:
        provider = self.ctx.provider
        return f"refuses_reused_ids:{provider.name}:{provider.transport.base_url}"

    def refuses_reused_ids(self) -> bool:
        """Documented for this provider, or seen on this account: a resend under the same
        external id is refused rather than paid twice."""
        documented = self.ctx.provider.capabilities.refuses_reused_ids
        return documented or self.ctx.store.get_meta(self.refusal_key) is not None

    def saw_duplicate_refused(self) -> None:
        if self.ctx.store.get_meta(self.refusal_key) is None:
            self.ctx.store.set_meta(self.refusal_key, f"seen at {self.ctx.wall():.0f}")

    async def settle(self, job: JobRecord, reason: str, resend: Resend | None) -> None:
        """Decide a `submitting` job whose create may have been accepted. Called holding a
        slot: it is kept by an adopted or resent task, released otherwise. `resend` None:
        the job must not be sent again (the provider called its id a duplicate, or refused
        a resend it would not say why)."""
        ctx = self.ctx
        reason = reason.split(LOOKING_AGAIN)[0]  # what the create was answered, not look-ups
        if await self._adopt_from_ledger(job):
            return
        try:
            found = await self.finder.find(job.job_id, job.current_external_id, job.submitted_at)
        except AccountError as error:
            # No look-up, and so no drain, can get past it: the run ends now (exit 3).
            ctx.stop("account", error.describe(), at_once=True)
            ctx.slots.release(finished=False)
            return
        if found.task is not None:
            self.adopt(job, found.task, f"found the task of a lost create ({found.form})")
            return
        if found.unanswered and job.attempts + 1 < ctx.config.retry.max_attempts:
            self._look_again(job, reason, found)
        elif resend is not None and job.error_kind != DUPLICATE and self.refuses_reused_ids():
            await resend(job)
            return
        else:
            self._not_found(job, reason, found)
        ctx.slots.release(finished=False)

    async def _adopt_from_ledger(self, job: JobRecord, *, holding: bool = True) -> bool:
        """The task the account ledger holds for this state's create (recorded by a worker
        that lost the job as its answer came), adopted as the provider describes it."""
        ctx = self.ctx
        task_id = ctx.shared.own_task(job.current_external_id) if ctx.shared else None
        if task_id is None:
            return False
        try:
            info = await ctx.provider.get(task_id)
        except ProviderError:
            return False
        self.adopt(job, info, "found its task in the account ledger", holding=holding)
        return True

    def _look_again(self, job: JobRecord, reason: str, found: Found) -> None:
        """Some forms gave no answer to believe: ask again after a back-off (the job stays
        `submitting`, due for a look-up). What the create was answered stays at the head of
        the job's error, the evidence an `unknown` shows."""
        ctx = self.ctx
        delay = ctx.config.retry.backoff(job.attempts + 1, ctx.rng)
        said = "; ".join(s.line() for s in found.sightings)
        kind = DUPLICATE if job.error_kind == DUPLICATE else "lookup"
        ctx.record(job, Waiting(ctx.wall() + delay, f"{reason}{LOOKING_AGAIN}{said}", kind))

    def adopt(self, job: JobRecord, task: TaskInfo, note: str, *, holding: bool = True) -> None:
        """Follow a task the provider already has instead of paying for a new one; `holding`:
        the job holds a slot (else the task takes one past the cap, as on resume)."""
        ctx = self.ctx
        owner = ctx.store.job_of_task(task.task_id)
        if owner is not None and owner != job.job_id:
            self._give_up(job, f"the provider answered task {task.task_id}, which is job {owner}'s")
            if holding:
                ctx.slots.release(finished=False)
            return
        job = ctx.record(job, Accepted(task.task_id, JobStatus.SUBMITTED, task.created_at, note))
        ctx.adopted += 1
        ctx.emit(Notice(f"{job.row_id}: {note} (task {task.task_id})"))
        since = task.created_at / 1000 if task.created_at else None
        tracked = ctx.track(
            job, task.task_id, JobStatus.SUBMITTED, since=since, resumed=not holding
        )
        self.poller.apply(tracked, task)

    # -- unknown jobs ---------------------------------------------------------------------

    async def sweep(self) -> None:
        """Look every unknown job up again: adopt those found; send again those no look-up
        has found for `resend_unfound` seconds, where the user allowed it."""
        ctx = self.ctx
        self.resend_at = None
        self.sweeping = True
        try:
            for job in list(ctx.store.unknown_in_job_order()):
                if ctx.stopping is not None:
                    return
                try:
                    await self._sweep_one(job)
                except AccountError as error:
                    ctx.stop("account", error.describe(), at_once=True)
                    return
                except LeaseLost:
                    ctx.let_go(job.job_id)  # another worker settles it
        finally:
            self.sweeping = False

    async def _sweep_one(self, job: JobRecord) -> None:
        if job.error_kind == SENT_ELSEWHERE and settle_from_ledger(self.ctx, job):
            return
        if await self._adopt_from_ledger(job, holding=False):
            return
        found = await self.finder.find(job.job_id, job.current_external_id, job.submitted_at)
        if found.task is not None:
            note = f"found the task of an unknown job ({found.form})"
            self.adopt(job, found.task, note, holding=False)
        else:
            self._resend_when_allowed(job)

    async def sweep_while_feeding(self, feeding_done: anyio.Event) -> None:
        """Sweep every `unknown_lookup_every` seconds, and when a resend falls due, until
        nothing more is fed."""
        ctx = self.ctx
        next_sweep = ctx.wall() + ctx.config.unknown_lookup_every
        while not feeding_done.is_set() and ctx.stopping is None:
            with anyio.move_on_after(SWEEP_TICK):
                await feeding_done.wait()
            now = ctx.wall()
            due = self.resend_at is not None and self.resend_at <= now
            if not feeding_done.is_set() and (due or now >= next_sweep):
                await self.sweep()
                next_sweep = ctx.wall() + ctx.config.unknown_lookup_every

    def _resend_when_allowed(self, job: JobRecord) -> None:
        ctx = self.ctx
        allowed = ctx.config.resend_unfound
        if allowed is None:
            return
        since = job.finished_at or ctx.wall()
        due = since + allowed
        if due > ctx.wall():
            self.resend_at = due if self.resend_at is None else min(self.resend_at, due)
            return
        waited = _duration(allowed)
        note = f"no look-up found its task in {waited}: sent again (--resend-unfound)"
        ctx.record(job, SentAgain(note, RESENT))
        ctx.emit(Notice(f"{job.row_id}: {note}; it may be paid twice", "warning"))
        ctx.wake_feed.set()

    # -- giving up --------------------------------------------------------------------------

    def _not_found(self, job: JobRecord, reason: str, found: Found) -> None:
        said = "; ".join(s.line() for s in found.sightings) or "no look-up could be made"
        if job.error_kind == DUPLICATE:
            reason = "the provider refused the create as a duplicate but no look-up shows the task"
        self._give_up(job, f"{reason}; looked up: {said}")
        allowed = self.ctx.config.resend_unfound
        if allowed is not None and job.error_kind != DUPLICATE:
            due = self.ctx.wall() + allowed
            self.resend_at = due if self.resend_at is None else min(self.resend_at, due)

    def _give_up(self, job: JobRecord, reason: str) -> None:
        """The job becomes `unknown`: the provider may hold its task, nothing can tell."""
        ctx = self.ctx
        said = f"{reason}; the provider may have accepted it ({ctx.provider.name}): not sent again"
        ctx.record(job, Unknown(said, ctx.wall()))


def _duration(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:g} h"
    if seconds >= 60:
        return f"{seconds / 60:g} min"
    return f"{seconds:g} s"
