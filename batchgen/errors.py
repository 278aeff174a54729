"""The exception tree. Every expected failure is one of these; the CLI maps them to exit codes.

BatchgenError                 exit 1 unless a subclass says otherwise
├── UsageError                exit 2: bad flags, missing files, nothing was done
│   ├── ManifestUnreadable    the manifest file cannot be read or parsed (YAML, CSV, its name)
│   ├── ImageChanged          an image changed since the manifest was checked
│   ├── IndexInvalid          index.jsonl is absent or one of its lines cannot be used
│   ├── UnknownFormat         `--format` names no export format
│   └── NothingToVerify       the folder has neither an index nor a state
├── ManifestInvalid           exit 2: the manifest failed pre-flight checks; carries every Problem
├── LockMismatch              exit 2: `--locked` and the manifest no longer resolves to the lock
├── CostLimitExceeded         exit 2: `--max-cost` is below the batch's estimate
├── StateError                exit 2: the state file is unreadable or belongs to another run
│   ├── StateInUse            exit 2: another live process holds the run's state
│   ├── IllegalTransition     a job was asked to move where the transition table forbids
│   └── LeaseLost             a worker's lease on a job ran out and another worker holds it
├── StorageError              exit 3: a file cannot be written mid-run (disk full...): resumable
├── ImageUnreadable           one image source cannot be used (a Problem of its row, or cached)
├── MissingVideo              the index names videos that are not in the run folder
├── VideoMismatch             a video is not the file its index records (bytes, sha256, a link)
├── CallbackRefused           a callback the receiver does not believe (answered `status`)
└── ProviderError             a provider answer that is not a success (carries code, http status)
    ├── RetryableError        the request was not carried out (5xx, refused): try again later
    │   └── ConnectFailed     the provider could not be reached at all; nothing was sent
    ├── OutcomeUnknown        a create that may or may not have been accepted (answer lost,
    │                         cut off, gateway timeout): look it up, never resend blindly
    ├── ThrottledError        1302 / 1303 / any 429: wait, not a failure
    ├── JobRejected           parameters or content policy: this job fails, others go on
    │   ├── ModelRefused      the provider does not take this model: no job of it can pass
    │   └── ContentRefused    moderation ("risk control"): terminal unless the user asks
    ├── TaskNotFound          the provider has no such task
    ├── DuplicateExternalId   the provider already has a task with this external_task_id
    ├── Unsupported           the provider does not offer this call (a list, a look-up)
    ├── UrlExpired            a video URL answered 403/404/410: ask for a fresh one
    ├── NotAVideo             a video URL served something else (an HTML page with 200...)
    │   └── VideoTooLarge     ... or more than the run's --max-video-mb: it waits for a larger cap
    ├── AccountError          exit 3: credentials, balance, permission, IP whitelist
    └── ProviderUnreachable   exit 3: the API cannot be reached or is not where --base-url says
"""

from __future__ import annotations

from dataclasses import dataclass

EXIT_OK = 0
EXIT_JOBS_FAILED = 1
EXIT_USAGE = 2
EXIT_ACCOUNT = 3
EXIT_INTERRUPTED = 130


class BatchgenError(Exception):
    """Base of every error batchgen expects; its message is safe to show a user."""

    exit_code = EXIT_JOBS_FAILED


class UsageError(BatchgenError):
    """The command line or a file it names cannot be used."""

    exit_code = EXIT_USAGE


class ManifestUnreadable(UsageError):
    """The manifest file (or the CSV of its rows) cannot be read or parsed, or its name cannot
    name a run folder."""


class ImageChanged(UsageError):
    """An image's content differs from what was checked when the manifest was validated."""


class IndexInvalid(UsageError):
    """index.jsonl is absent, or one of its lines cannot be used."""


class UnknownFormat(UsageError):
    """`--format` names no export format."""


class NothingToVerify(UsageError):
    """The folder has neither an index nor a state: it is not a run folder."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One reason a manifest row cannot be submitted."""

    row: str
    line: int
    field: str
    message: str

    def __str__(self) -> str:
        where = f"row {self.row!r}" + (f" (line {self.line})" if self.line else "")
        return f"{where}, field {self.field!r}: {self.message}"


class ManifestInvalid(BatchgenError):
    """The manifest has problems; nothing was submitted."""

    exit_code = EXIT_USAGE

    def __init__(self, problems: list[Problem], total: int | None = None) -> None:
        self.problems = problems
        self.total = len(problems) if total is None else total
        super().__init__(f"manifest is invalid: {self.total} problem(s)")


class LockMismatch(BatchgenError):
    """`--locked` was given and the manifest resolves to other jobs than the lock file."""

    exit_code = EXIT_USAGE


