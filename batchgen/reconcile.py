"""Find tasks the provider has for this run that the state does not know, and adopt them.

A task can be paid for and unknown to the state when a create's answer was lost, or when a
state file was lost. Reconcile pages the provider's task list where it has one, else looks
each unresolved job up by its external_task_id; a task is adopted only when it echoes exactly
the external id of an unresolved job. A provider that can do neither (CometAPI) cannot be
reconciled: its unknown jobs are resolved with `batchgen adopt`.
"""

from __future__ import annotations

from dataclasses import dataclass

from batchgen.errors import Unsupported, UsageError
from batchgen.jobs import job_id_of_external
from batchgen.providers import LIST_PAGE_MAX, Provider, TaskInfo
from batchgen.status import JobStatus
from batchgen.store import JobRecord, Store

MAX_PAGES = 1000
UNRESOLVED = (JobStatus.PENDING, JobStatus.SUBMITTING, JobStatus.FAILED, JobStatus.UNKNOWN)


@dataclass(frozen=True, slots=True)
class Adopted:
    row_id: str
    job_id: str
    task_id: str
    task_status: str


def _unresolved(job: JobRecord) -> bool:
    """A job with no task recorded that may nonetheless have one at the provider."""
    return job.task_id is None and job.status in UNRESOLVED


def adopt(store: Store, job: JobRecord, task: TaskInfo) -> Adopted:
    """Record `task` as the job's task; the next run follows and downloads it."""
    store.adopt_task(job.job_id, task.task_id, task.created_at)
    return Adopted(job.row_id, job.job_id, task.task_id, task.status)


async def reconcile(store: Store, provider: Provider) -> list[Adopted]:
    """Adopt every provider task that belongs to an unresolved job of this state."""
    capabilities = provider.capabilities
    if capabilities.task_list:
        return await _by_list(store, provider)
    if capabilities.external_lookup:
        return await _by_lookup(store, provider)
    raise UsageError(
        f"{provider.name} can neither list tasks nor look them up by external_task_id, so "
        "reconcile cannot find lost tasks; adopt them by task id with `batchgen adopt`"
    )


async def _by_list(store: Store, provider: Provider) -> list[Adopted]:
    adopted = []
    for page in range(1, MAX_PAGES + 1):
        tasks = await provider.list_tasks(page, LIST_PAGE_MAX)
        for task in tasks:
            found = _owner(store, task)
            if found is not None:
                adopted.append(adopt(store, found, task))
        if len(tasks) < LIST_PAGE_MAX:
            break
    return adopted


def _owner(store: Store, task: TaskInfo) -> JobRecord | None:
    parsed = job_id_of_external(task.external_task_id or "")
    if parsed is None or store.job_of_task(task.task_id) is not None:
        return None
    job = store.get(parsed[0])
    if job is None or not _unresolved(job) or job.current_external_id != task.external_task_id:
        return None
    return job


async def _by_lookup(store: Store, provider: Provider) -> list[Adopted]:
    adopted = []
    candidates = [job for job in store.with_status(*UNRESOLVED[1:]) if _unresolved(job)]
    for job in candidates:
        try:
            task = await provider.find_by_external_id(job.current_external_id)
        except Unsupported:
            break
        if task is not None and store.job_of_task(task.task_id) is None:
            adopted.append(adopt(store, job, task))
    return adopted
