"""The simulator's HTTP face: an ASGI app with the paths, envelopes and codes of the Kling
image2video API as CometAPI relays it (../shared/kling-api.md §2–§6, §16), plus `/_sim/*`."""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
import random
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any
from urllib.parse import parse_qs

from batchgen.simulator.config import SimulatorConfig
from batchgen.simulator.tasks import Account, Task
from batchgen.simulator.video import render_cached

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

ROUTE = "/kling/v1/videos/image2video"
MODELS = {
    "kling-v1", "kling-v1-5", "kling-v1-6", "kling-v2-master", "kling-v2-1",
    "kling-v2-1-master", "kling-v2-5-turbo", "kling-v2-6", "kling-v3",
}
ACCOUNT_HTTP = {1000: 401, 1001: 401, 1002: 401, 1100: 429, 1101: 429, 1102: 429, 1103: 403,
                1304: 429}
COUNTERS = (
    "requests_total", "creates_received", "creates_accepted", "duplicate_external_id_refusals",
    "queries", "external_lookups", "list_calls", "downloads_started", "downloads_completed",
    "throttled_1303", "throttled_1302", "fault_5xx", "fault_reset_before_accept",
    "fault_reset_after_accept", "fault_slow", "fault_truncate", "expired_urls",
)


class Dropped(Exception):
    """Raised after a partial answer so that the server closes the connection."""


