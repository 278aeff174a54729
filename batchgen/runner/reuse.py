"""A create the account has already been sent from another state, met by the feed: claimed in
the ledger first, and followed, reused, waited for or pointed at instead of paid again
(runner/sharing.py decides which; this carries it out through the run's one door)."""

from __future__ import annotations

from collections.abc import Sequence

from batchgen.download import local_video_url
from batchgen.errors import LeaseLost
from batchgen.events import Notice
from batchgen.money.pricing import price_of
from batchgen.runner.context import RunContext
from batchgen.runner.sharing import WAIT_FOR_OTHER, Claim, Claimed, task_facts
from batchgen.state.changes import Failed, Reused, SentElsewhere, Waiting
from batchgen.state.records import JobRecord
from batchgen.status import JobStatus

SENT_ELSEWHERE = "sent_elsewhere"  # the error kind of a job unknown because another state sent it


def claim_creates(
    ctx: RunContext, creates: Sequence[tuple[JobRecord, str]]
) -> list[tuple[JobRecord, str]]:
    """Claim in the ledger, in one commit, the external ids of creates about to leave
    together; returns those (job, external id) that are this run's to send. The claims
    survive a power cut once the ledger's `sync()` returns, which the feed awaits before they
    leave. Each other job is taken where the ledger says, and the slot the feed took for it is
    given back (kept, for a task it now follows)."""
    if not creates:
        return []
    if ctx.shared is None:
        return list(creates)
    priced = [(job, ext, price_of(job.request).usd) for job, ext in creates]
    claims = ctx.shared.claim_all(priced, synced=False)
    mine: list[tuple[JobRecord, str]] = []
    for (job, ext), claim in zip(creates, claims, strict=True):
        if claim.action in (Claimed.SEND, Claimed.TAKE_OVER):
            if claim.action == Claimed.TAKE_OVER:
                said = f"{job.row_id}: sent again as asked; {claim.where()} sent it first"
                ctx.emit(Notice(said))
            mine.append((job, ext))
        else:
            try:
                _taken_elsewhere(ctx, job, ext, claim)
            except LeaseLost:
                ctx.slots.release(finished=False)
                ctx.let_go(job.job_id)
    return mine


def _taken_elsewhere(ctx: RunContext, job: JobRecord, external_id: str, claim: Claim) -> None:
    if claim.action == Claimed.FOLLOW:
        _follow(ctx, job, external_id, claim)
        return
    if claim.action == Claimed.REUSE_VIDEO:
        _reuse_video(ctx, job, external_id, claim)
    elif claim.action == Claimed.FAILED:
        reason = f"failed in {claim.where()}: {_said(claim)}; `batchgen retry` sends a new one"
        ctx.record(job, Failed(reason, "failed_elsewhere", ctx.wall()))
    elif claim.action == Claimed.WAIT:
        said = f"being sent by {claim.where()}"
        ctx.record(job, Waiting(ctx.wall() + WAIT_FOR_OTHER, said, "elsewhere", counted=False))
    else:
        reason = (
            f"sent by {claim.where()}, where its outcome is unknown ({_said(claim)}); settle it "
            "there (`batchgen retry --unknown` or `adopt` in that run), or here with "
            "`batchgen adopt` / `batchgen retry --unknown`"
        )
        assert claim.send is not None
        ctx.record(job, SentElsewhere(external_id, claim.send.state_id, reason, ctx.wall()))
    ctx.slots.release(finished=False)  # after the record: a worker that lost the job gives it once


def settle_from_ledger(ctx: RunContext, job: JobRecord) -> bool:
    """An `unknown` job whose create another state sent: followed, reused or failed as that
    state's entry now says (it may have found the task since). False if it is still unknown
    there: the provider is asked, as for any unknown job."""
    if ctx.shared is None or job.external_task_id is None:
        return False
    claim = ctx.shared.recheck(job.external_task_id)
    if claim.action == Claimed.FOLLOW:
        _follow(ctx, job, job.external_task_id, claim, holding=False)
    elif claim.action == Claimed.REUSE_VIDEO:
        _reuse_video(ctx, job, job.external_task_id, claim)
    elif claim.action == Claimed.FAILED:
        reason = f"failed in {claim.where()}: {_said(claim)}; `batchgen retry` sends a new one"
        ctx.record(job, Failed(reason, "failed_elsewhere", ctx.wall()))
    else:
        return False
    return True


def _follow(
    ctx: RunContext, job: JobRecord, external_id: str, claim: Claim, *, holding: bool = True
) -> None:
    """Follow the task another state paid for, from the slot the feed took (or, `holding`
    False, a slot taken past the cap, as for a task found on resume)."""
    send = claim.send
    assert send is not None and send.task_id is not None
    note = f"following task {send.task_id}, paid by {claim.where()}"
    change = Reused(send.task_id, external_id, JobStatus.SUBMITTED, send.state_id, ctx.wall())
    job = ctx.record(job, change, note)
    ctx.track(job, send.task_id, JobStatus.SUBMITTED, since=send.sent_at, resumed=not holding)


def _reuse_video(ctx: RunContext, job: JobRecord, external_id: str, claim: Claim) -> None:
    """Take the video another state downloaded (checked by its sha256 as it is copied)."""
    send = claim.send
    assert send is not None and send.video_path and send.video_sha256
    url = local_video_url(send.video_path, send.video_sha256)
    note = f"reusing the video of {claim.where()}"
    change = Reused(
        send.task_id,
        external_id,
        JobStatus.DOWNLOADING,
        send.state_id,
        ctx.wall(),
        url,
        task_facts(send),
    )
    ctx.record(job, change, note)
    ctx.enqueue_download(job.job_id)


def _said(claim: Claim) -> str:
    return (claim.send.note if claim.send else None) or "no reason recorded"
