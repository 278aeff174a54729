"""The clients' connections (wire.py) over real loopback sockets: an idle connection its server
closed is seen closed, one still open is not, as httpcore's own backend sees them."""

from __future__ import annotations

import socket

import anyio
import httpcore

from batchgen.wire import LargeReads


async def _connected(backend: httpcore.AsyncNetworkBackend) -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        stream = await backend.connect_tcp("127.0.0.1", port)
        accepted, _ = server.accept()
        try:
            assert stream.get_extra_info("is_readable") is False  # open, nothing sent
            assert stream.get_extra_info("is_readable") is False  # asked again
            accepted.close()  # the server ends the connection
            await anyio.sleep(0.05)
            assert stream.get_extra_info("is_readable") is True
        finally:
            await stream.aclose()


def test_an_idle_connection_its_server_closed_is_seen_closed():
    for backend in (httpcore.AnyIOBackend(), LargeReads(httpcore.AnyIOBackend())):
        anyio.run(_connected, backend)
