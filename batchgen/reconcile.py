"""Find tasks the provider has for this run that the state does not know, and adopt them.

A task can be paid for and unknown to the state when a create's answer was lost and the job was
later failed, or when a state file was lost. Reconcile pages the provider's task list (where it
is served) and otherwise looks each unresolved job up by its external_task_id.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from batchgen.errors import TaskNotFound
from batchgen.jobs import job_id_of_external
from batchgen.kling import LIST_PAGE_MAX, KlingClient, TaskInfo
from batchgen.status import JobStatus
from batchgen.store import JobRecord, Store

MAX_PAGES = 1000


@dataclass(frozen=True, slots=True)
class Adopted:
    row_id: str
    job_id: str
    task_id: str
    task_status: str


def _unresolved(job: JobRecord) -> bool:
    """A job with no task recorded that may nonetheless have one at the provider."""
    if job.task_id is not None:
        return False
    return job.status in (JobStatus.PENDING, JobStatus.SUBMITTING, JobStatus.FAILED)


def adopt(store: Store, job: JobRecord, task: TaskInfo) -> Adopted:
    """Record `task` as the job's task; the next run polls and downloads it."""
    submitted = task.created_at / 1000 if task.created_at else time.time()
    with store.transaction():
        if job.status == JobStatus.FAILED:
            store.mark_retry(job.job_id, 0, "adopted by reconcile", "reconciled", count=False)
        if job.status != JobStatus.SUBMITTING:
            store.mark_submitting(job.job_id, task.external_task_id or "", submitted)
        store.mark_accepted(
            job.job_id, task.task_id, JobStatus.SUBMITTED, created_at=task.created_at
        )
    return Adopted(job.row_id, job.job_id, task.task_id, task.status)


async def reconcile(store: Store, client: KlingClient) -> list[Adopted]:
    """Adopt every provider task that belongs to a job of this state but is not recorded."""
    try:
        return await _by_list(store, client)
    except TaskNotFound:
        return await _by_lookup(store, client)


async def _by_list(store: Store, client: KlingClient) -> list[Adopted]:
    adopted = []
    for page in range(1, MAX_PAGES + 1):
        tasks = await client.list_tasks(page, LIST_PAGE_MAX)
        for task in tasks:
            found = _owner(store, task)
            if found is not None:
                adopted.append(adopt(store, found, task))
        if len(tasks) < LIST_PAGE_MAX:
            break
    return adopted


def _owner(store: Store, task: TaskInfo) -> JobRecord | None:
    parsed = job_id_of_external(task.external_task_id or "")
    if parsed is None:
        return None
    job = store.get(parsed[0])
    if job is None or not _unresolved(job) or job.generation != parsed[1]:
        return None
    return job


async def _by_lookup(store: Store, client: KlingClient) -> list[Adopted]:
    adopted = []
    candidates = [
        job for job in store.with_status(JobStatus.SUBMITTING, JobStatus.FAILED) if _unresolved(job)
    ]
    for job in candidates:
        task = await client.find_by_external_id(job.current_external_id)
        if task is not None:
            adopted.append(adopt(store, job, task))
    return adopted
