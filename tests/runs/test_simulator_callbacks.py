"""Status-change callbacks (kling-api.md §11, §17 E9, E22, E25): posted by the simulator's
own timers to a loopback receiver, signed when asked, never sent off the machine."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest

from batchgen.simulator import running_app
from batchgen.simulator.asgi import Receive, Scope, Send, read_body, send_bytes
from tests.runs.test_simulator import BAD_IMAGE, api, wait_for

CALLBACK_FIELDS = {
    "task_id",
    "task_status",
    "task_status_msg",
    "created_at",
    "updated_at",
    "task_info",
    "task_result",
}


@dataclass
class Received:
    """One POST the receiver got."""

    headers: dict[str, str]
    body: bytes
    at: float

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """A tiny ASGI app that records every request and answers `status`."""

    status: int = 200
    got: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = await read_body(receive)
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        with self.lock:
            self.got.append(Received(headers, body, time.time()))
        await send_bytes(send, self.status, b"ok", b"text/plain")

    def statuses(self) -> list[str]:
        with self.lock:
            return [r.json["task_status"] for r in self.got]


@contextmanager
def receiver(status: int = 200) -> Iterator[tuple[Receiver, str]]:
    """A receiver on a free loopback port, and its callback URL."""
    app = Receiver(status)
    with running_app(app) as base_url:
        yield app, base_url + "/hook"


@pytest.mark.parametrize("profile", ["cometapi", "kling"])
def test_every_status_change_is_posted_when_it_happens(profile: str) -> None:
    """submitted, processing and succeed each reach the callback URL, with no one polling, as
    the flat legacy body (E25)."""
    with receiver() as (hook, url), api(profile=profile, latency=(0.3, 0.3)) as a:
        task_id = a.task_id(callback_url=url, external_task_id="bg-cb")
        wait_for(lambda: a.stats()["callbacks_sent"] == 3, "three callbacks delivered")
        stats = a.stats()
    assert hook.statuses() == ["submitted", "processing", "succeed"]
    bodies = [r.json for r in hook.got]
    for body in bodies:
        assert body["task_id"] == task_id and set(body) >= CALLBACK_FIELDS
        assert hook.got[0].headers["content-type"] == "application/json"
    assert "final_unit_deduction" in bodies[2] and "final_unit_deduction" not in bodies[0]
    (video,) = bodies[2]["task_result"]["videos"]
    assert set(video) == {"id", "url", "duration"}
    assert bodies[0]["updated_at"] < bodies[1]["updated_at"] < bodies[2]["updated_at"]
    echoed = {"external_task_id": "bg-cb"} if profile == "kling" else {}
    assert bodies[2]["task_info"] == echoed
    assert stats["queries"] == 0 and stats["callbacks_sent"] == 3


def test_a_bad_image_posts_submitted_then_failed() -> None:
    """A task whose image is unusable posts `submitted`, then `failed` with E17's message."""
    with receiver() as (hook, url), api() as a:
        a.create(callback_url=url, image=BAD_IMAGE)
        wait_for(lambda: len(hook.statuses()) == 2, "two callbacks")
    assert hook.statuses() == ["submitted", "failed"]
    assert hook.got[1].json["task_status_msg"] == "Image pixel is invalid"


def test_a_signed_callback_verifies_with_the_secret() -> None:
    """With `callback_secret`, webhook-signature is v1,base64(HMAC-SHA256(secret,
    "{webhook-id}.{webhook-timestamp}.{body}"))."""
    with receiver() as (hook, url), api(callback_secret="whsec-test", latency=(0.1, 0.1)) as a:
        a.create(callback_url=url)
        wait_for(lambda: len(hook.statuses()) == 3, "three callbacks")
    ids = set()
    for received in hook.got:
        headers = received.headers
        signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + received.body
        digest = hmac.new(b"whsec-test", signed, hashlib.sha256).digest()
        assert headers["webhook-signature"] == "v1," + base64.b64encode(digest).decode()
        assert abs(int(headers["webhook-timestamp"]) - time.time()) < 300
        ids.add(headers["webhook-id"])
    assert len(ids) == 3


def test_unsigned_callbacks_carry_no_signature() -> None:
    """Without `callback_secret` no webhook-* headers are sent."""
    with receiver() as (hook, url), api() as a:
        a.create(callback_url=url)
        wait_for(lambda: len(hook.statuses()) == 3, "three callbacks")
    assert not any(k.startswith("webhook-") for r in hook.got for k in r.headers)


def test_a_callback_to_another_host_is_never_sent() -> None:
    """A non-loopback callback_url is skipped at every status change, never contacted."""
    with api(latency=(0.05, 0.05)) as a:
        a.create(callback_url="http://192.0.2.1:9/hook")
        a.create(callback_url="https://example.com/hook")
        wait_for(lambda: a.stats()["callbacks_skipped"] == 6, "six skipped callbacks")
        time.sleep(0.05)
        stats = a.stats()
    assert (stats["callbacks_sent"], stats["callbacks_failed"], stats["callbacks_dropped"]) == (
        0, 0, 0,
    )  # fmt: skip


def test_dropped_callbacks_are_counted_and_not_sent() -> None:
    """With `callback_drop_rate=1` nothing reaches the receiver and each drop is counted."""
    with receiver() as (hook, url), api(callback_drop_rate=1.0) as a:
        a.create(callback_url=url)
        wait_for(lambda: a.stats()["callbacks_dropped"] == 3, "three dropped callbacks")
    assert hook.got == []


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_failing_or_absent_receiver_is_counted_and_harmless() -> None:
    """A receiver answering 500, or no receiver at all, counts callbacks_failed; the
    simulator keeps answering."""
    with receiver(status=500) as (hook, url), api() as a:
        a.create(callback_url=url)
        a.create(callback_url=f"http://127.0.0.1:{free_port()}/hook")
        wait_for(lambda: a.stats()["callbacks_failed"] == 6, "six failed callbacks")
        still = a.create()
    assert len(hook.got) == 3 and still.status_code == 200


def test_callback_delay_holds_each_callback_back() -> None:
    """With `callback_delay` the first callback arrives no sooner than that after the create."""
    with receiver() as (hook, url), api(callback_delay=0.3) as a:
        sent = time.time()
        a.create(callback_url=url)
        wait_for(lambda: len(hook.statuses()) == 3, "three callbacks")
    assert min(r.at for r in hook.got) - sent >= 0.3
