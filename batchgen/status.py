"""Job states and the one table of legal transitions between them.

    pending ──► submitting ──► submitted ──► running ──► downloading ──► done
       ▲            │  │            │           │             │
       │            │  └──► pending (provider has no such task; safe to send)
       └── failed ◄─┴───────────────┴───────────┴─────────────┘  (retry puts failed back)

`submitting` is written, and committed, before a create request leaves the process: a job
found there on resume may or may not be known to the provider and must be looked up first.
"""

from __future__ import annotations

from enum import StrEnum


class JobStatus(StrEnum):
    PENDING = "pending"
    SUBMITTING = "submitting"
    SUBMITTED = "submitted"
    RUNNING = "running"
    DOWNLOADING = "downloading"
    DONE = "done"
    FAILED = "failed"

    @property
    def in_flight(self) -> bool:
        """The provider holds (or may hold) a task for this job."""
        return self in IN_FLIGHT

    @property
    def terminal(self) -> bool:
        return self in (JobStatus.DONE, JobStatus.FAILED)


IN_FLIGHT = frozenset({JobStatus.SUBMITTING, JobStatus.SUBMITTED, JobStatus.RUNNING})

_S = JobStatus
TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    _S.PENDING: frozenset({_S.SUBMITTING, _S.FAILED}),
    _S.SUBMITTING: frozenset({_S.PENDING, _S.SUBMITTED, _S.RUNNING, _S.DOWNLOADING, _S.FAILED}),
    _S.SUBMITTED: frozenset({_S.RUNNING, _S.DOWNLOADING, _S.FAILED}),
    _S.RUNNING: frozenset({_S.DOWNLOADING, _S.FAILED}),
    _S.DOWNLOADING: frozenset({_S.DONE, _S.FAILED}),
    _S.DONE: frozenset({_S.DOWNLOADING}),
    _S.FAILED: frozenset({_S.PENDING, _S.DOWNLOADING}),
}


def can_move(old: JobStatus, new: JobStatus) -> bool:
    """Whether a job may go from `old` to `new` (staying put is always allowed)."""
    return old == new or new in TRANSITIONS[old]


def status_of_task(task_status: str) -> JobStatus:
    """Map the provider's task_status (`submitted`, `processing`, `succeed`, `failed`)."""
    return {
        "submitted": JobStatus.SUBMITTED,
        "processing": JobStatus.RUNNING,
        "succeed": JobStatus.DOWNLOADING,
        "succeeded": JobStatus.DOWNLOADING,
        "failed": JobStatus.FAILED,
    }.get(task_status, JobStatus.RUNNING)
