"""The simulated account behind the API: its tasks, limits, faults and counters, answering as
its provider does (profiles.py).

Every API call becomes a `Reply`: a complete `Answer`, the fault the transport must act out,
and the task it created, if any. Nothing here touches a socket or reads a clock, `now` (Unix
seconds) is an argument. All public methods hold one lock, so `stats` and `reconfigure` may
come from any thread.
"""

from __future__ import annotations

import hashlib
import json
import random
import threading
import uuid
from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from batchgen.simulator import envelopes
from batchgen.simulator.answers import Answer, json_answer
from batchgen.simulator.auth import holds_api_key
from batchgen.simulator.config import SimulatorConfig
from batchgen.simulator.defects import draw_defect, draw_html_page
from batchgen.simulator.faults import Fault, Faults
from batchgen.simulator.footage import Defect, VideoSpec
from batchgen.simulator.library import ImageStore, video_spec
from batchgen.simulator.links import LinkState, check_link, expired_status, video_url
from batchgen.simulator.pricing import units_charged
from batchgen.simulator.profiles import PROFILES, Route
from batchgen.simulator.tasks import NewTask, Outcome, Task, TaskBook
from batchgen.simulator.validation import check_create_body, image_problem, model_of

RATE_WINDOW = 60.0
PAGE_SIZE_DEFAULT, PAGE_SIZE_MAX, PAGE_NUM_MAX = 30, 500, 1000
NO_ANSWER = Answer(0, b"", "")  # what a dropped connection answers
AFTER_ACCEPT = (Fault.RESET_AFTER_ACCEPT, Fault.MALFORMED_ANSWER)


@dataclass(frozen=True)
class ApiCall:
    """One API request, as the account needs it."""

    route: Route
    authorization: str
    origin: str  # "http://host:port" of this server, for video URLs
    body: bytes = b""
    key: str = ""  # the id in the path
    query: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Reply:
    """An answer, the fault (reset or slow) the transport must act out, the task created."""

    answer: Answer
    fault: Fault | None = None
    created: Task | None = None


@dataclass(frozen=True)
class DownloadTicket:
    """Permission to serve a task's video, or the refusal to send instead."""

    status: int
    image_key: str = ""
    message: str = ""
    video: VideoSpec | None = None
    html_page: bool = False  # answer 200 with an HTML page instead (a fault)


