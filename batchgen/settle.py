"""What a run could not finish, settled by the user: `retry` (which jobs can go back to work),
`adopt` (a task found at the provider for an `unknown` job), `reconcile` (tasks the provider has
that the state lost) and the money at risk when unknown jobs are sent again.

A task can be paid for and unknown to the state when a create's answer was lost, or when a
state file was lost. Reconcile pages the provider's task list where it has one, then looks
each unresolved job up by its external_task_id in every form; a task is adopted only when it
echoes exactly the external id of an unresolved job. What no look-up finds stays unknown: it
is resolved with `batchgen adopt` (a task id from the provider's dashboard), or sent again
knowing that it may be paid twice.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import anyio

from batchgen.errors import RetryableError, TaskNotFound, ThrottledError, Unsupported, UsageError
from batchgen.jobs import job_id_of_external
from batchgen.money.pricing import Key, cost_of, job_key, load_prices
from batchgen.providers import LIST_PAGE_MAX, Provider, TaskInfo
from batchgen.providers.task import task_id_problem
from batchgen.runner.lookup import Finder
from batchgen.runner.policy import RetryPolicy
from batchgen.state.records import JobRecord
from batchgen.state.store import Store
from batchgen.status import JobStatus

RETRYABLE = (JobStatus.FAILED, JobStatus.UNKNOWN)
MAX_PAGES = 1000
UNRESOLVED = (JobStatus.PENDING, JobStatus.SUBMITTING, JobStatus.FAILED, JobStatus.UNKNOWN)
ASK_TRIES = 5
ADOPTABLE = (JobStatus.UNKNOWN, JobStatus.SUBMITTING, JobStatus.PENDING, JobStatus.FAILED)


# -- retry ----------------------------------------------------------------------------------


def nothing_to_retry(store: Store, job_ids: Iterable[str]) -> Iterator[str]:
    """Why each of `job_ids` that is neither failed nor unknown is left as it is."""
    for job_id in job_ids:
        job = store.get(job_id)
        if job is not None and job.status not in RETRYABLE:
            yield f"{job.row_id} is {job.status}: {_why_not_retried(job.status)}"


def _why_not_retried(status: JobStatus) -> str:
    if status == JobStatus.DONE:
        return "nothing to retry"
    if status == JobStatus.PENDING:
        return "the next run sends it anyway"
    return "its task is followed by the next run; nothing to retry"


@dataclass(frozen=True, slots=True)
class ResendRisk:
    """What sending the unknown jobs again may cost twice."""

    jobs: int
    usd: float
    unpriced: int


def resend_risk(store: Store, job_ids: list[str] | None = None) -> ResendRisk:
    """How many of the unknown jobs (all, or `job_ids`) would be sent again, and what they
    may cost a second time at the price table."""
    kinds: Counter[Key] = Counter()
    for job in store.unknown_in_job_order():
        if job_ids is None or job.job_id in job_ids:
            kinds[job_key(job.request)] += 1
    cost = cost_of(kinds, load_prices())
    return ResendRisk(sum(kinds.values()), cost.usd, cost.unknown_usd)


# -- adopt ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Adopted:
    row_id: str
    job_id: str
    task_id: str
    task_status: str


def adopt(store: Store, job: JobRecord, task: TaskInfo) -> Adopted:
    """Record `task` as the job's task; the next run follows and downloads it."""
    store.adopt_task(job.job_id, task.task_id, task.created_at)
    return Adopted(job.row_id, job.job_id, task.task_id, task.status)


async def adopt_by_task_id(store: Store, provider: Provider, name: str, task_id: str) -> Adopted:
    """Record `task_id` as the task of the job named `name` (job id or row id), after asking
    the provider about it and checking what can be checked: the task exists, no other job has
    it, and its external id, where the provider echoes one, is this job's."""
    problem = task_id_problem(task_id)
    if problem:
        raise UsageError(f"task {task_id[:40]!r}: {problem}")
    (job_id,) = store.resolve_job_ids([name])
    job = store.get(job_id)
    assert job is not None
    if job.status not in ADOPTABLE or job.task_id is not None:
        held = f" with task {job.task_id}" if job.task_id else ""
        raise UsageError(f"job {job.row_id} is {job.status}{held}: it has no task to adopt")
    owner = store.job_of_task(task_id)
    if owner is not None:
        raise UsageError(f"task {task_id} already belongs to job {owner}")
    try:
        task = await _patiently(provider, task_id)
    except TaskNotFound:
        raise UsageError(f"{provider.name} does not know task {task_id}") from None
    echoed = task.external_task_id
    if echoed is not None and echoed != job.current_external_id:
        raise UsageError(
            f"task {task_id} was created for external_task_id {echoed}, not for "
            f"{job.row_id}'s {job.current_external_id}"
        )
    return adopt(store, job, task)


async def _patiently(provider: Provider, task_id: str) -> TaskInfo:
    """The task, asked again after transient refusals (a 5xx, a throttle) with back-off."""
    policy, rng = RetryPolicy(), random.Random()
    for attempt in range(1, ASK_TRIES):
        try:
            return await provider.get(task_id)
        except (RetryableError, ThrottledError) as error:
            await anyio.sleep(max(policy.backoff(attempt, rng), error.retry_after or 0.0))
    return await provider.get(task_id)


# -- reconcile ------------------------------------------------------------------------------


def _unresolved(job: JobRecord) -> bool:
    """A job with no task recorded that may nonetheless have one at the provider."""
    return job.task_id is None and job.status in UNRESOLVED


async def reconcile(store: Store, provider: Provider) -> Reconciled:
    """Adopt every provider task that belongs to an unresolved job of this state: from the
    task list where the provider documents one, then by looking each remaining job up in every
    form (runner/lookup.py). Only exact echoes of a job's external id are adopted."""
    adopted = await _by_list(store, provider) if provider.lists_tasks else []
    finder = Finder(provider, store, time.time)
    unknown = []
    candidates = [job for job in store.with_status(*UNRESOLVED[1:]) if _unresolved(job)]
    for job in candidates:
        found = await finder.find(job.job_id, job.current_external_id)
        if found.task is not None and store.job_of_task(found.task.task_id) is None:
            adopted.append(adopt(store, job, found.task))
        elif job.status == JobStatus.UNKNOWN:
            unknown.append(job.row_id)
    return Reconciled(adopted, unknown)


@dataclass(frozen=True, slots=True)
class Reconciled:
    """What `reconcile` adopted, and the rows of the unknown jobs it could not find."""

    adopted: list[Adopted]
    still_unknown: list[str]


async def _by_list(store: Store, provider: Provider) -> list[Adopted]:
    adopted: list[Adopted] = []
    for page in range(1, MAX_PAGES + 1):
        try:
            tasks = await provider.list_tasks(page, LIST_PAGE_MAX)
        except Unsupported:
            break  # not served after all: the look-ups below still ask each job
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
