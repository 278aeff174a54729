"""The simulator's HTTP face: an ASGI app serving Kling's image2video API as CometAPI relays it
(kling-api.md §2-§6, §16), the task videos, and the simulator's own controls:

    POST /kling/v1/videos/image2video                       create a task
    GET  /kling/v1/videos/image2video/{task_id}             query a task (or by external id)
    GET  /kling/v1/videos/image2video?external_task_id=X    query by external id
    GET  /kling/v1/videos/image2video?pageNum=N&pageSize=M  list tasks, newest first
    GET  /_sim/videos/{task_id}.mp4?expires=…&sig=…         download a video (Range: bytes=N-)
    GET  /_sim/stats[?tasks=1]                              counters as JSON
    GET  /_sim/config, POST /_sim/config {changes}          settings; change them at run time
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

from batchgen.simulator import asgi
from batchgen.simulator.account import Account, ApiCall, Route
from batchgen.simulator.asgi import Receive, Scope, Send
from batchgen.simulator.config import SimulatorConfig, changes_from_json
from batchgen.simulator.defects import HTML_PAGE
from batchgen.simulator.envelopes import kling_error
from batchgen.simulator.faults import Fault
from batchgen.simulator.footage import VideoSpec
from batchgen.simulator.library import ImageStore, VideoLibrary
from batchgen.simulator.links import RangeNotSatisfiable, byte_range, task_id_of
from batchgen.simulator.video import padded

API_ROUTE = "/kling/v1/videos/image2video"
RESETS = (Fault.RESET_BEFORE_ACCEPT, Fault.RESET_AFTER_ACCEPT)


class KlingSimulator:
    """The ASGI application. `clock` gives Unix seconds and `sleep` waits (both injectable)."""

    def __init__(
        self,
        config: SimulatorConfig,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        images = ImageStore()
        self.account = Account(config, images)
        self.library = VideoLibrary(images)
        self.clock = clock
        self.sleep = sleep

    @property
    def config(self) -> SimulatorConfig:
        return self.account.config

    def reconfigure(self, **changes: Any) -> SimulatorConfig:
        """Change settings at run time (thread-safe); answers the new settings."""
        return self.account.reconfigure(**changes)

    def stats(self, with_tasks: bool = False) -> dict[str, Any]:
        """A snapshot of the counters; with `with_tasks`, also `task_spans`."""
        snapshot = self.account.stats(self.clock(), with_tasks)
        snapshot["video_renders"] = self.library.renders
        snapshot["process_cpu_seconds"] = time.process_time()  # for benchmarks: the server's cost
        return snapshot

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await asgi.lifespan(receive, send)
        elif scope["type"] == "http":
            await self._http(scope, receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"]
        if path == API_ROUTE or path.startswith(API_ROUTE + "/"):
            await self._api(scope, receive, send)
        elif task_id_of(path) is not None:
            await self._video(scope, send)
        elif path == "/_sim/stats":
            with_tasks = asgi.query_params(scope).get("tasks") in ("1", "true")
            await asgi.send_json(send, 200, self.stats(with_tasks))
        elif path == "/_sim/config":
            await self._settings(scope, receive, send)
        else:
            await asgi.send_json(send, 404, kling_error(1202, "", "no such path"))

    async def _api(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            body = await asgi.read_body(receive) if scope["method"] == "POST" else b""
        except asgi.BodyTooLarge as exc:
            await asgi.send_json(send, 413, kling_error(1200, "", str(exc)))
            return
        reply = self.account.api_call(api_call(scope, body), self.clock())
        config = self.account.config
        delay = config.response_delay + (config.slow_seconds if reply.fault is Fault.SLOW else 0)
        if delay:
            await self.sleep(delay)
        if reply.fault in RESETS:
            await asgi.drop_connection(send)
        else:
            await asgi.send_json(send, reply.status, reply.body)

    async def _video(self, scope: Scope, send: Send) -> None:
        task_id = task_id_of(scope["path"]) or ""
        ticket = self.account.admit_download(task_id, asgi.query_params(scope), self.clock())
        if ticket.status != 200:
            await asgi.send_bytes(send, ticket.status, ticket.message.encode(), b"text/plain")
            return
        if ticket.html_page:
            await asgi.send_bytes(send, 200, HTML_PAGE, b"text/html; charset=utf-8")
            return
        spec = ticket.video or VideoSpec(ticket.image_key)
        video = padded(await self.library.mp4(spec), self.config.video_bytes)
        try:
            span = byte_range(asgi.header(scope, b"range"), video.size)
        except RangeNotSatisfiable as exc:
            extra = [(b"content-range", str(exc).encode())]
            await asgi.send_bytes(send, 416, b"range not satisfiable", b"text/plain", extra)
            return
        start, stop = span or (0, video.size)
        cut = self.account.start_download(stop - start, span is not None)
        headers = video_headers(start, stop, video.size, span is not None)
        end = stop if cut is None else start + cut
        await asgi.send_stream(
            send, 206 if span else 200, headers, video.chunks(start, end), complete=cut is None
        )
        if cut is None:
            self.account.finish_download()

    async def _settings(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] != "POST":
            await asgi.send_json(send, 200, self.config.as_json())
            return
        try:
            changes = changes_from_json(json.loads(await asgi.read_body(receive) or b"{}"))
            config = self.reconfigure(**changes)
        except (ValueError, TypeError, AttributeError) as exc:
            await asgi.send_json(send, 400, {"error": str(exc)})
            return
        await asgi.send_json(send, 200, config.as_json())


def api_call(scope: Scope, body: bytes) -> ApiCall:
    """The ApiCall for a request on the API paths."""
    query = asgi.query_params(scope)
    route, key = route_of(scope["method"], scope["path"], query)
    return ApiCall(
        route, asgi.header(scope, b"authorization"), asgi.server_origin(scope), body, key, query
    )


def route_of(method: str, path: str, query: dict[str, str]) -> tuple[Route, str]:
    """Which API operation a request is, and the id it names."""
    path = path.rstrip("/")
    if path == API_ROUTE:
        if method == "POST":
            return Route.CREATE, ""
        if method == "GET" and "external_task_id" in query:
            return Route.GET_BY_EXTERNAL, query["external_task_id"]
        return (Route.LIST, "") if method == "GET" else (Route.UNSUPPORTED, "")
    key = path[len(API_ROUTE) + 1 :]
    if method == "GET" and key and "/" not in key:
        return Route.GET_BY_PATH, key
    return Route.UNSUPPORTED, ""


def video_headers(start: int, stop: int, size: int, ranged: bool) -> asgi.Headers:
    headers = [
        (b"content-type", b"video/mp4"),
        (b"accept-ranges", b"bytes"),
        (b"content-length", b"%d" % (stop - start)),
    ]
    if ranged:
        headers.append((b"content-range", b"bytes %d-%d/%d" % (start, stop - 1, size)))
    return headers
