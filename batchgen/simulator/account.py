"""The simulated account behind the API: its settings, tasks, limits, faults and counters.

Every API call becomes a `Reply` (HTTP status, JSON body, and the fault the transport must act
out); nothing here touches a socket or reads a clock, `now` (Unix seconds) is an argument.
All public methods hold one lock, so `stats` and `reconfigure` may come from any thread.
"""

from __future__ import annotations

import json
import random
import threading
import uuid
from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from batchgen.simulator import envelopes
from batchgen.simulator.config import SimulatorConfig
from batchgen.simulator.defects import draw_defect, draw_html_page
from batchgen.simulator.faults import Fault, Faults
from batchgen.simulator.footage import Defect, VideoSpec
from batchgen.simulator.library import ImageStore, video_spec
from batchgen.simulator.links import LinkState, check_link, expired_status, video_url
from batchgen.simulator.pricing import units_charged
from batchgen.simulator.tasks import NewTask, Task, TaskBook
from batchgen.simulator.validation import check_create_body, model_of

RATE_WINDOW = 60.0
PAGE_SIZE_DEFAULT, PAGE_SIZE_MAX, PAGE_NUM_MAX = 30, 500, 1000
EXTERNAL_FORMS = {"query": ("both", "query"), "path": ("both", "path")}


class Route(Enum):
    """What an API request asks for."""

    CREATE = "create"  # POST …/image2video
    GET_BY_PATH = "get_by_path"  # GET …/image2video/{task_id or external_task_id}
    GET_BY_EXTERNAL = "get_by_external"  # GET …/image2video?external_task_id=X
    LIST = "list"  # GET …/image2video[?pageNum=N&pageSize=M]
    UNSUPPORTED = "unsupported"  # any other method on the API paths