class KlingSimulator:
    """The ASGI application. Thread-safe enough for `reconfigure` and `stats` from tests."""

    def __init__(self, config: SimulatorConfig, clock: Callable[[], float] = time.monotonic):
        self.config = config
        self.clock = clock
        self.rng = random.Random(config.seed)
        self.account = Account(random.Random(config.seed + 1))
        self.account.counters.update(dict.fromkeys(COUNTERS, 0))
        self.images: dict[str, bytes | None] = {}
        self.recent: deque[float] = deque()
        self.lock = threading.Lock()

    def reconfigure(self, **changes: Any) -> None:
        with self.lock:
            self.config = replace(self.config, **changes)

    def stats(self) -> dict[str, Any]:
        with self.lock:
            return self.account.snapshot(self.clock())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        path, method = scope["path"], scope["method"]
        query = {k: v[0] for k, v in parse_qs(scope["query_string"].decode()).items()}
        if path.startswith("/_sim/videos/"):
            await self._video(scope, send, path, query)
        elif path == "/_sim/stats":
            await _json(send, 200, self.stats())
        elif path == "/_sim/config" and method == "POST":
            self.reconfigure(**_tuples(json.loads(await _body(receive) or b"{}")))
            await _json(send, 200, {"ok": True})
        elif path == ROUTE or path.startswith(ROUTE + "/"):
            await self._api(scope, receive, send, method, path, query)
        else:
            await _json(send, 404, _kling(1202, "invalid request method or path"))

    # -- API -------------------------------------------------------------------------------

    async def _api(self, scope: Scope, receive: Receive, send: Send, method: str, path: str,
                   query: dict[str, str]) -> None:
        body = await _body(receive) if method == "POST" else b""
        with self.lock:
            self.account.counters["requests_total"] += 1
            fault = self._fault(method)
            refusal = self._refusal(scope)
        if self.config.response_delay:
            await asyncio.sleep(self.config.response_delay)
        if refusal is not None:
            await _json(send, *refusal)
            return
        if fault == "5xx":
            await _json(send, *self._server_error())
            return
        if fault == "reset_before_accept":
            await _drop(send)
        if method == "POST" and path == ROUTE:
            status, answer = self._create(body)
        elif method == "GET" and path == ROUTE:
            status, answer = self._list_or_lookup(scope, query)
        elif method == "GET":
            status, answer = self._query(scope, path[len(ROUTE) + 1:])
        else:
            status, answer = 404, _kling(1202, "invalid request method")
        if fault == "reset_after_accept":
            await _drop(send)
        if fault == "slow":
            await asyncio.sleep(self.config.slow_seconds)
        await _json(send, status, answer)

    def _fault(self, method: str) -> str | None:
        """The fault (if any) this request meets; counted as injected."""
        c, roll = self.config, self.rng.random()
        creates = method == "POST"
        for name, rate in (
            ("5xx", c.error_rate),
            ("reset_before_accept", c.reset_before_accept_rate if creates else 0.0),
            ("reset_after_accept", c.reset_after_accept_rate if creates else 0.0),
            ("slow", c.slow_rate),
        ):
            if roll < rate:
                self.account.counters[f"fault_{name}"] += 1
                return name
            roll -= rate
        return None

    def _refusal(self, scope: Scope) -> tuple[int, dict[str, Any]] | None:
        auth = _header(scope, b"authorization")
        if not auth.startswith("Bearer ") or not auth[7:].strip():
            return 401, _kling(1001, "Authorization header is empty")
        if self.config.api_key is not None and auth[7:] != self.config.api_key:
            return 401, _kling(1000, "authentication failed")
        if self.config.rpm is not None:
            now = self.clock()
            while self.recent and self.recent[0] < now - 60:
                self.recent.popleft()
            if len(self.recent) >= self.config.rpm:
                self.account.counters["throttled_1302"] += 1
                return 429, _kling(1302, "request rate too high")
            self.recent.append(now)
        return None

    def _server_error(self) -> tuple[int, dict[str, Any]]:
        if self.rng.random() < 0.5:
            code = self.rng.choice((5000, 5001, 5002))
            return {5000: 500, 5001: 503, 5002: 504}[code], _kling(code, "internal error")
        status = self.rng.choice((500, 502, 503))
        return status, {"error": {"message": f"upstream error (request id: {_rid()})",
                                  "type": "comet_api_error", "param": "", "code": ""}}

    def _create(self, raw: bytes) -> tuple[int, dict[str, Any]]:
        with self.lock:
            self.account.counters["creates_received"] += 1
        if self.config.account_error is not None:
            code = self.config.account_error
            return ACCOUNT_HTTP.get(code, 429), _kling(code, "account error (simulated)")
        try:
            body = json.loads(raw)
        except ValueError:
            return 400, _kling(1200, "body is not JSON")
        problem = check_body(body)
        if problem:
            return 400, _kling(1201, problem)
        ext = body.get("external_task_id") or None
        now = self.clock()
        with self.lock:
            if ext and ext in self.account.by_external:
                self.account.counters["duplicate_external_id_refusals"] += 1
                return 400, _kling(1201, f"external_task_id {ext} already exists")
            if self.account.active(now) >= self.config.slots:
                self.account.counters["throttled_1303"] += 1
                return 429, _kling(1303, "parallel task over resource pack limit")
            key = self._keep_image(body)
            task = self.account.create(now, self.config.latency, self.config.fail_rate, ext,
                                       key, str(body.get("duration", "5")))
        data = {"task_id": task.task_id, "task_status": "submitted",
                "task_info": {"external_task_id": ext} if ext else {},
                "created_at": _ms(task.created), "updated_at": _ms(task.created)}
        return 200, {"code": 0, "message": "success", "request_id": _rid(), "data": data}

    def _keep_image(self, body: dict[str, Any]) -> str:
        image = body.get("image") or body.get("image_tail") or ""
        if image.startswith(("http://", "https://")):
            key = hashlib.sha256(image.encode()).hexdigest()
            self.images.setdefault(key, None)
            return key
        data = base64.b64decode(image)
        key = hashlib.sha256(data).hexdigest()
        self.images.setdefault(key, data)
        return key

    def _list_or_lookup(self, scope: Scope, query: dict[str, str]) -> tuple[int, dict[str, Any]]:
        if "external_task_id" in query:
            if self.config.external_lookup not in ("both", "query"):
                return 404, _kling(1203, "resource does not exist")
            return self._answer_task(scope, query["external_task_id"], "external_lookups")
        if not self.config.list_endpoint:
            return 404, _kling(1202, "invalid request method")
        page = _clamp(query.get("pageNum", "1"), 1, 1000)
        size = _clamp(query.get("pageSize", "30"), 1, 500)
        with self.lock:
            self.account.counters["list_calls"] += 1
            now = self.clock()
            tasks = [self._task_object(scope, t, now) for t in self.account.newest(page, size)]
        return 200, {"code": 0, "message": "SUCCEED", "request_id": _rid(), "data": tasks}

    def _query(self, scope: Scope, key: str) -> tuple[int, dict[str, Any]]:
        is_task_id = key in self.account.tasks
        if not is_task_id and self.config.external_lookup not in ("both", "path"):
            return 404, _kling(1203, "resource does not exist")
        return self._answer_task(scope, key, "queries" if is_task_id else "external_lookups")

    def _answer_task(self, scope: Scope, key: str, counter: str) -> tuple[int, dict[str, Any]]:
        with self.lock:
            self.account.counters[counter] += 1
            task = self.account.find(key)
            if task is None:
                return 404, _kling(1203, "resource does not exist")
            data = self._task_object(scope, task, self.clock())
        return 200, {"code": 0, "message": "SUCCEED", "request_id": _rid(), "data": data}

    def _task_object(self, scope: Scope, task: Task, now: float) -> dict[str, Any]:
        status = task.status(now)
        data: dict[str, Any] = {
            "task_id": task.task_id, "task_status": status, "task_status_msg": "",
            "task_info": {"external_task_id": task.external_task_id}
            if task.external_task_id else {},
            "created_at": _ms(task.created), "updated_at": _ms(min(now, task.finishes)),
            "task_result": {},
        }
        if status == "failed":
            data["task_status_msg"] = "Failure to pass the risk control system (simulated)"
        elif status == "succeed":
            task.url_serial += 1
            expires = "" if self.config.url_ttl is None else f"{now + self.config.url_ttl:.3f}"
            url = (f"{_origin(scope)}/_sim/videos/{task.task_id}.mp4"
                   f"?n={task.url_serial}&exp={expires}")
            data["task_result"] = {"videos": [{"id": f"v{task.task_id}", "url": url,
                                               "duration": task.duration}]}
            data["final_unit_deduction"] = "10" if task.duration == "10" else "5"
        return data

    # -- downloads -------------------------------------------------------------------------

    async def _video(self, scope: Scope, send: Send, path: str, query: dict[str, str]) -> None:
        task_id = path.rsplit("/", 1)[-1].removesuffix(".mp4")
        now = self.clock()
        with self.lock:
            task = self.account.tasks.get(task_id)
            expired = bool(query.get("exp")) and now > float(query["exp"])
            if expired:
                self.account.counters["expired_urls"] += 1
            truncate = self.rng.random() < self.config.truncate_rate
            if truncate:
                self.account.counters["fault_truncate"] += 1
            self.account.counters["downloads_started"] += 1
        if task is None or task.status(now) != "succeed" or expired:
            status = self.rng.choice((403, 404, 410)) if expired else 404
            await _plain(send, status, b"expired or unknown video URL")
            return
        padding = self.config.video_bytes or 0
        data = await asyncio.to_thread(render_cached, task.image_key,
                                       self.images.get(task.image_key), padding)
        start = _range_start(_header(scope, b"range"))
        await self._send_video(send, data, start, truncate)

    async def _send_video(self, send: Send, data: bytes, start: int, truncate: bool) -> None:
        if start >= len(data):
            await _plain(send, 416, b"range not satisfiable")
            return
        headers = [(b"content-type", b"video/mp4"), (b"accept-ranges", b"bytes"),
                   (b"content-length", str(len(data) - start).encode())]
        if start:
            headers.append((b"content-range", f"bytes {start}-{len(data) - 1}/{len(data)}".encode()))
        await send({"type": "http.response.start", "status": 206 if start else 200,
                    "headers": headers})
        view = memoryview(data)[start:]
        end = len(view) // 2 if truncate else len(view)
        for offset in range(0, end, 1 << 20):
            await send({"type": "http.response.body", "body": bytes(view[offset:min(end, offset + (1 << 20))]),
                        "more_body": True})
        if truncate:
            raise Dropped("download cut short (simulated)")
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        with self.lock:
            self.account.counters["downloads_completed"] += 1


