"""The clients' connections: httpx clients whose connections take a video's bytes off the
socket in large pieces and ask cheaply whether an idle connection was closed.

httpcore asks its socket for at most 64 KiB a read. A 100 MB video is then some 1,600 trips
through the event loop, httpcore, h11 and httpx, each costing far more than moving its bytes:
the event loop's thread, not the network, set how fast a video came over a fast link. Here each
read asks for up to READ_BYTES and takes what the socket has (uvloop hands over up to 256 KiB
at a time): the same bytes in a quarter of the trips or fewer. Only reads change; connecting,
TLS, proxies, redirects, timeouts and errors stay httpx's and httpcore's own.

Before every request, and after every answer, httpcore's pool asks each idle connection
whether its server closed it (`is_readable`). anyio answers that by building the stream's whole
table of attributes, for one of them, the socket: at zero latency that was an eighth of a run's
CPU. Here the socket is taken once per connection and polled by httpcore's own test.

Both are done by wrapping the connection pool's network backend, which httpx's transport does
not let a caller choose: `pooled_transport` sets it on the pool the transport made
(`_pool._network_backend`, private to httpx and httpcore; so is the test of a socket,
`httpcore._utils.is_socket_readable`). Where a later release moves the pool's backend, the
clients keep httpcore's own, and tests/spec/test_wire.py fails.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any

import httpcore
import httpx
from httpcore._utils import is_socket_readable

READ_BYTES = 1 << 20  # the most one read asks of a socket


def download_client(timeout: httpx.Timeout, connections: int) -> httpx.AsyncClient:
    """The client videos are downloaded with: follows redirects, ignores proxy and credential
    settings of the environment (no key is ever sent with it), and reads in large pieces."""
    transport = pooled_transport(httpx.Limits(max_connections=connections))
    return httpx.AsyncClient(
        timeout=timeout, follow_redirects=True, transport=transport, trust_env=False
    )


def pooled_transport(limits: httpx.Limits) -> httpx.AsyncHTTPTransport:
    """A transport with `limits`, ignoring the environment's proxy settings, its connections
    made by `LargeReads`."""
    transport = httpx.AsyncHTTPTransport(limits=limits, trust_env=False)
    widen_reads(transport)
    return transport


def widen_reads(transport: httpx.AsyncHTTPTransport) -> bool:
    """Have `transport`'s connections read up to READ_BYTES at a time; False (nothing changed)
    where this httpx or httpcore keeps its pool's backend elsewhere."""
    pool = getattr(transport, "_pool", None)
    backend = getattr(pool, "_network_backend", None)
    if not isinstance(backend, httpcore.AsyncNetworkBackend):
        return False
    if not isinstance(backend, LargeReads):
        pool._network_backend = LargeReads(backend)  # type: ignore[union-attr]
    return True


class LargeReads(httpcore.AsyncNetworkBackend):
    """A network backend whose streams read up to READ_BYTES where httpcore asks for less."""

    def __init__(self, backend: httpcore.AsyncNetworkBackend) -> None:
        self.backend = backend

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        stream = await self.backend.connect_tcp(
            host, port, timeout=timeout, local_address=local_address, socket_options=socket_options
        )
        return LargeReadStream(stream)

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        stream = await self.backend.connect_unix_socket(
            path, timeout=timeout, socket_options=socket_options
        )
        return LargeReadStream(stream)

    async def sleep(self, seconds: float) -> None:
        await self.backend.sleep(seconds)


class LargeReadStream(httpcore.AsyncNetworkStream):
    """A connection's stream, each read asking for at least READ_BYTES; TLS keeps it so."""

    def __init__(self, stream: httpcore.AsyncNetworkStream) -> None:
        self.stream = stream

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return await self.stream.read(max(max_bytes, READ_BYTES), timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self.stream.write(buffer, timeout)

    async def aclose(self) -> None:
        await self.stream.aclose()

    async def start_tls(
        self,
        ssl_context: Any,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        upgraded = await self.stream.start_tls(ssl_context, server_hostname, timeout)
        return LargeReadStream(upgraded)

    def get_extra_info(self, info: str) -> Any:
        if info != "is_readable":
            return self.stream.get_extra_info(info)
        return is_socket_readable(self._socket)

    @functools.cached_property
    def _socket(self) -> Any:  # a socket.socket, or None
        return self.stream.get_extra_info("socket")  # the same for the connection's life
