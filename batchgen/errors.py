"""The exception tree. Every expected failure is one of these; the CLI maps them to exit codes.

BatchgenError                 exit 1 unless a subclass says otherwise
├── UsageError                exit 2: bad flags, missing files, nothing was done
├── ManifestInvalid           exit 2: the manifest failed pre-flight checks; carries every Problem
├── LockMismatch              exit 2: `--locked` and the manifest no longer resolves to the lock
├── CostLimitExceeded         exit 2: `--max-cost` is below the batch's estimate
├── StateError                exit 2: the state file is unreadable or belongs to another run
│   └── StateInUse            exit 2: another live process holds the run's state
├── StorageError              exit 3: a file cannot be written mid-run (disk full...): resumable
└── ProviderError             a provider answer that is not a success (carries code, http status)
    ├── RetryableError        the request was not carried out (5xx, refused): try again later
    │   └── ConnectFailed     the provider could not be reached at all; nothing was sent
    ├── OutcomeUnknown        a create that may or may not have been accepted (answer lost,
    │                         cut off, gateway timeout): look it up, never resend blindly
    ├── ThrottledError        1302 / 1303 / any 429: wait, not a failure
    ├── JobRejected           parameters or content policy: this job fails, others go on
    ├── TaskNotFound          the provider has no such task
    ├── DuplicateExternalId   the provider already has a task with this external_task_id
    ├── Unsupported           the provider does not offer this call (a list, a look-up)
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


class StorageError(BatchgenError):
    """A file of the run cannot be written (a full disk, a file too large, a lost mount):
    the run stops, and the same command resumes once there is room."""

    exit_code = EXIT_ACCOUNT


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


class TaskNotFound(ProviderError):
    """The provider does not know the task asked for."""


class DuplicateExternalId(ProviderError):
    """The provider already has a task with this external_task_id."""


class Unsupported(ProviderError):
    """The provider does not offer this call (a task list, a look-up by external id)."""


class AccountError(ProviderError):
    """A problem no job can get past: credentials, balance, permission, IP whitelist."""

    exit_code = EXIT_ACCOUNT


class ProviderUnreachable(ProviderError):
    """The API cannot be reached, or answers as if --base-url pointed somewhere else."""

    exit_code = EXIT_ACCOUNT