def check_body(body: Any) -> str | None:
    """The first rule (§3, §16) the create body breaks, or None."""
    if not isinstance(body, dict):
        return "body must be a JSON object"
    if not body.get("image") and not body.get("image_tail"):
        return "image: one of image or image_tail is required"
    for name in ("image", "image_tail", "static_mask"):
        value = body.get(name)
        if value and not value.startswith(("http://", "https://")):
            if value.startswith("data:"):
                return f"{name}: base64 must not have a data: prefix"
            try:
                base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                return f"{name}: not valid base64"
    if len(body.get("prompt") or "") > 500:
        return "prompt: at most 500 characters"
    if len(body.get("negative_prompt") or "") > 200:
        return "negative_prompt: at most 200 characters"
    model = body.get("model_name", "kling-v1")
    if model not in MODELS:
        return f"model_name: unknown model {model}"
    if body.get("mode", "std") not in ("std", "pro"):
        return "mode: must be std or pro"
    durations = {str(n) for n in range(3, 16)} if model == "kling-v3" else {"5", "10"}
    if str(body.get("duration", "5")) not in durations:
        return f"duration: {model} takes {sorted(durations, key=int)}"
    cfg = body.get("cfg_scale", 0.5)
    if not isinstance(cfg, int | float) or not 0 <= cfg <= 1:
        return "cfg_scale: must be between 0 and 1"
    groups = [body.get("image_tail"), body.get("static_mask") or body.get("dynamic_masks"),
              body.get("camera_control")]
    if sum(1 for g in groups if g) > 1:
        return "image_tail, masks and camera_control cannot be combined"
    return None


