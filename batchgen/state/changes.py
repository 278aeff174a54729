"""Every change a run makes to a job, as a typed value: what the job becomes and which of its
fields are set. `Store.apply` writes one (checked against the transition table of status.py)
and `RunContext.record` is the door the runner's stages pass it through.

A change whose `target` is None leaves the job in the status it has (a look-up lease, a wait
before a retry, a fresh video URL)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from batchgen.status import JobStatus

# How far ahead a job is held by the run that leased it (while its create or look-up is under
# way): in effect until the answer moves it on, or the next run's start releases it.
LEASE_SECONDS = 86400.0 * 365


# What a change that gives a job its task clears: the last error, and any wait.
CLEARED: dict[str, Any] = {"last_error": None, "error_kind": None, "not_before": 0}


@dataclass(frozen=True, slots=True)
class Change:
    """Base of every change. `durable`: committed with a full sync before `apply` returns;
    `commit_now`: committed before `apply` returns (out of the run's group commit);
    `taken_back`: it may move a pending job past submitting (status.TAKEN_BACK)."""

    target: ClassVar[JobStatus | None] = None
    durable: ClassVar[bool] = False
    commit_now: ClassVar[bool] = False
    taken_back: ClassVar[bool] = False

    def columns(self) -> dict[str, Any]:
        """The job's columns this change sets."""
        return {}

    def attempts(self) -> int:
        """How many attempts this change adds to the job's count."""
        return 0

    def increments(self) -> dict[str, int]:
        """Counting columns this change adds to (attempts, moderation retries...)."""
        return {"attempts": self.attempts()}

    def detail(self) -> str:
        """What the change says to a person watching the run."""
        return ""


@dataclass(frozen=True, slots=True)
class Submitting(Change):
    """The create is about to leave: written and synced before it does (power cuts included),
    with the external id it carries. The job is leased to this run until the answer comes."""

    external_id: str
    at: float
    target: ClassVar[JobStatus | None] = JobStatus.SUBMITTING
    durable: ClassVar[bool] = True

    def columns(self) -> dict[str, Any]:
        return {
            "external_task_id": self.external_id,
            "submitted_at": self.at,
            "not_before": self.at + LEASE_SECONDS,
            "reused_from": None,
        }


@dataclass(frozen=True, slots=True)
class Leased(Change):
    """A `submitting` job held by this run while it is looked up."""

    at: float

    def columns(self) -> dict[str, Any]:
        return {"not_before": self.at + LEASE_SECONDS}


@dataclass(frozen=True, slots=True)
class Accepted(Change):
    """The provider has the task: from here on the job is paid for. Committed at once (a kill
    just after would otherwise lose the task id)."""

    task_id: str
    status: JobStatus
    created_at: int | None = None
    note: str = ""
    commit_now: ClassVar[bool] = True

    def columns(self) -> dict[str, Any]:
        return {"task_id": self.task_id, "task_created_at": self.created_at, **CLEARED}

    def detail(self) -> str:
        return self.note


@dataclass(frozen=True, slots=True)
class Recovered(Change):
    """A paid task that the run folder names (a sidecar, index.jsonl) for a pending job whose
    state had lost it: `done` with the intact video found there (`video` is set), else
    `submitted`, to be followed and downloaded. Committed at once."""

    task_id: str
    external_id: str
    at: float
    created_at: int | None = None
    updated_at: int | None = None
    units: str | None = None
    duration: str | None = None
    video: str | None = None
    sha256: str | None = None
    size: int | None = None
    note: str = ""
    commit_now: ClassVar[bool] = True
    taken_back: ClassVar[bool] = True

    @property
    def status(self) -> JobStatus:
        return JobStatus.DONE if self.video is not None else JobStatus.SUBMITTED

    def columns(self) -> dict[str, Any]:
        columns: dict[str, Any] = {
            "task_id": self.task_id,
            "external_task_id": self.external_id,
            "submitted_at": self.at,
            "task_created_at": self.created_at,
            "task_updated_at": self.updated_at,
            "unit_deduction": self.units,
            "video_duration": self.duration,
            **CLEARED,
        }
        if self.video is not None:
            columns.update(
                output_path=self.video, sha256=self.sha256, bytes=self.size, finished_at=self.at
            )
        return columns

    def detail(self) -> str:
        return self.note


@dataclass(frozen=True, slots=True)
class Reused(Change):
    """A pending job whose generation another state of the account already paid for (the
    account ledger): its task is followed from here (`status` submitted), or its video is
    copied from `video_url` (a file:// URL, `downloading`). Nothing is sent, nothing spent.
    Committed at once."""

    task_id: str | None
    external_id: str
    status: JobStatus
    source: str  # the state that paid, as the ledger names it
    at: float
    video_url: str | None = None
    facts: dict[str, Any] | None = None  # task_created_at, unit_deduction... as the payer saw
    note: str = ""
    commit_now: ClassVar[bool] = True
    taken_back: ClassVar[bool] = True

    def columns(self) -> dict[str, Any]:
        return {
            "task_id": self.task_id,
            "external_task_id": self.external_id,
            "reused_from": self.source,
            "submitted_at": self.at,
            "video_url": self.video_url,
            **CLEARED,
            **(self.facts or {}),
        }

    def detail(self) -> str:
        return self.note


@dataclass(frozen=True, slots=True)
class SentElsewhere(Change):
    """A pending job whose create another state of the account sent and whose outcome is
    unknown there: unknown here too, pointing at that state, and never sent blindly."""

    external_id: str
    source: str
    reason: str
    at: float
    target: ClassVar[JobStatus | None] = JobStatus.UNKNOWN
    commit_now: ClassVar[bool] = True
    taken_back: ClassVar[bool] = True

    def columns(self) -> dict[str, Any]:
        return {
            "external_task_id": self.external_id,
            "reused_from": self.source,
            "last_error": self.reason,
            "error_kind": "sent_elsewhere",
            "finished_at": self.at,
        }

    def detail(self) -> str:
        return self.reason


@dataclass(frozen=True, slots=True)
class Advanced(Change):
    """The provider reports the task in another status before it ends (submitted, running),
    or a done job's video must be fetched again (downloading)."""

    status: JobStatus
    note: str = ""

    def detail(self) -> str:
        return self.note


@dataclass(frozen=True, slots=True)
class Generated(Change):
    """The task ended with a video: what the provider said of it, and where to fetch it."""

    video_url: str | None
    video_duration: str | None
    unit_deduction: str | None
    updated_at: int | None
    watermark_url: str | None = None
    cash: str | None = None
    target: ClassVar[JobStatus | None] = JobStatus.DOWNLOADING

    def columns(self) -> dict[str, Any]:
        return {
            "video_url": self.video_url,
            "video_duration": self.video_duration,
            "unit_deduction": self.unit_deduction,
            "cash_deduction": self.cash,
            "task_updated_at": self.updated_at,
            "watermark_url": self.watermark_url,
            "not_before": 0,
        }


@dataclass(frozen=True, slots=True)
class VideoUrl(Change):
    """A downloading job's URL: a fresh one from the provider, or None (expired, or it served
    something that is not a video) so that the next try asks for a fresh one."""

    url: str | None
    target: ClassVar[JobStatus | None] = JobStatus.DOWNLOADING

    def columns(self) -> dict[str, Any]:
        return {"video_url": self.url}


@dataclass(frozen=True, slots=True)
class WatermarkSaved(Change):
    """The watermarked copy asked for is in the run folder at `path` (relative)."""

    path: str

    def columns(self) -> dict[str, Any]:
        return {"watermark_path": self.path}


@dataclass(frozen=True, slots=True)
class Retrying(Change):
    """Back to pending until `not_before`; `counted` is False for throttling and stops."""

    not_before: float
    error: str
    kind: str
    counted: bool = True
    target: ClassVar[JobStatus | None] = JobStatus.PENDING

    def columns(self) -> dict[str, Any]:
        return {"not_before": self.not_before, "last_error": self.error, "error_kind": self.kind}

    def attempts(self) -> int:
        return int(self.counted)

    def detail(self) -> str:
        return self.error


@dataclass(frozen=True, slots=True)
class Waiting(Change):
    """Stay, but do not act before `not_before` (a look-up, a download); `counted` adds an
    attempt."""

    not_before: float
    error: str
    kind: str
    counted: bool = True

    def columns(self) -> dict[str, Any]:
        return {"not_before": self.not_before, "last_error": self.error, "error_kind": self.kind}

    def attempts(self) -> int:
        return int(self.counted)


@dataclass(frozen=True, slots=True)
class Unknown(Change):
    """The create may have been accepted and nothing can tell: never resent on our own."""

    reason: str
    at: float
    target: ClassVar[JobStatus | None] = JobStatus.UNKNOWN

    def columns(self) -> dict[str, Any]:
        return {
            "last_error": self.reason,
            "error_kind": "unknown_outcome",
            "finished_at": self.at,
            "not_before": 0,
        }

    def detail(self) -> str:
        return self.reason


@dataclass(frozen=True, slots=True)
class SentAgain(Change):
    """An unknown job goes back to pending under the same external id, because the user said
    so (`--resend-unfound`, `retry --unknown`): it may be paid twice. `kind` marks it, so that
    a refusal of the resend is looked into rather than taken as the job's failure."""

    note: str
    kind: str
    target: ClassVar[JobStatus | None] = JobStatus.PENDING

    def columns(self) -> dict[str, Any]:
        return {"task_id": None, "not_before": 0, "last_error": self.note, "error_kind": self.kind}

    def detail(self) -> str:
        return self.note


@dataclass(frozen=True, slots=True)
class Regenerated(Change):
    """A failed job sent again for a new generation under a fresh external id, without the
    user in between (`--retry-moderation`): counted in `moderation_retries`."""

    note: str
    target: ClassVar[JobStatus | None] = JobStatus.PENDING

    def columns(self) -> dict[str, Any]:
        return {
            "external_task_id": None,
            "task_id": None,
            "video_url": None,
            "not_before": 0,
            "last_error": self.note,
            "error_kind": "moderation_retry",
        }

    def increments(self) -> dict[str, int]:
        return {"generation": 1, "moderation_retries": 1}

    def detail(self) -> str:
        return self.note


@dataclass(frozen=True, slots=True)
class Failed(Change):
    """The job failed; `units`: what the provider charged for the failed task, if it said."""

    reason: str
    kind: str
    at: float
    units: str | None = None
    cash: str | None = None
    target: ClassVar[JobStatus | None] = JobStatus.FAILED

    def columns(self) -> dict[str, Any]:
        columns: dict[str, Any] = {
            "last_error": self.reason,
            "error_kind": self.kind,
            "finished_at": self.at,
        }
        if self.units is not None:
            columns["unit_deduction"] = self.units
        if self.cash is not None:
            columns["cash_deduction"] = self.cash
        return columns

    def detail(self) -> str:
        return self.reason


@dataclass(frozen=True, slots=True)
class Done(Change):
    """The video is renamed into place and synced: only then is the job done."""

    output_path: str
    sha256: str
    size: int
    at: float
    target: ClassVar[JobStatus | None] = JobStatus.DONE

    def columns(self) -> dict[str, Any]:
        return {
            "output_path": self.output_path,
            "sha256": self.sha256,
            "bytes": self.size,
            "finished_at": self.at,
            "last_error": None,
            "error_kind": None,
        }


@dataclass(frozen=True, slots=True)
class VideoMoved(Change):
    """A done job's video now lives at `path` (a later job took its old name). Committed at
    once: the old name is reused only after this."""

    path: str
    commit_now: ClassVar[bool] = True

    def columns(self) -> dict[str, Any]:
        return {"output_path": self.path}


@dataclass(frozen=True, slots=True)
class WatermarkMoved(Change):
    """A done job's watermarked copy now lives at `path` (see VideoMoved)."""

    path: str
    commit_now: ClassVar[bool] = True

    def columns(self) -> dict[str, Any]:
        return {"watermark_path": self.path}


def target_of(change: Change, current: JobStatus) -> JobStatus:
    """The status `change` moves a job in status `current` to."""
    if isinstance(change, Accepted | Advanced | Recovered | Reused):
        return change.status
    return change.target or current
