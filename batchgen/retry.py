"""What `batchgen retry` says of a job it was named but cannot retry: only failed and unknown
jobs go back to work."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from batchgen.status import JobStatus
from batchgen.store import Store

RETRYABLE = (JobStatus.FAILED, JobStatus.UNKNOWN)


def nothing_to_retry(store: Store, job_ids: Iterable[str]) -> Iterator[str]:
    """Why each of `job_ids` that is neither failed nor unknown is left as it is."""
    for job_id in job_ids:
        job = store.get(job_id)
        if job is not None and job.status not in RETRYABLE:
            yield f"{job.row_id} is {job.status}: {_why(job.status)}"


def _why(status: JobStatus) -> str:
    if status == JobStatus.DONE:
        return "nothing to retry"
    if status == JobStatus.PENDING:
        return "the next run sends it anyway"
    return "its task is followed by the next run; nothing to retry"