def _kling(code: int, message: str) -> dict[str, Any]:
    return {"code": code, "message": message, "request_id": _rid()}


def _rid() -> str:
    return f"sim-{random.getrandbits(48):012x}"


def _ms(seconds: float) -> int:
    return int((time.time() - time.monotonic() + seconds) * 1000)


def _clamp(value: str, low: int, high: int) -> int:
    return max(low, min(high, int(value))) if value.isdigit() else low


def _header(scope: Scope, name: bytes) -> str:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return ""


def _origin(scope: Scope) -> str:
    host = _header(scope, b"host")
    if not host:
        server = scope.get("server") or ("127.0.0.1", 80)
        host = f"{server[0]}:{server[1]}"
    return f"http://{host}"


def _range_start(header: str) -> int:
    if header.startswith("bytes=") and header.endswith("-"):
        value = header[6:-1]
        return int(value) if value.isdigit() else 0
    return 0


def _tuples(changes: dict[str, Any]) -> dict[str, Any]:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in changes.items()}


async def _body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def _json(send: Send, status: int, value: Any) -> None:
    data = json.dumps(value).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(data)).encode())]})
    await send({"type": "http.response.body", "body": data})


async def _plain(send: Send, status: int, data: bytes) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain"),
                            (b"content-length", str(len(data)).encode())]})
    await send({"type": "http.response.body", "body": data})


async def _drop(send: Send) -> None:
    """Start an answer and break it off: the client sees a broken connection."""
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", b"1000")]})
    await send({"type": "http.response.body", "body": b'{"code":', "more_body": True})
    raise Dropped("connection dropped (simulated)")


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
