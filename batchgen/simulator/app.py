"""The simulator's HTTP face: an ASGI app serving the image2video API of its profile's provider
(kling-api.md §2-§6, §16, §17), the task videos, and the simulator's own controls:

    POST {api_path}                                     create a task
    GET  {api_path}/{id}                                query a task (kling: or by external id)
    GET  {api_path}?pageNum=N&pageSize=M                list tasks, newest first (kling only)
    GET  /_sim/videos/{task_id}.mp4?expires=…&sig=…     download a video (Range: bytes=N-)
    GET  /_sim/stats[?tasks=1]                          counters as JSON
    GET  /_sim/config, POST /_sim/config {changes}      settings; change them at run time

{api_path} is /kling/v1/videos/image2video for cometapi, /v1/videos/image2video for kling.
Any other path is answered as the provider answers a wrong path.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

from batchgen.simulator import asgi
from batchgen.simulator.account import Account, ApiCall, Reply
from batchgen.simulator.answers import Answer
from batchgen.simulator.asgi import Receive, Scope, Send
from batchgen.simulator.callbacks import CallbackSender
from batchgen.simulator.config import SimulatorConfig, changes_from_json
from batchgen.simulator.defects import HTML_PAGE
from batchgen.simulator.faults import Fault
from batchgen.simulator.footage import VideoSpec
from batchgen.simulator.library import ImageStore, VideoLibrary
from batchgen.simulator.links import RangeNotSatisfiable, byte_range, task_id_of
from batchgen.simulator.profiles import Route
from batchgen.simulator.video import padded, stamped

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
        self.callbacks = CallbackSender(self.account, clock)
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
        snapshot |= self.callbacks.counts
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
        if task_id_of(path) is not None:
            await self._video(scope, send)
        elif path == "/_sim/stats":
            with_tasks = asgi.query_params(scope).get("tasks") in ("1", "true")
            await asgi.send_json(send, 200, self.stats(with_tasks))
        elif path == "/_sim/config":
            await self._settings(scope, receive, send)
        else:
            await self._api(scope, receive, send)

    async def _api(self, scope: Scope, receive: Receive, send: Send) -> None:
        reply = await self._reply(scope, receive)
        if reply.created is not None and reply.created.callback_url:
            self.callbacks.schedule(reply.created, asgi.server_origin(scope))
        config = self.account.config
        delay = config.response_delay + (config.slow_seconds if reply.fault is Fault.SLOW else 0)
        if delay:
            await self.sleep(delay)
        if reply.fault in RESETS:
            await asgi.drop_connection(send)
        else:
            await send_answer(send, reply.answer)

    async def _reply(self, scope: Scope, receive: Receive) -> Reply:
        route, key = self.account.profile.route(scope["method"], scope["path"])
        try:
            body = await asgi.read_body(receive) if route is Route.CREATE else b""
        except asgi.BodyTooLarge as exc:
            return Reply(self.account.refusal(1200, str(exc)))
        call = ApiCall(
            route,
            asgi.header(scope, b"authorization"),
            asgi.server_origin(scope),
            body,
            key,
            asgi.query_params(scope),
        )
        return self.account.api_call(call, self.clock())

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
        video = padded(stamped(await self.library.mp4(spec), task_id), self.config.video_bytes)
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


async def send_answer(send: Send, answer: Answer) -> None:
    extra = [(name.encode(), value.encode()) for name, value in answer.headers]
    await asgi.send_bytes(send, answer.status, answer.body, answer.content_type.encode(), extra)


def video_headers(start: int, stop: int, size: int, ranged: bool) -> asgi.Headers:
    headers = [
        (b"content-type", b"video/mp4"),
        (b"accept-ranges", b"bytes"),
        (b"content-length", b"%d" % (stop - start)),
    ]
    if ranged:
        headers.append((b"content-range", b"bytes %d-%d/%d" % (start, stop - 1, size)))
    return headers
