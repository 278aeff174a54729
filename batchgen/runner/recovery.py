"""Creates whose outcome is unknown, and what an earlier run left behind.

A job is `submitting` from the moment before its create leaves until the answer is recorded.
When that answer is lost (a reset, a timeout, a gateway's 524, a cut-off body, a kill), the
task may or may not exist, and the provider's capabilities decide what happens:

    can look up by external id   found, echoing exactly that id → adopt it
                                 not found, and the provider deduplicates ids → send again
                                 not found for `lookup_grace` s (a relay that answers
                                 look-ups but may not deduplicate) → send again
    cannot look up               → `unknown`: never sent again without the user

A create refused as a duplicate (the provider has the id) is looked up and never sent again.
Whether a relay answers look-ups is probed once per state and base URL, when its first task
ends, and recorded: a relay that does gets the full guarantee.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from anyio.abc import TaskGroup

from batchgen.download import PART_SUFFIX
from batchgen.errors import AccountError, OutcomeUnknown, ProviderError, ProviderUnreachable
from batchgen.events import Notice
from batchgen.output import VIDEOS_DIR
from batchgen.providers import TaskInfo
from batchgen.runner.context import RunContext
from batchgen.runner.poll import Poller
from batchgen.state.changes import Accepted, Unknown, Waiting
from batchgen.state.records import JobRecord
from batchgen.status import JobStatus

Resend = Callable[[JobRecord], Awaitable[None]]
DUPLICATE = "duplicate_external_id"


class Recovery:
    def __init__(self, ctx: RunContext, poller: Poller) -> None:
        self.ctx = ctx
        self.poller = poller
        self._probing = False
        self.stages: TaskGroup | None = None  # where the probe runs (the run waits for it)

    def recover_at_start(self) -> None:
        """Pick up what an earlier run left: tasks in flight, downloads, lost creates."""
        ctx = self.ctx
        ctx.store.release_leases()
        for part in (ctx.run_dir / VIDEOS_DIR).glob(f"*{PART_SUFFIX}"):
            part.unlink(missing_ok=True)
        if ctx.store.get_meta(self._probe_key) == "confirmed":
            ctx.provider.capabilities = ctx.provider.capabilities.with_confirmed_lookup()
        for job in ctx.store.with_status(JobStatus.SUBMITTED, JobStatus.RUNNING):
            ctx.track(job, job.task_id or "", job.status, since=job.submitted_at, resumed=True)
        for job in ctx.store.with_status(JobStatus.DOWNLOADING):
            ctx.enqueue_download(job.job_id)
        if not ctx.provider.capabilities.external_lookup:
            for job in list(ctx.store.with_status(JobStatus.SUBMITTING)):
                self._give_up(job, "an earlier run stopped after recording this create")

    async def settle(self, job: JobRecord, reason: str, resend: Resend | None) -> None:
        """Decide a `submitting` job whose create may have been accepted. Called holding a
        slot: it is kept by an adopted or resent task, released otherwise. `resend` None:
        the job must not be sent again (the provider called its id a duplicate)."""
        ctx = self.ctx
        if not ctx.provider.capabilities.external_lookup:
            self._give_up(job, reason)
            ctx.slots.release(finished=False)
            return
        try:
            task = await ctx.provider.find_by_external_id(job.current_external_id)
        except OutcomeUnknown as error:
            self._give_up(job, f"{reason}; {error}")
        except (AccountError, ProviderUnreachable) as error:
            kind = "account" if isinstance(error, AccountError) else "unreachable"
            ctx.stop(kind, str(error), at_once=True)
        except ProviderError as error:
            self._look_again(job, reason, error)
        else:
            if task is not None:
                self.adopt(job, task, "found the task of a lost create at the provider")
                return
            if await self._resend_if_safe(job, resend):
                return
        ctx.slots.release(finished=False)

    def adopt(self, job: JobRecord, task: TaskInfo, note: str) -> None:
        """Follow a task the provider already has instead of paying for a new one."""
        ctx = self.ctx
        owner = ctx.store.job_of_task(task.task_id)
        if owner is not None and owner != job.job_id:
            self._give_up(job, f"the provider answered task {task.task_id}, which is job {owner}'s")
            ctx.slots.release(finished=False)
            return
        job = ctx.record(job, Accepted(task.task_id, JobStatus.SUBMITTED, task.created_at, note))
        ctx.adopted += 1
        ctx.emit(Notice(f"{job.row_id}: {note} (task {task.task_id})"))
        since = task.created_at / 1000 if task.created_at else None
        tracked = ctx.track(job, task.task_id, JobStatus.SUBMITTED, since=since)
        self.poller.apply(tracked, task)

    def task_finished(self, job_id: str, task: TaskInfo) -> None:
        """A task ended: the provider surely holds it now, the moment to probe (once per state
        and base URL) whether a provider that does not document look-ups by external id
        answers them anyway. Recorded, and used from then on."""
        ctx = self.ctx
        if (
            self._probing
            or self.stages is None
            or not ctx.config.confirm_lookup
            or ctx.provider.capabilities.external_lookup
            or ctx.store.get_meta(self._probe_key) is not None
        ):
            return
        self._probing = True
        self.stages.start_soon(self._probe, task, ctx.job(job_id).current_external_id)

    async def _probe(self, task: TaskInfo, external_id: str) -> None:
        ctx = self.ctx
        confirmed = await ctx.provider.confirm_external_lookup(task, external_id)
        ctx.store.set_meta(self._probe_key, "confirmed" if confirmed else "refuted")
        if confirmed:
            ctx.emit(
                Notice(
                    f"{ctx.provider.name} answers look-ups by external_task_id: lost creates "
                    "will be looked up instead of left unknown"
                )
            )

    async def _resend_if_safe(self, job: JobRecord, resend: Resend | None) -> bool:
        """Send again a job its provider does not find, where that cannot pay twice."""
        ctx = self.ctx
        now = ctx.wall()
        waited = now - (job.submitted_at or now)
        grace = ctx.config.lookup_grace
        if resend is None or job.error_kind == DUPLICATE:
            if waited >= grace:
                self._give_up(
                    job, "the provider refused the create as a duplicate but does not show the task"
                )
            else:
                retry_at = now + min(5.0, grace / 6)
                ctx.record(job, Waiting(retry_at, "not found yet", DUPLICATE, counted=False))
            return False
        if ctx.provider.capabilities.dedupes_external_ids or waited >= grace:
            await resend(job)
            return True
        retry_at = (job.submitted_at or now) + grace
        ctx.record(job, Waiting(retry_at, "not found yet; looking again", "lookup", counted=False))
        return False

    def _look_again(self, job: JobRecord, reason: str, error: ProviderError) -> None:
        ctx = self.ctx
        attempts = job.attempts + 1
        if attempts >= ctx.config.retry.max_attempts:
            self._give_up(
                job, f"{reason}; looking it up failed {attempts} times: {error.describe()}"
            )
            return
        delay = ctx.config.retry.backoff(attempts, ctx.rng)
        kind = DUPLICATE if job.error_kind == DUPLICATE else "lookup"
        ctx.record(job, Waiting(ctx.wall() + delay, error.describe(), kind))

    def _give_up(self, job: JobRecord, reason: str) -> None:
        """The job becomes `unknown`: the provider may hold its task, nothing can tell."""
        ctx = self.ctx
        said = f"{reason}; the provider may have accepted it ({ctx.provider.name}): not sent again"
        ctx.record(job, Unknown(said, ctx.wall()))

    @property
    def _probe_key(self) -> str:
        provider = self.ctx.provider
        return f"lookup_probe:{provider.name}:{provider.transport.base_url}"
