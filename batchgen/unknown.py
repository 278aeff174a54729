"""The two ways out for a job whose create may have been accepted (`unknown`): adopt the task
the user found at the provider, or send it again knowing it may be paid twice."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass

import anyio

from batchgen.errors import RetryableError, TaskNotFound, ThrottledError, UsageError
from batchgen.policy import RetryPolicy
from batchgen.pricing import Key, cost_of, job_key, load_prices
from batchgen.providers import Provider, TaskInfo
from batchgen.reconcile import Adopted, adopt
from batchgen.status import JobStatus
from batchgen.store import Store

ASK_TRIES = 5
ADOPTABLE = (JobStatus.UNKNOWN, JobStatus.SUBMITTING, JobStatus.PENDING, JobStatus.FAILED)


async def adopt_by_task_id(store: Store, provider: Provider, name: str, task_id: str) -> Adopted:
    """Record `task_id` as the task of the job named `name` (job id or row id), after asking
    the provider about it and checking what can be checked: the task exists, no other job has
    it, and its external id, where the provider echoes one, is this job's."""
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