class CostLimitExceeded(BatchgenError):
    """The estimated cost of the batch is above `--max-cost`."""

    exit_code = EXIT_USAGE


class StateError(BatchgenError):
    """The state file cannot be opened or does not match this run."""

    exit_code = EXIT_USAGE


class StateInUse(StateError):
    """Another live process holds the run's state (one run per state at a time)."""


class IllegalTransition(StateError):
    """A job was asked to move between states the transition table does not allow."""


class LeaseLost(StateError):
    """This worker no longer holds the job (its lease ran out while it was paused or cut off,
    and another worker took the job over): it writes nothing more for it."""


class StorageError(BatchgenError):
    """A file of the run cannot be written (a full disk, a file too large, a lost mount):
    the run stops, and the same command resumes once there is room."""

    exit_code = EXIT_ACCOUNT


class ImageUnreadable(BatchgenError):
    """An image source that cannot be used; the message says why (and is cached like an
    answer). Validation turns it into a Problem of the row."""


SHOWN_MISSING = 5


class MissingVideo(BatchgenError):
    """The index names videos that are not in the run folder."""

    def __init__(self, rows: list[tuple[str, str]]) -> None:
        self.rows = rows
        shown = ", ".join(f"{row!r} ({video})" for row, video in rows[:SHOWN_MISSING])
        more = f" and {len(rows) - SHOWN_MISSING} more" if len(rows) > SHOWN_MISSING else ""
        super().__init__(
            f"video missing for row {shown}{more}; `batchgen verify` lists every problem, "
            "and --skip-missing exports the rest"
        )


class VideoMismatch(BatchgenError):
    """A video in the run folder is not the file its index line records: other bytes, another
    sha256, a symbolic link or not a regular file. It is never exported."""


class CallbackRefused(BatchgenError):
    """A callback that is not believed; `status` is the HTTP status answered."""

    def __init__(self, reason: str, status: int = 400) -> None:
        super().__init__(reason)
        self.status = status


class ProviderError(BatchgenError):
    """The provider answered with something other than success."""

    def __init__(
        self,
        message: str,
        *,
        code: int | str | None = None,
        http_status: int | None = None,
        request_id: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.code = code
        self.http_status = http_status
        self.request_id = request_id
        self.retry_after = retry_after
        super().__init__(message)

    def with_message(self, message: str) -> ProviderError:
        """The same error (class, code, status...) saying `message` instead."""
        return type(self)(
            message,
            code=self.code,
            http_status=self.http_status,
            request_id=self.request_id,
            retry_after=self.retry_after,
        )

    def describe(self) -> str:
        """One line for the state and the report: code, HTTP status and message."""
        parts = []
        if self.code is not None:
            parts.append(f"code {self.code}")
        if self.http_status is not None:
            parts.append(f"HTTP {self.http_status}")
        head = ", ".join(parts)
        return f"{head}: {self}" if head else str(self)


class RetryableError(ProviderError):
    """A transient failure after which the request is known not to have been carried out."""


class ConnectFailed(RetryableError):
    """No connection could be made (refused, DNS, TLS): the request never left."""


class OutcomeUnknown(ProviderError):
    """A create may have been accepted: its answer was lost, cut off or not JSON, or a
    gateway timed out waiting for the provider."""


class ThrottledError(ProviderError):
    """Rate (1302) or concurrency (1303) limits, or any 429: wait, never a failure."""


class JobRejected(ProviderError):
    """The provider refused this job's parameters or content; retrying will not help."""


class ModelRefused(JobRejected):
    """The provider refuses the model named ("model is not supported", "invalid model name"):
    every job of that model would be refused the same way."""


class ContentRefused(JobRejected):
    """The provider's moderation refused the request ("Failure to pass the risk control
    system"); whether a retry can pass is contested (kling-api.md §18.2 (6))."""


class TaskNotFound(ProviderError):
    """The provider does not know the task asked for."""


class DuplicateExternalId(ProviderError):
    """The provider already has a task with this external_task_id."""


class Unsupported(ProviderError):
    """The provider does not offer this call (a task list, a look-up by external id)."""


class UrlExpired(ProviderError):
    """The video URL answered 403/404/410: ask the provider for a fresh one."""


class NotAVideo(ProviderError):
    """The URL served something that is not a video (an HTML page with status 200...)."""


class VideoTooLarge(NotAVideo):
    """The URL serves more bytes than a video of this run may have (--max-video-mb): no other
    URL of the task serves fewer, so the run leaves the job until the cap is raised."""


class AccountError(ProviderError):
    """A problem no job can get past: credentials, balance, permission, IP whitelist."""

    exit_code = EXIT_ACCOUNT


class ProviderUnreachable(ProviderError):
    """The API cannot be reached, or answers as if --base-url pointed somewhere else."""

    exit_code = EXIT_ACCOUNT
