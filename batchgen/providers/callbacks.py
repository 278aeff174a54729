"""Provider callbacks, checked: what a POST to the run's callback URL says, and whether it is
signed by the provider. Pure.

Kling's legacy callback is the task object itself (kling-api.md §11, §17 E25); one source
wraps it in `{code, message, data}` (§15.6): both are read. Where the provider signs its
callbacks (§17 E22: Standard Webhooks headers `webhook-id`, `webhook-timestamp`,
`webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">`), a secret given to the run
makes a missing or wrong signature a refusal. An unsigned callback is a hint, never the truth:
the run asks the provider about the task before acting on it; a verified one saying the task
succeeded with its video is the provider's own word (runner/receiver.py).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Mapping

from batchgen.errors import CallbackRefused
from batchgen.providers import TaskInfo
from batchgen.providers.task import task_in

MAX_BODY = 1 << 20
SIGNATURE_TOLERANCE = 300.0  # seconds between the signature's timestamp and now


def parse_callback(body: bytes) -> TaskInfo:
    """The task a callback body describes; CallbackRefused if it describes none."""
    if len(body) > MAX_BODY:
        raise CallbackRefused("body too large", 413)
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        raise CallbackRefused("body is not JSON") from None
    task = task_in(document)
    if task is None or not task.status:
        raise CallbackRefused("body holds no task id and status")
    return task


def verify_signature(secret: str, headers: Mapping[str, str], body: bytes, now: float) -> None:
    """Check a Standard-Webhooks signature with `secret` (a `whsec_` base64 secret, or the
    secret's bytes as given); CallbackRefused (401) unless one of the signatures matches."""
    msg_id = headers.get("webhook-id", "")
    stamp = headers.get("webhook-timestamp", "")
    signatures = headers.get("webhook-signature", "")
    if not (msg_id and stamp and signatures):
        raise CallbackRefused("unsigned", 401)
    try:
        when = float(stamp)
    except ValueError:
        raise CallbackRefused("bad signature timestamp", 401) from None
    if abs(now - when) > SIGNATURE_TOLERANCE:
        raise CallbackRefused("signature timestamp too old or too new", 401)
    signed = f"{msg_id}.{stamp}.".encode() + body
    expected = base64.b64encode(hmac.new(_key(secret), signed, hashlib.sha256).digest()).decode()
    for item in signatures.split():
        version, _, value = item.partition(",")
        if version == "v1" and hmac.compare_digest(value, expected):
            return
    raise CallbackRefused("bad signature", 401)


def _key(secret: str) -> bytes:
    if secret.startswith("whsec_"):
        try:
            return base64.b64decode(secret.removeprefix("whsec_"), validate=True)
        except ValueError:
            pass
    return secret.encode()
