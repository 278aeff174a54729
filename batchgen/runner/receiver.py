"""The callback receiver: a small HTTP/1.1 server on the run's own event loop (anyio + h11),
listening only when `--listen` asks, for the provider's POSTs to `--callback-url`'s path.

A callback names a task; one the run follows (by task id, or by external id) is polled at
once, so its end is acted on in the time of one query rather than at the next scheduled poll
(one the run already finished is acknowledged).
Anything else (another path, a body that is not a task, an unknown task, a bad signature) is
refused with a 4xx and counted; nothing a callback says is believed without the provider.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections import Counter

import anyio
import h11
from anyio.abc import SocketStream, TaskGroup
from anyio.streams.stapled import MultiListener

from batchgen.errors import CallbackRefused, UsageError
from batchgen.providers.callbacks import parse_callback, verify_signature
from batchgen.runner.config import Listen
from batchgen.runner.context import RunContext, Tracked

REQUEST_TIMEOUT = 10.0
READ_SIZE = 65536
MAX_REQUEST = 1 << 20


class CallbackReceiver:
    def __init__(self, ctx: RunContext, listen: Listen) -> None:
        self.ctx = ctx
        self.listen = listen
        self.counts: Counter[str] = Counter()
        self._listener: MultiListener[SocketStream]

    async def bind(self) -> None:
        """Take the port now; UsageError naming it if it cannot be taken."""
        try:
            self._listener = await anyio.create_tcp_listener(
                local_host=self.listen.host, local_port=self.listen.port
            )
        except OSError as exc:
            where = f"{self.listen.host}:{self.listen.port}"
            raise UsageError(f"cannot listen for callbacks on {where}: {exc.strerror}") from None

    async def serve(self, group: TaskGroup) -> None:
        """Answer callbacks until `group` is cancelled (the end of the run)."""
        async with self._listener:
            await self._listener.serve(self._connection, group)

    async def _connection(self, stream: SocketStream) -> None:
        async with stream:
            with anyio.move_on_after(REQUEST_TIMEOUT):
                await self._exchange(stream, h11.Connection(h11.SERVER))

    async def _exchange(self, stream: SocketStream, conn: h11.Connection) -> None:
        request, body = None, bytearray()
        while True:
            event = conn.next_event()
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
            tracked.next_poll = anyio.current_time()
            self.ctx.wake_poll.set()
        return 200, "ok"

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
        parts = [
            conn.send(h11.Response(status_code=status, headers=headers)),
            conn.send(h11.Data(data=payload)),
            conn.send(h11.EndOfMessage()),
        ]
        with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
            await stream.send(b"".join(part for part in parts if part))
