"""Status-change callbacks (kling-api.md §11, §17 E9, E22, E25). When a create carries
`callback_url`, the task's flat body is POSTed there each time its status changes (submitted at
creation, processing, then succeed or failed), at the moment it changes: timers on the
server's event loop, whether or not anyone queries the task.

Only loopback hosts are contacted, through no proxy and following no redirect; a callback to
any other host is counted as skipped. With `callback_secret`, every POST is signed
Standard-Webhooks style (`webhook-id`, `webhook-timestamp`, `webhook-signature`). A receiver
that fails, hangs or refuses is counted and never breaks the simulator. A task's callbacks are
sent one after another, so a receiver gets them in order.

Counters: callbacks_sent (answered 2xx), callbacks_failed (any other answer, or none),
callbacks_dropped (`callback_drop_rate`), callbacks_skipped (not a loopback URL).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import random
import ssl
from collections.abc import Callable
from typing import Any

import httpx

from batchgen.simulator.account import Account
from batchgen.simulator.faults import Faults
from batchgen.simulator.library import is_loopback_url, pinned_to_ipv4
from batchgen.simulator.tasks import Task

CALLBACK_TIMEOUT = 5.0
COUNTERS = ("callbacks_sent", "callbacks_failed", "callbacks_dropped", "callbacks_skipped")


def signature_headers(secret: str, message_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """Standard-Webhooks headers: `v1,` + base64 HMAC-SHA256(secret, "{id}.{timestamp}.{body}")."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).digest()
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": "v1," + base64.b64encode(digest).decode(),
    }


class CallbackSender:
    """Schedules and sends the callbacks of the tasks an account creates.

    Use from the event loop's thread; `counts` may be read from any thread.
    """

    def __init__(self, account: Account, clock: Callable[[], float]) -> None:
        self.account = account
        self.clock = clock
        self.counts = dict.fromkeys(COUNTERS, 0)
        self._faults = Faults(random.Random(f"{account.config.seed}/callbacks"))
        self._last: dict[str, asyncio.Future[None]] = {}  # each task's latest callback
        self._tls: ssl.SSLContext | None = None

    def schedule(self, task: Task, origin: str) -> None:
        """Set one timer per status change of `task`, `callback_delay` after the change."""
        loop = asyncio.get_running_loop()
        now = self.clock()
        for at in task.changes():
            delay = max(0.0, at - now) + self.account.config.callback_delay
            loop.call_later(delay, self._fire, task, at, origin)

    def _fire(self, task: Task, at: float, origin: str) -> None:
        url = task.callback_url or ""
        if not is_loopback_url(url):
            self.counts["callbacks_skipped"] += 1
        elif self._faults.drops_callback(self.account.config):
            self.counts["callbacks_dropped"] += 1
        else:
            self._queue(task.task_id, pinned_to_ipv4(url), at, origin)

    def _queue(self, task_id: str, url: str, at: float, origin: str) -> None:
        """Send after the task's previous callback is done, so they arrive in order."""
        body = self.account.callback_body(task_id, at, origin)
        message_id = f"msg_{task_id}_{body['task_status']}"
        previous = self._last.get(task_id)
        sending = asyncio.ensure_future(self._send(url, message_id, body, previous))
        self._last[task_id] = sending
        sending.add_done_callback(lambda done: self._forget(task_id, done))

    def _forget(self, task_id: str, sending: asyncio.Future[None]) -> None:
        if self._last.get(task_id) is sending:
            del self._last[task_id]

    async def _send(
        self,
        url: str,
        message_id: str,
        body: dict[str, Any],
        after: asyncio.Future[None] | None,
    ) -> None:
        if after is not None:
            await asyncio.wait([after])
        data = json.dumps(body, separators=(",", ":")).encode()
        headers = {"content-type": "application/json"}
        secret = self.account.config.callback_secret
        if secret is not None:
            headers |= signature_headers(secret, message_id, int(self.clock()), data)
        try:
            async with httpx.AsyncClient(
                trust_env=False,
                follow_redirects=False,
                timeout=CALLBACK_TIMEOUT,
                verify=self._tls_context(),
            ) as client:
                response = await client.post(url, content=data, headers=headers)
            delivered = response.is_success
        except httpx.HTTPError:
            delivered = False
        self.counts["callbacks_sent" if delivered else "callbacks_failed"] += 1

    def _tls_context(self) -> ssl.SSLContext:
        """One TLS context for every callback (making one costs milliseconds)."""
        if self._tls is None:
            self._tls = ssl.create_default_context()
        return self._tls