class Account:
    """The account: call `api_call` for API requests, the `*_download` methods for videos."""

    def __init__(self, config: SimulatorConfig, images: ImageStore) -> None:
        self.config = config
        self.profile = PROFILES[config.profile]
        self.images = images
        self.book = TaskBook(random.Random(f"{config.seed}/tasks"))
        self.faults = Faults(random.Random(config.seed))
        self._request_ids = random.Random(f"{config.seed}/request-ids")
        self._defects = random.Random(f"{config.seed}/defects")
        self._defects_injected: Counter[str] = Counter()
        self._link_key = f"batchgen-simulator/{config.seed}".encode()
        self._counts: Counter[str] = Counter()
        self._faults_injected: Counter[str] = Counter()
        self._auth_refusals: Counter[int] = Counter()
        self._submissions: Counter[str] = Counter()
        self._queries_by_task: Counter[str] = Counter()
        self._recent: deque[float] = deque()
        self._lock = threading.Lock()

    def reconfigure(self, **changes: Any) -> SimulatorConfig:
        """Apply `changes` to the settings (see SimulatorConfig.changed); answers the result."""
        with self._lock:
            self.config = self.config.changed(**changes)
            return self.config

    def api_call(self, call: ApiCall, now: float) -> Reply:
        """The answer to one API request arriving at `now`."""
        with self._lock:
            route = self._served(call)
            if route in (Route.NOT_SERVED, Route.ELSEWHERE):
                self._counts["unrouted"] += 1
                return Reply(self._unrouted(route))
            self._counts["requests_total"] += 1
            self._counts["creates_received"] += call.route is Route.CREATE
            refusal = self._gate(call.authorization, now)
            if refusal is not None:
                return Reply(refusal)
            fault = self.faults.for_api_call(self.config, call.route is Route.CREATE)
            reply = self._answer(call, now, fault)
            if reply.fault is not None:
                self._faults_injected[reply.fault] += 1
            return reply

    @property
    def lookup_form(self) -> str:
        """Where this account answers a look-up by external id (config, else profile)."""
        return self.config.lookup_form or self.profile.lookup_form

    @property
    def lists_tasks(self) -> bool:
        found = self.config.lists_tasks
        return self.profile.lists_tasks if found is None else found

    @property
    def refuses_reused_ids(self) -> bool:
        found = self.config.refuses_reused_ids
        return self.profile.dedupes_external_ids if found is None else found

    def _served(self, call: ApiCall) -> Route:
        """The route a GET on the collection is: a list, a look-up or nothing served."""
        if call.route is not Route.LIST:
            return call.route
        if "external_task_id" in call.query and self.lookup_form == "query":
            return Route.LIST
        return Route.LIST if self.lists_tasks else Route.NOT_SERVED

    def refusal(self, code: int, message: str | None = None) -> Answer:
        """Kling's code `code` as this provider answers it."""
        with self._lock:
            return self._refusal(code, message)

    def callback_body(self, task_id: str, at: float, origin: str) -> dict[str, Any]:
        """The task as its status-change callback describes it at `at` (flat, E25)."""
        with self._lock:
            return self._task_object(self.book.tasks[task_id], origin, at, stamped=False)

    def admit_download(self, task_id: str, query: Mapping[str, str], now: float) -> DownloadTicket:
        """Whether the link for `task_id` may be served at `now`."""
        with self._lock:
            task = self.book.tasks.get(task_id)
            state = check_link(task_id, query, int(now * 1000), self._link_key)
            if state is LinkState.EXPIRED:
                self._counts["expired_url_refusals"] += 1
                return DownloadTicket(expired_status(query), message="this link has expired")
            if task is None or state is LinkState.FORGED or task.status(now) != "succeed":
                return DownloadTicket(404, message="no such video")
            html_page = draw_html_page(self._defects, self.config)
            self._faults_injected[Fault.HTML_PAGE] += html_page
            return DownloadTicket(200, task.image_key, video=task.video, html_page=html_page)

    def start_download(self, length: int, ranged: bool) -> int | None:
        """Count a download of `length` bytes; answers where a truncation fault cuts it."""
        with self._lock:
            self._counts["downloads_started"] += 1
            self._counts["range_requests"] += ranged
            cut = self.faults.cut_at(self.config, length)
            if cut is not None:
                self._faults_injected[Fault.TRUNCATE] += 1
            return cut

    def finish_download(self) -> None:
        with self._lock:
            self._counts["downloads_completed"] += 1

    def stats(self, now: float, with_tasks: bool = False) -> dict[str, Any]:
        """A snapshot of the counters (see the package docstring); `task_spans` on request."""
        with self._lock:
            active = self.book.active(now)
            snapshot: dict[str, Any] = {name: self._counts[name] for name in COUNTERS}
            snapshot |= {
                "profile": self.profile.name,
                "auth_refusals": {str(code): n for code, n in sorted(self._auth_refusals.items())},
                "faults": {kind.value: self._faults_injected[kind] for kind in Fault},
                "video_defects": {kind.value: self._defects_injected[kind] for kind in Defect},
                "submissions_per_external_id": dict(self._submissions),
                "tasks_total": len(self.book.tasks),
                "active": active,
                "max_active": self.book.max_active,
                "busy_seconds": self.book.busy_seconds,
                "slots": self.config.slots,
            }
            if with_tasks:
                snapshot["task_spans"] = {t: [c, f] for t, c, f in self.book.spans()}
                snapshot["tasks_by_external_id"] = self.book.external_ids()
                snapshot["queries_by_task"] = dict(self._queries_by_task)
            return snapshot

    def _gate(self, authorization: str, now: float) -> Answer | None:
        """A refusal for missing or wrong credentials, or above the request rate."""
        code = self.profile.check_credentials(authorization, self.config, now)
        if code is not None:
            self._auth_refusals[code] += 1
            return self._refusal(code)
        return self._rate_limit(now)

    def _rate_limit(self, now: float) -> Answer | None:
        while self._recent and self._recent[0] <= now - RATE_WINDOW:
            self._recent.popleft()
        if self.config.rpm is not None and len(self._recent) >= self.config.rpm:
            self._counts["throttled_1302"] += 1
            return self._throttled(1302)
        self._recent.append(now)
        return None

    def _answer(self, call: ApiCall, now: float, fault: Fault | None) -> Reply:
        """A 5xx or a reset instead of the work, or the work and then the fault. A reset after
        accepting and a malformed answer only happen to creates that were accepted."""
        if fault is Fault.SERVER_ERROR:
            return Reply(self._server_error(call), fault)
        if fault is Fault.RESET_BEFORE_ACCEPT:
            return Reply(NO_ANSWER, fault)
        reply = self._handle(call, now)
        if fault is None or (fault in AFTER_ACCEPT and reply.created is None):
            return reply
        return Reply(self._spoiled(reply.answer, fault), fault, reply.created)

    def _spoiled(self, answer: Answer, fault: Fault) -> Answer:
        """The answer as `fault` leaves it (resets and delays are the transport's to act out)."""
        if fault is Fault.GATEWAY_TIMEOUT:
            return self.profile.dialect.gateway_timeout()
        if fault is Fault.MALFORMED_ANSWER:
            kept = self.faults.malformed_length()
            if kept is None:
                return self.profile.dialect.web_page()
            return replace(answer, body=answer.body[:kept])
        return answer

    def _handle(self, call: ApiCall, now: float) -> Reply:
        if call.route is Route.CREATE:
            return self._create(call.body, now)
        if call.route is Route.GET_ONE:
            return self._get_one(call.key, call.origin, now)
        if call.route is Route.TASKS:
            return self._tasks(call, now)
        external = call.query.get("external_task_id")
        if external is not None and self.lookup_form == "query":
            return self._look_up(external, call.origin, now)
        return self._list(call.query, call.origin, now)

    def _create(self, raw: bytes, now: float) -> Reply:
        if self.config.account_error is not None:
            self._counts["account_error_refusals"] += 1
            return Reply(self._refusal(self.config.account_error))
        body, problem = _parse_create(raw, self.profile.text_limits)
        if problem is not None:
            self._counts["invalid_creates"] += 1
            return Reply(self._refusal(1201 if body is not None else 1200, problem))
        if model_of(body) in self.config.refused_models:
            self._counts["invalid_creates"] += 1
            return Reply(self._refusal(1201, "model is not supported"))
        external_id = body.get("external_task_id") or None
        if self._is_duplicate(external_id):
            self._counts["duplicate_external_id_refusals"] += 1
            return Reply(self._refusal(1201, self.config.reused_id_message))
        config = self.config
        no_slot = self.book.active(now) >= config.slots
        if no_slot and not config.slots_as_failed_task:
            self._counts["throttled_1303"] += 1
            return Reply(self._throttled(1303))
        defect = draw_defect(self._defects, config)
        if defect is not None:
            self._defects_injected[defect] += 1
        new = replace(_new_task(body, self.images, defect), no_slot=no_slot)
        if config.fail_mode == "prompt":
            new = replace(new, fails=_prompt_fails(body, config))
        if config.missing_video_rate and self.faults.rng.random() < config.missing_video_rate:
            new = replace(new, no_video=True)
            self._faults_injected[Fault.MISSING_VIDEO] += 1
        task = self.book.create(new, now, config.latency, config.fail_rate)
        self._count_accepted(task)
        data = envelopes.created(task, self.profile.echoes_external_id)
        return Reply(self.profile.dialect.created(data, self._request_id()), created=task)

    def _is_duplicate(self, external_id: str | None) -> bool:
        if external_id is None or not self.refuses_reused_ids:
            return False
        return self.book.has_external(external_id)

    def _count_accepted(self, task: Task) -> None:
        self._counts["creates_accepted"] += 1
        self._counts["image_rejections"] += task.outcome is Outcome.IMAGE_REJECTED
        if task.external_task_id is not None:
            self._submissions[task.external_task_id] += 1

    def _get_one(self, key: str, origin: str, now: float) -> Reply:
        """The task with this task id (or, where look-ups are in the path, external id)."""
        task = self.book.tasks.get(key)
        self._counts["queries"] += task is not None
        if task is not None:
            self._queries_by_task[key] += 1
        if task is None and self.lookup_form == "path":
            self._counts["external_lookups"] += 1
            return self._one(self.book.by_external(key), key, origin, now, echo=True)
        return self._one(task, key, origin, now)

    def _look_up(self, external_id: str, origin: str, now: float) -> Reply:
        """The task with this external id, asked in the query string."""
        self._counts["external_lookups"] += 1
        return self._one(self.book.by_external(external_id), external_id, origin, now, echo=True)

    def _one(
        self, task: Task | None, key: str, origin: str, now: float, echo: bool = False
    ) -> Reply:
        """The answer about one task; `echo`: it was asked for by its external id, which a
        provider answering such look-ups echoes whatever its other answers do."""
        if task is not None and now - task.created < self.config.not_found_grace:
            self._faults_injected[Fault.NOT_FOUND_GRACE] += 1
            task = None
        if task is None:
            self._counts["not_found"] += 1
            return Reply(self.profile.dialect.not_found(key, self._request_id()))
        data = self._task_object(task, origin, now, echo=echo)
        if self.config.wrapped_answers and not echo:
            return Reply(json_answer(200, envelopes.wrapped(data, self._request_id())))
        return Reply(self.profile.dialect.found(data, self._request_id()))

    def _tasks(self, call: ApiCall, now: float) -> Reply:
        """GET /tasks?task_ids=a,b or ?external_task_ids=a,b (the newer API, API Key only):
        the tasks named, echoing their external ids; the legacy /v1 tasks only where
        `tasks_show_legacy` (whether they appear there is unknown, §18.2 (7))."""
        self._counts["tasks_calls"] += 1
        if not holds_api_key(call.authorization, self.config):
            return Reply(self._refusal(1103, "this endpoint needs an API Key"))
        ids = [i for i in call.query.get("task_ids", "").split(",") if i]
        externals = [e for e in call.query.get("external_task_ids", "").split(",") if e]
        found = [self.book.tasks.get(i) for i in ids]
        found += [self.book.by_external(e) for e in externals]
        shown = [t for t in found if t is not None and self.config.tasks_show_legacy]
        data = [self._task_object(t, call.origin, now, echo=True) for t in shown]
        return Reply(self.profile.dialect.found(data, self._request_id()))

    def _list(self, query: Mapping[str, str], origin: str, now: float) -> Reply:
        self._counts["list_calls"] += 1
        number = _bounded(query.get("pageNum"), 1, 1, PAGE_NUM_MAX)
        size = _bounded(query.get("pageSize"), PAGE_SIZE_DEFAULT, 1, PAGE_SIZE_MAX)
        if number is None or size is None:
            message = f"pageNum is 1..{PAGE_NUM_MAX}, pageSize 1..{PAGE_SIZE_MAX}"
            return Reply(self._refusal(1201, message))
        page = self.book.page(number, size, created_by=now - self.config.not_found_grace)
        tasks = [self._task_object(t, origin, now) for t in page]
        return Reply(self.profile.dialect.found(tasks, self._request_id()))

    def _task_object(
        self, task: Task, origin: str, now: float, stamped: bool = True, echo: bool = False
    ) -> dict[str, Any]:
        """The task at `now`; `stamped`: as an answer shows it (updated_at_mode applies)."""
        url = None
        if task.status(now) == "succeed":
            ttl = self.config.url_ttl
            expires = 0 if ttl is None else max(1, int((now + ttl) * 1000))
            url = video_url(origin, task.task_id, expires, self._link_key)
        stamp = {"query": now, "overflow": 1e297}.get(self.config.updated_at_mode)
        stamp = stamp if stamped else None
        echoed = echo or self.profile.echoes_external_id
        data = envelopes.task_object(task, now, url, echoed, stamp)
        if self.config.reports_cash:
            data = envelopes.with_billing(data)
        return envelopes.with_nulls(data) if self.config.null_fields else data

    def _server_error(self, call: ApiCall) -> Answer:
        is_create = call.route is Route.CREATE
        model = _model_asked(call.body) if is_create else ""
        dialect = self.profile.dialect
        return dialect.server_error(is_create, model, self._request_id(), self.faults.rng)

    def _throttled(self, code: int) -> Answer:
        """A throttling refusal, with a Retry-After header on some of its 429s."""
        answer = self._refusal(code)
        seconds = self.faults.retry_after(self.config) if answer.status == 429 else None
        return answer if seconds is None else answer.with_header("retry-after", str(seconds))

    def _unrouted(self, route: Route) -> Answer:
        dialect = self.profile.dialect
        if route is Route.NOT_SERVED:
            return dialect.not_served(self._request_id())
        return dialect.elsewhere(self._request_id())

    def _refusal(self, code: int, message: str | None = None) -> Answer:
        return self.profile.dialect.refusal(code, message, self._request_id(), self.faults.rng)

    def _request_id(self) -> str:
        return str(uuid.UUID(int=self._request_ids.getrandbits(128), version=4))


