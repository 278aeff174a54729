"""Video download links: signed, optionally expiring URLs, and the Range header. Pure.

A link is `/_sim/videos/{task_id}.mp4?expires={unix ms, 0 = never}&sig={hmac}`. An expired
link answers 403, 404 or 410 (fixed per link, chosen by its signature) like a CDN would.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from enum import Enum

VIDEO_PREFIX = "/_sim/videos/"
EXPIRED_STATUSES = (403, 404, 410)


class LinkState(Enum):
    VALID = "valid"
    EXPIRED = "expired"
    FORGED = "forged"


class RangeNotSatisfiable(ValueError):
    """The Range header asks for bytes the file does not have."""


def video_url(origin: str, task_id: str, expires_ms: int, key: bytes) -> str:
    """The absolute URL of a task's video; `expires_ms` 0 means it never expires."""
    sig = _signature(task_id, expires_ms, key)
    return f"{origin}{VIDEO_PREFIX}{task_id}.mp4?expires={expires_ms}&sig={sig}"


def task_id_of(path: str) -> str | None:
    """The task id in a video path, or None if the path is not one."""
    name = path.removeprefix(VIDEO_PREFIX)
    if name == path or not name.endswith(".mp4"):
        return None
    return name.removesuffix(".mp4")


def check_link(task_id: str, query: Mapping[str, str], now_ms: int, key: bytes) -> LinkState:
    """Whether the link's signature holds and, if so, whether it has expired at `now_ms`."""
    expires = query.get("expires", "")
    if not expires.isdigit():
        return LinkState.FORGED
    expected = _signature(task_id, int(expires), key)
    if not hmac.compare_digest(expected, query.get("sig", "")):
        return LinkState.FORGED
    if int(expires) and now_ms > int(expires):
        return LinkState.EXPIRED
    return LinkState.VALID


def expired_status(query: Mapping[str, str]) -> int:
    """403, 404 or 410: the same for the same link."""
    digest = hashlib.sha256(query.get("sig", "").encode()).digest()
    return EXPIRED_STATUSES[digest[0] % len(EXPIRED_STATUSES)]


def byte_range(header: str, size: int) -> tuple[int, int] | None:
    """(start, stop) asked for by a single `bytes=` range, or None for the whole file
    (no header, or one the server may ignore). Raises RangeNotSatisfiable when the range
    lies past the end of the file."""
    unit, _, spec = header.strip().partition("=")
    first, dash, last = spec.partition("-")
    if unit != "bytes" or not dash or not (first + last).isdigit():
        return None
    if not first:
        if int(last) == 0:
            raise RangeNotSatisfiable(f"bytes */{size}")
        return max(0, size - int(last)), size
    start = int(first)
    if last and int(last) < start:
        return None
    if start >= size:
        raise RangeNotSatisfiable(f"bytes */{size}")
    return start, min(size, int(last) + 1) if last else size


def _signature(task_id: str, expires_ms: int, key: bytes) -> str:
    message = f"{task_id}:{expires_ms}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()[:32]
