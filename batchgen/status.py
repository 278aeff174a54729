"""Job states and the one table of legal transitions between them.

    pending ──► submitting ──► submitted ──► running ──► downloading ──► done
       ▲            │  │  │          │           │             │
       │            │  │  └──► unknown (the create may have been accepted; nothing resends it)
       │            │  └──► pending (the provider surely has no such task; safe to send)
       └── failed ◄─┴──────────────┴───────────┴─────────────┘  (retry puts failed back)

A pending job goes straight to `submitted` or `done` only when the run folder names a paid
task of its that the state had lost (runner/rebuild.py, state/changes.Recovered): taken back
rather than paid again. No other change may make that move.

`submitting` is written, and committed durably, before a create request leaves the process: a
job found there on resume may or may not be known to the provider. Where the provider can be
asked by external_task_id it is looked up; where it cannot, the job becomes `unknown` and waits
for the user (`batchgen adopt`, or `batchgen retry --unknown`).
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
    UNKNOWN = "unknown"

    @property
    def in_flight(self) -> bool:
        """The provider holds (or may hold) a task for this job that the run follows."""
        return self in IN_FLIGHT

    @property
    def terminal(self) -> bool:
        """Nothing more happens to the job without the user."""
        return self in (JobStatus.DONE, JobStatus.FAILED, JobStatus.UNKNOWN)


IN_FLIGHT = frozenset({JobStatus.SUBMITTING, JobStatus.SUBMITTED, JobStatus.RUNNING})

_S = JobStatus
_ADOPTED = frozenset({_S.SUBMITTED, _S.RUNNING, _S.DOWNLOADING, _S.FAILED})
TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    _S.PENDING: frozenset({_S.SUBMITTING, _S.FAILED}),
    _S.SUBMITTING: _ADOPTED | {_S.PENDING, _S.UNKNOWN},
    _S.SUBMITTED: frozenset({_S.RUNNING, _S.DOWNLOADING, _S.FAILED}),
    _S.RUNNING: frozenset({_S.DOWNLOADING, _S.FAILED}),
    _S.DOWNLOADING: frozenset({_S.DONE, _S.FAILED, _S.RUNNING}),
    _S.DONE: frozenset({_S.DOWNLOADING}),
    _S.FAILED: frozenset({_S.PENDING, _S.RUNNING, _S.DOWNLOADING}),
    _S.UNKNOWN: _ADOPTED | {_S.PENDING},
}


# From pending, for a paid task the state lost, or one another state of the account paid for.
TAKEN_BACK = frozenset({_S.SUBMITTED, _S.DOWNLOADING, _S.DONE, _S.UNKNOWN})


def can_move(old: JobStatus, new: JobStatus, *, taken_back: bool = False) -> bool:
    """Whether a job may go from `old` to `new` (staying put is always allowed); `taken_back`:
    the move takes back a paid task the run folder names (pending → submitted or done)."""
    if taken_back and old == _S.PENDING and new in TAKEN_BACK:
        return True
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
