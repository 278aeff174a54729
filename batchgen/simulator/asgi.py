"""ASGI plumbing: reading requests, sending JSON, text and streamed bodies, and breaking a
connection off mid-answer.

A broken connection is made by starting an answer with a Content-Length, sending part of the
body and returning without finishing it: uvicorn then closes the socket, and an HTTP client
sees the response end early (httpx raises RemoteProtocolError) rather than a clean error.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any
from urllib.parse import parse_qsl

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

BODY_LIMIT = 32 * 1024 * 1024  # a 10 MB image is about 13.4 MB of base64


class BodyTooLarge(Exception):
    """The request body is over BODY_LIMIT."""


async def read_body(receive: Receive, limit: int = BODY_LIMIT) -> bytes:
    """The whole request body. Raises BodyTooLarge past `limit` bytes."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(f"request body over {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


def header(scope: Scope, name: bytes) -> str:
    """The first value of the header `name` (lower case), or ""."""
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return ""


def query_params(scope: Scope) -> dict[str, str]:
    """The query string as a dict; the first value wins."""
    pairs = parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True)
    params: dict[str, str] = {}
    for key, value in pairs:
        params.setdefault(key, value)
    return params


def server_origin(scope: Scope) -> str:
    """ "http://host:port" of the socket this request came in on."""
    host, port = scope.get("server") or ("127.0.0.1", 80)
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


async def send_json(send: Send, status: int, value: Any) -> None:
    data = json.dumps(value, separators=(",", ":")).encode()
    await send_bytes(send, status, data, b"application/json")


async def send_bytes(
    send: Send, status: int, data: bytes, content_type: bytes, extra: Headers | None = None
) -> None:
    headers = [(b"content-type", content_type), (b"content-length", b"%d" % len(data))]
    await send(
        {"type": "http.response.start", "status": status, "headers": headers + (extra or [])}
    )
    await send({"type": "http.response.body", "body": data})


async def send_stream(
    send: Send, status: int, headers: Headers, chunks: Iterable[bytes], complete: bool
) -> None:
    """Send `chunks` as the body; with `complete` False, break the connection after them."""
    await send({"type": "http.response.start", "status": status, "headers": headers})
    for chunk in chunks:
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
    if complete:
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def drop_connection(send: Send) -> None:
    """Start a JSON answer and break it off after a few bytes."""
    headers = [(b"content-type", b"application/json"), (b"content-length", b"4096")]
    await send_stream(send, 200, headers, [b'{"code":'], complete=False)


async def lifespan(receive: Receive, send: Send) -> None:
    """Answer the lifespan protocol (nothing to set up or tear down)."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
