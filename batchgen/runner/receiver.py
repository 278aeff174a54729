"""The callback receiver: a small HTTP/1.1 server on the run's own event loop (anyio + h11),
listening only when `--listen` asks, for the provider's POSTs to `--callback-url`'s path.

A callback that says a task the run follows (by task id, or by external id) has ended is acted
on at once, in a task of its own: when it is signed (a secret is set, so every callback the
receiver accepts was verified) and says the task succeeded with a video URL, the job is done
now, as a query's answer would make it (its slot freed, its download queued); anything else
(unsigned, failed, no video) is confirmed by a query sent at once, and the answer acted on.
An unsigned callback is never believed alone (kling-api.md §11, §18.2 (8)): it only moves a
query forward. One about a task the run already finished is acknowledged.
Anything else (another path, a body that is not a task, an unknown task, a bad signature) is
refused with a 4xx and counted.

Nothing a network sends can end the run: a request h11 cannot parse (a TLS hello, no Host, a
bad Content-Length or chunk, a client gone mid-body) is answered 400 where it can be, else
dropped, and counted. Connections are limited in number (past `MAX_CONNECTIONS` the oldest is
cut, so idle ones cannot lock callbacks out) and in time (`REQUEST_TIMEOUT` from the first
byte to the answer); an accept that fails (no file descriptor left) waits and goes on.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections import Counter

import anyio
import h11
from anyio.abc import SocketListener, SocketStream, TaskGroup
from anyio.streams.stapled import MultiListener

from batchgen.errors import CallbackRefused, UsageError
from batchgen.events import Notice
from batchgen.providers import TaskInfo
from batchgen.providers.callbacks import parse_callback, verify_signature
from batchgen.runner.config import Listen
from batchgen.runner.context import RunContext, Tracked
from batchgen.runner.poll import Poller
from batchgen.settings import EVERY_INTERFACE

REQUEST_TIMEOUT = 10.0
READ_SIZE = 65536
MAX_REQUEST = 1 << 20
MAX_CONNECTIONS = 64
ACCEPT_PAUSE = 0.1  # after an accept failed (too many open files): try again this much later
DROPPED = (
    h11.ProtocolError,
    anyio.BrokenResourceError,
    anyio.ClosedResourceError,
    anyio.EndOfStream,
    OSError,
    UnicodeError,
)


class CallbackReceiver:
    def __init__(self, ctx: RunContext, listen: Listen, poller: Poller) -> None:
        self.ctx = ctx
        self.listen = listen
        self.poller = poller
        self._group: TaskGroup | None = None  # where the ends callbacks report are acted on
        self.counts: Counter[str] = Counter()
        self._listener: MultiListener[SocketStream]
        self._open: dict[int, anyio.CancelScope] = {}  # connections by arrival, oldest first
        self._arrivals = 0

    async def bind(self) -> None:
        """Take the port now; UsageError naming it if it cannot be taken."""
        try:
            self._listener = await anyio.create_tcp_listener(
                local_host=self.listen.host, local_port=self.listen.port
            )
        except OSError as exc:
            where = f"{self.listen.host}:{self.listen.port}"
            raise UsageError(f"cannot listen for callbacks on {where}: {exc.strerror}") from None
        if self.listen.host in EVERY_INTERFACE:
            said = f"listening for callbacks on every interface, port {self.listen.port}"
            self.ctx.emit(Notice(f"{said}, as --listen asks", "warning"))

    async def serve(self, group: TaskGroup) -> None:
        """Answer callbacks until `group` is cancelled (the end of the run)."""
        self._group = group
        async with self._listener, anyio.create_task_group() as accepting:
            for listener in self._listener.listeners:
                assert isinstance(listener, SocketListener)
                accepting.start_soon(self._accept, listener, group)

    async def _accept(self, listener: SocketListener, group: TaskGroup) -> None:
        while True:
            try:
                stream = await listener.accept()
            except OSError:
                await anyio.sleep(ACCEPT_PAUSE)
                continue
            group.start_soon(self._connection, stream)

    async def _connection(self, stream: SocketStream) -> None:
        """One request, within REQUEST_TIMEOUT, at most MAX_CONNECTIONS at once (the oldest
        is cut for a new one); whatever the client sends or does, nothing is raised."""
        arrival = self._arrivals = self._arrivals + 1
        if len(self._open) >= MAX_CONNECTIONS:
            oldest = next(iter(self._open))
            self._open.pop(oldest).cancel()
            self.counts["cut: too many connections"] += 1
        with anyio.CancelScope() as scope:
            self._open[arrival] = scope
            scope.deadline = anyio.current_time() + REQUEST_TIMEOUT
            try:
                async with stream:
                    await self._exchange(stream, h11.Connection(h11.SERVER))
            except DROPPED:
                self.counts["dropped: broken connection"] += 1
        if self._open.pop(arrival, None) is not None and scope.cancelled_caught:
            self.counts["cut: too slow"] += 1  # (one cut for another was counted above)

    async def _exchange(self, stream: SocketStream, conn: h11.Connection) -> None:
        request, body = None, bytearray()
        while True:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as error:
                self.counts["refused: malformed request"] += 1
                await self._reply(stream, conn, error.error_status_hint, "malformed request")
                return
            if event is h11.NEED_DATA:
                try:
                    conn.receive_data(await stream.receive(READ_SIZE))
                except (anyio.EndOfStream, anyio.BrokenResourceError):
                    conn.receive_data(b"")
                continue
            if isinstance(event, h11.Request):
                request = event
            elif isinstance(event, h11.Data):
                body += event.data
                if len(body) > MAX_REQUEST:
                    await self._reply(stream, conn, 413, "too large")
                    return
            elif isinstance(event, h11.EndOfMessage) and request is not None:
                status, text = self._handle(request, bytes(body))
                await self._reply(stream, conn, status, text)
                return
            else:
                return

    def _handle(self, request: h11.Request, body: bytes) -> tuple[int, str]:
        self.counts["received"] += 1
        try:
            path = request.target.split(b"?")[0].decode("latin-1")
            if request.method != b"POST" or path != self.listen.path:
                raise CallbackRefused("not the callback path", 404)
            headers = {k.decode().lower(): v.decode("latin-1") for k, v in request.headers}
            if self.listen.secret is not None:
                verify_signature(self.listen.secret, headers, body, time.time())
            task = parse_callback(body)
            tracked = self._tracked(task.task_id, task.external_task_id)
            if tracked is None and self.ctx.store.job_of_task(task.task_id) is None:
                raise CallbackRefused(f"no task {task.task_id} in this run", 404)
        except CallbackRefused as refused:
            self.counts[f"refused: {refused}"] += 1
            return refused.status, str(refused)
        self.counts["accepted"] += 1
        if tracked is not None and task.terminal:
            self._ended(tracked, task)
        return 200, "ok"

    def _ended(self, tracked: Tracked, task: TaskInfo) -> None:
        """Act on a followed task's end: a signed success with its video at once, anything
        else once a query sent now confirms it."""
        if self.listen.secret is not None and task.succeeded and task.video_url:
            self.counts["acted on: signed success"] += 1
            self.poller.succeeded_by_callback(tracked, task)
            return
        assert self._group is not None  # (set by `serve`, which received the callback)
        self.counts["acted on: confirmed by a query"] += 1
        self._group.start_soon(self.poller.confirm, tracked)

    def _tracked(self, task_id: str, external_id: str | None) -> Tracked | None:
        ctx = self.ctx
        job_id = ctx.store.job_of_task(task_id)
        if job_id is None and external_id:
            job = ctx.store.find_by_external_id(external_id)
            job_id = job.job_id if job is not None else None
        tracked = ctx.tracked.get(job_id or "")
        return tracked if tracked is not None and tracked.task_id == task_id else None

    async def _reply(
        self, stream: SocketStream, conn: h11.Connection, status: int, text: str
    ) -> None:
        payload = json.dumps({"status": status, "message": text}).encode()
        headers = [
            ("content-type", "application/json"),
            ("content-length", str(len(payload))),
            ("connection", "close"),
        ]
        try:
            parts = [
                conn.send(h11.Response(status_code=status, headers=headers)),
                conn.send(h11.Data(data=payload)),
                conn.send(h11.EndOfMessage()),
            ]
        except h11.LocalProtocolError:
            return  # the connection cannot carry an answer any more: dropped
        with contextlib.suppress(*DROPPED):
            await stream.send(b"".join(part for part in parts if part))
