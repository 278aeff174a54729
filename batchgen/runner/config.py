"""How a run behaves (RunConfig) and how it ended (RunOutcome)."""

from __future__ import annotations

from dataclasses import dataclass, field

from batchgen.errors import EXIT_ACCOUNT, EXIT_INTERRUPTED, EXIT_JOBS_FAILED, EXIT_OK
from batchgen.media.qa import QaDepth
from batchgen.runner.policy import PollConfig, RetryPolicy
from batchgen.status import JobStatus


@dataclass(frozen=True, slots=True)
class Listen:
    """Where the callback receiver listens and what it accepts."""

    host: str
    port: int
    path: str  # the path of the callback URL the provider is given
    secret: str | None = None  # where set, callbacks must carry a valid signature


# Stops that the same command resumes once their cause is fixed; all exit 3.
RESUMABLE_STOPS = frozenset({"account", "unreachable", "budget", "storage"})


@dataclass(frozen=True, slots=True, kw_only=True)
class RunConfig:
    concurrency: int = 4
    task_timeout: float = 3600.0
    download_workers: int = 4
    download_attempts: int = 5
    max_video_bytes: int | None = 2 << 30  # a larger body is no video of this run
    qa: QaDepth = "full"  # how each video is checked before its job is done (media/qa.py)
    download_deadline: float | None = 3600.0  # seconds for one try at one video, all of it
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    poll: PollConfig = field(default_factory=PollConfig)
    use_list_endpoint: bool = True
    submit: bool = True  # False: only follow and download what the provider already has
    seed: int | None = None
    handle_signals: bool = True
    # Unknown jobs are looked up again this often while a run goes on (and at its start).
    unknown_lookup_every: float = 180.0
    # Set by the user (--resend-unfound): unknown jobs no look-up has found for this long are
    # sent again under the same external id. They may be paid twice.
    resend_unfound: float | None = None
    # Set by the user (--retry-moderation): times a job refused by moderation is sent again
    # for a new generation (whether a retry can pass is contested, kling-api.md §18.2 (6)).
    retry_moderation: int = 0
    # A task the provider does not find, or calls done without a video URL, is given this long
    # after it was first seen so before the job is failed.
    not_found_grace: float = 60.0
    # Every request failing to connect for this long stops the run: from its start, and later.
    unreachable_at_start: float = 15.0
    unreachable_later: float = 120.0
    callback_url: str | None = None  # sent with every create
    listen: Listen | None = None  # the receiver of those callbacks, in this run


@dataclass(frozen=True, slots=True)
class RunOutcome:
    counts: dict[JobStatus, int]
    wall_seconds: float
    api_calls: int
    stopped: str | None = None  # "account", "unreachable", "budget", "storage", "interrupted"
    stop_reason: str = ""
    interrupted: bool = False  # a signal ended the run while it was stopping
    concurrency: int = 0
    busy_seconds: float = 0.0  # sum over tasks of submission → end seen, this run
    adopted: int = 0  # lost creates found at the provider and adopted, this run
    callbacks: dict[str, int] = field(default_factory=dict)  # received, accepted, refused: …
    skipped_invalid: int = 0  # manifest rows left out by --skip-invalid (they have no job)
    touched: int = 0  # jobs this run changed: what its API calls were spent on

    @property
    def calls_per_job(self) -> float:
        """API calls per job this run worked on (0 when it worked on none)."""
        return self.api_calls / self.touched if self.touched else 0.0

    @property
    def slot_utilisation(self) -> float:
        """Share of the slot-time the run had that held a task (as the client saw it)."""
        capacity = self.concurrency * self.wall_seconds
        return min(1.0, self.busy_seconds / capacity) if capacity else 0.0

    @property
    def unfinished(self) -> int:
        done = (JobStatus.DONE, JobStatus.FAILED, JobStatus.UNKNOWN)
        return sum(n for status, n in self.counts.items() if status not in done)

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return EXIT_INTERRUPTED
        if self.stopped in RESUMABLE_STOPS:
            return EXIT_ACCOUNT
        if self.stopped == "interrupted":
            return EXIT_INTERRUPTED
        not_done = sum(n for s, n in self.counts.items() if s != JobStatus.DONE)
        return EXIT_JOBS_FAILED if not_done or self.skipped_invalid else EXIT_OK
