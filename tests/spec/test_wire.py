"""The download and API clients' connections are made by wire.py's backend on the pool httpx builds:
a release of httpx or httpcore that moves the names it reaches for fails here, not silently."""

from __future__ import annotations

import httpx

from batchgen.providers.auth import BearerKey
from batchgen.providers.transport import Transport
from batchgen.wire import LargeReads, download_client, widen_reads


def test_the_download_clients_pool_reads_through_the_wide_backend():
    client = download_client(httpx.Timeout(5), 3)
    transport = client._transport
    assert isinstance(transport, httpx.AsyncHTTPTransport)
    assert isinstance(transport._pool._network_backend, LargeReads)


def test_widening_twice_wraps_once():
    transport = httpx.AsyncHTTPTransport()
    assert widen_reads(transport) and widen_reads(transport)
    backend = transport._pool._network_backend
    assert isinstance(backend, LargeReads) and not isinstance(backend.backend, LargeReads)


def test_a_transport_without_that_pool_is_left_as_it_is():
    assert widen_reads(httpx.MockTransport(lambda request: httpx.Response(200))) is False


def test_the_api_clients_pool_reads_through_the_wide_backend():
    client = Transport("http://127.0.0.1:9", BearerKey("sk-test"), "sk-t…")._http
    transport = client._transport
    assert isinstance(transport, httpx.AsyncHTTPTransport)
    assert isinstance(transport._pool._network_backend, LargeReads)
