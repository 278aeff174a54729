"""What the simulated provider and account are like: which provider (profile), credentials,
latency, slots, limits and fault rates.

A `SimulatorConfig` is frozen and checked when made; change a running simulator with
`SimulatorHandle.reconfigure(**changes)` or `POST /_sim/config`, which build a new one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any, Literal

ProfileName = Literal["cometapi", "kling"]
UpdatedAtMode = Literal["task", "query", "overflow"]
LookupForm = Literal["path", "query", "none"]
FailMode = Literal["random", "prompt"]
PROFILE_NAMES = ("cometapi", "kling")
UPDATED_AT_MODES = ("task", "query", "overflow")
LOOKUP_FORMS = ("path", "query", "none")
RATES = (
    "fail_rate",
    "error_rate",
    "reset_before_accept_rate",
    "reset_after_accept_rate",
    "gateway_timeout_rate",
    "malformed_answer_rate",
    "slow_rate",
    "truncate_rate",
    "callback_drop_rate",
    "html_rate",
    "missing_video_rate",
)
VIDEO_DEFECT_RATES = (  # share of tasks whose video has each defect (footage.Defect)
    "black_rate",
    "frozen_rate",
    "short_rate",
    "undecodable_rate",
    "aspect_rate",
    "mute_rate",
)
API_FAULT_RATES = RATES[1:7]  # drawn together for each API request: they add up to at most 1
DELAYS = ("slow_seconds", "response_delay", "not_found_grace", "callback_delay")
HIDDEN = ("api_key", "secret_key", "callback_secret", "kling_api_key")
FIXED_AT_START = ("seed", "port", "profile")


@dataclass(frozen=True, kw_only=True)
class SimulatorConfig:
    """Settings of one simulator. Rates are probabilities in 0..1; times are seconds."""

    seed: int = 0
    port: int = 0  # 0: a free port
    profile: ProfileName = "cometapi"  # the provider it imitates (profiles.py)
    latency: tuple[float, float] = (1.0, 3.0)  # generation time, uniform in [min, max]
    slots: int = 4  # concurrent tasks before 1303
    rpm: int | None = None  # API requests a minute before 1302; None: unlimited
    api_key: str | None = None  # cometapi: the bearer key; None accepts any non-empty key
    access_key: str = "sim-access"  # kling: the JWT's `iss`
    secret_key: str = "sim-secret"  # kling: the JWT's HS256 key
    kling_api_key: str = "sim-kling-api-key"  # kling: an API Key, also accepted (§18.2 (7))
    tasks_show_legacy: bool = False  # kling: GET /tasks (API Key only) lists /v1 tasks too
    account_error: int | None = None  # every create answers this code (1000-1304)
    # The unknowns of kling-api.md §18.3, each a switch (None: the profile's default, the
    # stingiest documented behaviour):
    lookup_form: LookupForm | None = None  # where a look-up by external id is answered:
    #   "path" GET {api_path}/{external_task_id}, "query" GET {api_path}?external_task_id=,
    #   "none" in neither (the path form says not found, the query form lists or is refused)
    refuses_reused_ids: bool | None = None  # a create reusing an external id is refused
    reused_id_message: str = "external_task_id already exists"  # ... with this message (1201)
    lists_tasks: bool | None = None  # GET {api_path}?pageNum=&pageSize= lists the tasks
    slots_as_failed_task: bool = (
        False  # full slots: accept, then fail the task (a relay, §18.2 (4))
    )
    fail_mode: FailMode = "random"  # "prompt": a failed (moderated) prompt always fails again
    wrapped_answers: bool = False  # queries answered in new-api's wrapper (E40)
    refused_models: tuple[str, ...] = ()  # creates naming these answer 1201 (E33)
    null_fields: bool = False  # nulls where objects are expected (E38)
    reports_cash: bool = False  # finished tasks report what they cost in cash (billing[], USD)
    fail_rate: float = 0.0  # generations that end `failed`
    error_rate: float = 0.0  # API requests answered 5xx, unprocessed
    reset_before_accept_rate: float = 0.0  # creates dropped before the task is recorded
    reset_after_accept_rate: float = 0.0  # creates recorded, then the answer dropped
    gateway_timeout_rate: float = 0.0  # creates processed, then answered 524 (HTML)
    malformed_answer_rate: float = 0.0  # creates recorded, then a 200 with a cut or HTML body
    slow_rate: float = 0.0  # API answers delayed by slow_seconds
    slow_seconds: float = 5.0
    retry_after: int | None = None  # seconds; set: about half the throttling 429s carry it
    not_found_grace: float = 0.0  # a new task answers "not found" for this long
    # "query": updated_at is the time of the query; "overflow": 10^300 ms (no int64 holds it)
    updated_at_mode: UpdatedAtMode = "task"
    truncate_rate: float = 0.0  # downloads cut short after the headers
    url_ttl: float | None = None  # seconds a video URL stays valid; None: forever
    response_delay: float = 0.0  # added to every API answer
    video_bytes: int | None = None  # pad videos to about this size with a `free` box
    callback_secret: str | None = None  # set: callbacks are signed (Standard Webhooks)
    callback_drop_rate: float = 0.0  # status-change callbacks never sent
    callback_delay: float = 0.0  # callbacks leave this long after the change
    html_rate: float = 0.0  # downloads answered 200 with an HTML page instead of the video
    missing_video_rate: float = 0.0  # tasks that succeed with no video in their result
    black_rate: float = 0.0  # videos whose every frame is black
    frozen_rate: float = 0.0  # videos whose every frame is the same
    short_rate: float = 0.0  # videos far shorter than asked
    undecodable_rate: float = 0.0  # videos whose frame data is mostly garbage
    aspect_rate: float = 0.0  # videos of another shape than the input image
    mute_rate: float = 0.0  # videos without audio although sound was asked

    def __post_init__(self) -> None:
        problem = _first_problem(self)
        if problem:
            raise ValueError(f"SimulatorConfig: {problem}")

    def changed(self, **changes: Any) -> SimulatorConfig:
        """A copy with `changes` applied; `seed`, `port` and `profile` are fixed at the start."""
        fixed = [name for name in FIXED_AT_START if name in changes]
        if fixed:
            raise ValueError(f"SimulatorConfig: {', '.join(fixed)} cannot change at run time")
        return replace(self, **changes)

    def as_json(self) -> dict[str, Any]:
        """The settings as JSON-ready values (keys and secrets shown as "***" when set)."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        return values | {name: "***" for name in HIDDEN if values[name] is not None}