@dataclass(frozen=True)
class ApiCall:
    """One API request, as the account needs it."""

    route: Route
    authorization: str
    origin: str  # "http://host:port" of this server, for video URLs
    body: bytes = b""
    key: str = ""  # the id in the path, or the external_task_id of the query
    query: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Reply:
    """An answer, and the fault (reset or slow) the transport must act out with it."""

    status: int
    body: Any
    fault: Fault | None = None


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
        self.images = images
        self.book = TaskBook(random.Random(f"{config.seed}/tasks"))
        self.faults = Faults(random.Random(config.seed))
        self._request_ids = random.Random(f"{config.seed}/request-ids")
        self._defects = random.Random(f"{config.seed}/defects")
        self._defects_injected: Counter[str] = Counter()
        self._link_key = f"batchgen-simulator/{config.seed}".encode()
        self._counts: Counter[str] = Counter()
        self._faults_injected: Counter[str] = Counter()
        self._submissions: Counter[str] = Counter()
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
            self._counts["requests_total"] += 1
            self._counts["creates_received"] += call.route is Route.CREATE
            refusal = self._gate(call.authorization, now)
            if refusal is not None:
                return refusal
            fault = self.faults.for_api_call(self.config, call.route is Route.CREATE)
            reply = self._answer(call, now, fault)
            if reply.fault is not None:
                self._faults_injected[reply.fault] += 1
            return reply

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
            return snapshot

    def _gate(self, authorization: str, now: float) -> Reply | None:
        """401 for missing or wrong credentials, 429/1302 above the request rate."""
        scheme, _, key = authorization.strip().partition(" ")
        if scheme in ("", "Bearer") and not key.strip():
            return self._error(1001)
        if scheme != "Bearer" or not key.strip():
            return self._error(1002)
        if self.config.api_key is not None and key.strip() != self.config.api_key:
            return self._error(1000)
        return self._rate_limit(now)

    def _rate_limit(self, now: float) -> Reply | None:
        while self._recent and self._recent[0] <= now - RATE_WINDOW:
            self._recent.popleft()
        if self.config.rpm is not None and len(self._recent) >= self.config.rpm:
            self._counts["throttled_1302"] += 1
            return self._error(1302)
        self._recent.append(now)
        return None

    def _answer(self, call: ApiCall, now: float, fault: Fault | None) -> Reply:
        """A 5xx or a reset instead of the work, or the work and then the fault (a reset after
        accepting only happens if the create was accepted)."""
        if fault is Fault.SERVER_ERROR:
            return Reply(*self.faults.server_error(self._request_id()), fault)
        if fault is Fault.RESET_BEFORE_ACCEPT:
            return Reply(0, None, fault)
        reply = self._handle(call, now)
        if fault is Fault.RESET_AFTER_ACCEPT and reply.status != 200:
            return reply
        return Reply(reply.status, reply.body, fault)

    def _handle(self, call: ApiCall, now: float) -> Reply:
        if call.route is Route.CREATE:
            return self._create(call.body, now)
        if call.route is Route.GET_BY_PATH:
            return self._get_by_path(call.key, call.origin, now)
        if call.route is Route.GET_BY_EXTERNAL:
            return self._get_by_external(call.key, "query", call.origin, now)
        if call.route is Route.LIST:
            return self._list(call.query, call.origin, now)
        return self._error(1202)

    def _create(self, raw: bytes, now: float) -> Reply:
        if self.config.account_error is not None:
            self._counts["account_error_refusals"] += 1
            return self._error(self.config.account_error)
        body, problem = _parse_create(raw)
        if problem is not None:
            self._counts["invalid_creates"] += 1
            return self._error(1201 if body is not None else 1200, problem)
        external_id = body.get("external_task_id") or None
        if external_id is not None and self.book.has_external(external_id):
            self._counts["duplicate_external_id_refusals"] += 1
            return self._error(1201, f"external_task_id {external_id!r} already exists")
        if self.book.active(now) >= self.config.slots:
            self._counts["throttled_1303"] += 1
            return self._error(1303)
        defect = draw_defect(self._defects, self.config)
        if defect is not None:
            self._defects_injected[defect] += 1
        task = self.book.create(
            _new_task(body, self.images, defect), now, self.config.latency, self.config.fail_rate
        )
        self._counts["creates_accepted"] += 1
        if external_id is not None:
            self._submissions[external_id] += 1
        return Reply(200, envelopes.success(envelopes.created(task), self._request_id(), "success"))

    def _get_by_path(self, key: str, origin: str, now: float) -> Reply:
        task = self.book.tasks.get(key)
        if task is None:
            return self._get_by_external(key, "path", origin, now)
        self._counts["queries"] += 1
        return self._task_reply(task, origin, now)

    def _get_by_external(self, external_id: str, form: str, origin: str, now: float) -> Reply:
        self._counts["external_lookups"] += 1
        task = self.book.by_external(external_id)
        if task is None or self.config.external_lookup not in EXTERNAL_FORMS[form]:
            self._counts["not_found"] += 1
            return self._error(1203, f"task {external_id!r} does not exist")
        return self._task_reply(task, origin, now)

    def _list(self, query: Mapping[str, str], origin: str, now: float) -> Reply:
        self._counts["list_calls"] += 1
        if not self.config.list_endpoint:
            return self._error(1202)
        number = _bounded(query.get("pageNum"), 1, 1, PAGE_NUM_MAX)
        size = _bounded(query.get("pageSize"), PAGE_SIZE_DEFAULT, 1, PAGE_SIZE_MAX)
        if number is None or size is None:
            return self._error(1201, f"pageNum is 1..{PAGE_NUM_MAX}, pageSize 1..{PAGE_SIZE_MAX}")
        tasks = [self._task_object(t, origin, now) for t in self.book.page(number, size)]
        return Reply(200, envelopes.success(tasks, self._request_id()))

    def _task_reply(self, task: Task, origin: str, now: float) -> Reply:
        data = self._task_object(task, origin, now)
        return Reply(200, envelopes.success(data, self._request_id()))

    def _task_object(self, task: Task, origin: str, now: float) -> dict[str, Any]:
        url = None
        if task.status(now) == "succeed":
            ttl = self.config.url_ttl
            expires = 0 if ttl is None else max(1, int((now + ttl) * 1000))
            url = video_url(origin, task.task_id, expires, self._link_key)
        return envelopes.task_object(task, now, url)

    def _error(self, code: int, message: str | None = None) -> Reply:
        body = envelopes.kling_error(code, self._request_id(), message)
        return Reply(envelopes.http_status(code), body)

    def _request_id(self) -> str:
        return str(uuid.UUID(int=self._request_ids.getrandbits(128), version=4))


COUNTERS = (
    "requests_total",
    "creates_received",
    "creates_accepted",
    "invalid_creates",
    "duplicate_external_id_refusals",
    "account_error_refusals",
    "throttled_1303",
    "throttled_1302",
    "queries",
    "external_lookups",
    "not_found",
    "list_calls",
    "downloads_started",
    "downloads_completed",
    "range_requests",
    "expired_url_refusals",
)


def _parse_create(raw: bytes) -> tuple[Any, str | None]:
    """The JSON body and the first rule it breaks; body None if it is not JSON at all."""
    try:
        body = json.loads(raw)
    except ValueError:
        return None, "body: not valid JSON"
    return body, check_create_body(body)


def _new_task(body: Mapping[str, Any], images: ImageStore, defect: Defect | None) -> NewTask:
    duration = str(body.get("duration", "5"))
    video = video_spec(body, images, defect)
    return NewTask(
        external_task_id=body.get("external_task_id") or None,
        image_key=video.image_key,
        duration=duration,
        units=units_charged(model_of(body), str(body.get("mode", "std")), duration),
        video=video,
    )


def _bounded(value: str | None, default: int, low: int, high: int) -> int | None:
    """An integer query parameter within [low, high]; None if it is not one."""
    if value is None:
        return default
    if not value.isdigit() or not low <= int(value) <= high:
        return None
    return int(value)