COUNTERS = (
    "requests_total",
    "tasks_calls",
    "creates_received",
    "creates_accepted",
    "image_rejections",
    "invalid_creates",
    "duplicate_external_id_refusals",
    "account_error_refusals",
    "throttled_1303",
    "throttled_1302",
    "queries",
    "external_lookups",
    "not_found",
    "list_calls",
    "unrouted",
    "downloads_started",
    "downloads_completed",
    "range_requests",
    "expired_url_refusals",
)


def _parse_create(raw: bytes, text_limits: tuple[int, int]) -> tuple[Any, str | None]:
    """The JSON body and the first rule it breaks; body None if it is not JSON at all."""
    try:
        body = json.loads(raw)
    except ValueError:
        return None, "body: not valid JSON"
    return body, check_create_body(body, text_limits)


def _model_asked(raw: bytes) -> str:
    """The model a create body names, as far as it can be read."""
    try:
        body = json.loads(raw)
    except ValueError:
        body = None
    return model_of(body) if isinstance(body, Mapping) else model_of({})


def _new_task(body: Mapping[str, Any], images: ImageStore, defect: Defect | None) -> NewTask:
    """The task a valid body asks for; an unusable image is not kept, the task will fail."""
    duration = str(body.get("duration", "5"))
    rejected = image_problem(body) is not None
    video = None if rejected else video_spec(body, images, defect)
    return NewTask(
        external_task_id=body.get("external_task_id") or None,
        image_key="" if video is None else video.image_key,
        duration=duration,
        units=units_charged(
            model_of(body), str(body.get("mode", "std")), duration, str(body.get("sound", "off"))
        ),
        image_rejected=rejected,
        callback_url=body.get("callback_url") or None,
        video=video,
        watermarked=bool((body.get("watermark_info") or {}).get("enabled")),
    )


def _prompt_fails(body: Mapping[str, Any], config: SimulatorConfig) -> bool:
    """Whether moderation refuses this prompt, every time it is sent (fail_mode "prompt")."""
    digest = hashlib.sha256(f"{config.seed}/{body.get('prompt', '')}".encode()).digest()
    return int.from_bytes(digest[:4], "big") / 2**32 < config.fail_rate


def _bounded(value: str | None, default: int, low: int, high: int) -> int | None:
    """An integer query parameter within [low, high]; None if it is not one."""
    if value is None:
        return default
    if not value.isdigit() or not low <= int(value) <= high:
        return None
    return int(value)