def changes_from_json(document: Mapping[str, Any]) -> dict[str, Any]:
    """Keyword changes from a JSON object: lists become tuples, unknown names are refused."""
    known = {f.name for f in fields(SimulatorConfig)}
    unknown = sorted(set(document) - known)
    if unknown:
        raise ValueError(f"SimulatorConfig: unknown setting {', '.join(unknown)}")
    return {k: tuple(v) if isinstance(v, list) else v for k, v in document.items()}


def _first_problem(config: SimulatorConfig) -> str | None:
    for name in (*RATES, *VIDEO_DEFECT_RATES):
        if not 0.0 <= getattr(config, name) <= 1.0:
            return f"{name} must be between 0 and 1"
    low, high = config.latency
    checks = (
        (
            sum(getattr(config, name) for name in API_FAULT_RATES) <= 1.0,
            f"{', '.join(API_FAULT_RATES)} must add up to at most 1",
        ),
        (config.profile in PROFILE_NAMES, f"profile is one of {', '.join(PROFILE_NAMES)}"),
        (config.fail_mode in ("random", "prompt"), "fail_mode is random or prompt"),
        (
            config.lookup_form is None or config.lookup_form in LOOKUP_FORMS,
            f"lookup_form is one of {', '.join(LOOKUP_FORMS)} or None",
        ),
        (
            config.updated_at_mode in UPDATED_AT_MODES,
            f"updated_at_mode is one of {', '.join(UPDATED_AT_MODES)}",
        ),
        (
            sum(getattr(config, name) for name in VIDEO_DEFECT_RATES) <= 1.0,
            "video defect rates must add up to at most 1",
        ),
        (0.0 <= low <= high, "latency must be (min, max) with 0 <= min <= max"),
        (config.slots >= 1, "slots must be at least 1"),
        (config.rpm is None or config.rpm >= 1, "rpm must be at least 1 or None"),
        (all(getattr(config, name) >= 0 for name in DELAYS), f"{', '.join(DELAYS)} must be >= 0"),
        (config.retry_after is None or config.retry_after >= 0, "retry_after must be >= 0"),
        (config.url_ttl is None or config.url_ttl >= 0, "url_ttl must be >= 0 or None"),
        (config.video_bytes is None or config.video_bytes >= 0, "video_bytes must be >= 0"),
        (0 <= config.port <= 65535, "port must be 0..65535"),
    )
    return next((message for ok, message in checks if not ok), None)
