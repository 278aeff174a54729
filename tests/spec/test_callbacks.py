"""Callbacks are checked before anything is done with them: shape, task, signature."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest

from batchgen.errors import CallbackRefused
from batchgen.providers.callbacks import parse_callback, verify_signature
from batchgen.settings import listen_address

E25 = {
    "task_id": "867283741759111202",
    "task_status": "succeed",
    "task_status_msg": "",
    "created_at": 1739744384259,
    "updated_at": 1739744621359,
    "final_unit_deduction": "5",
    "task_info": {"external_task_id": "bg-0123456789abcdef0123"},
    "task_result": {
        "videos": [{"id": "v1", "url": "https://cdn.example/v.mp4", "duration": "5.1"}]
    },
}


def sign(secret: bytes, msg_id: str, stamp: str, body: bytes) -> str:
    digest = hmac.new(secret, f"{msg_id}.{stamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def test_the_legacy_callback_body_is_read():
    """E25's flat body gives the task, its external id and its video."""
    task = parse_callback(json.dumps(E25).encode())
    assert task.task_id == "867283741759111202" and task.terminal
    assert task.external_task_id == "bg-0123456789abcdef0123"
    assert task.video_url == "https://cdn.example/v.mp4"


def test_a_wrapped_callback_body_is_read_too():
    """One source wraps the task in {code, message, data} (kling-api.md §15.6)."""
    wrapped = {"code": 0, "message": "SUCCEED", "data": E25}
    assert parse_callback(json.dumps(wrapped).encode()).task_id == E25["task_id"]


@pytest.mark.parametrize(
    "body", [b"not json", b"[]", b'{"task_status": "succeed"}', b'{"task_id": "1"}', b"\xff"]
)
def test_a_body_that_names_no_task_is_refused(body):
    """Malformed bodies are refused with a 4xx, never acted on."""
    with pytest.raises(CallbackRefused) as caught:
        parse_callback(body)
    assert 400 <= caught.value.status < 500


def test_a_signed_callback_verifies_and_a_forged_one_does_not():
    """Standard-Webhooks signatures: the right secret passes, a changed body or secret fails."""
    body = json.dumps(E25).encode()
    headers = {
        "webhook-id": "msg_1",
        "webhook-timestamp": "1000",
        "webhook-signature": sign(b"s3cret", "msg_1", "1000", body),
    }
    verify_signature("s3cret", headers, body, now=1010.0)
    for secret, payload in (("other", body), ("s3cret", body + b" ")):
        with pytest.raises(CallbackRefused) as caught:
            verify_signature(secret, headers, payload, now=1010.0)
        assert caught.value.status == 401


def test_an_old_or_unsigned_callback_is_refused_when_a_secret_is_set():
    """Without signature headers, or signed long ago, a callback is refused."""
    body = b"{}"
    with pytest.raises(CallbackRefused, match="unsigned"):
        verify_signature("s3cret", {}, body, now=0.0)
    headers = {
        "webhook-id": "m",
        "webhook-timestamp": "0",
        "webhook-signature": sign(b"s3cret", "m", "0", body),
    }
    with pytest.raises(CallbackRefused, match="too old"):
        verify_signature("s3cret", headers, body, now=10_000.0)


@pytest.mark.parametrize("text", [":18999", "18999", "[]:18999"])
def test_a_listen_address_without_a_host_is_refused_not_taken_as_every_interface(text):
    """`--listen :18999` names no host: refused, saying how to ask for this machine only or
    for every interface."""
    with pytest.raises(ValueError, match=r"names no host.*127\.0\.0\.1:18999.*0\.0\.0\.0:18999"):
        listen_address(text)


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("127.0.0.1:8787", ("127.0.0.1", 8787)),
        ("0.0.0.0:80", ("0.0.0.0", 80)),
        ("[::]:9", ("::", 9)),
    ],
)
def test_every_interface_is_listened_on_only_when_said(text, address):
    """0.0.0.0 and [::] are taken as written; a host is never filled in."""
    assert listen_address(text) == address
