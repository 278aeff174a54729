"""The one place where batchgen's API requests meet the network.

`Transport.call` sends a request with the provider's credentials, reads the answer whole, and
either returns its JSON document or raises the ProviderError it means (answers.py). httpx's
errors are translated here, once: a connection that could not be made means nothing was sent
(`ConnectFailed`); any other network failure on a create means its outcome is unknown
(`OutcomeUnknown`), on anything else that it may be tried again (`RetryableError`). Every
message leaving here has the credentials redacted, whatever the provider echoed.

A create, once it leaves, is never abandoned: a run cancelled meanwhile (a second Ctrl-C)
waits for its answer, at most the request timeout, so that the task it may have made is
recorded rather than left unknown.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import anyio
import httpx

from batchgen.errors import ConnectFailed, OutcomeUnknown, ProviderError, RetryableError
from batchgen.providers.answers import Answer, RequestKind, read_answer
from batchgen.providers.auth import Auth
from batchgen.wire import pooled_transport

REDACTED = "***"
KEEPALIVE_SECONDS = 5.0  # below any server's idle timeout, so a create never meets a dead socket


class RequestLimiter(Protocol):
    async def acquire(self) -> None: ...


class Observer(Protocol):
    """Told of every exchange: whether an answer arrived, and if not, why."""

    def __call__(self, answered: bool, reason: str) -> None: ...


class Transport:
    """Sends API requests to `base_url` with `auth`; counts them in `calls`."""

    def __init__(
        self,
        base_url: str,
        auth: Auth,
        key_hint: str,
        *,
        timeout: float = 30.0,
        max_connections: int = 16,
        limiter: RequestLimiter | None = None,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.auth = auth
        self.key_hint = key_hint
        self.calls = 0
        self.observer: Observer | None = None
        self._limiter = limiter
        limits = httpx.Limits(
            max_connections=max_connections,
            max_keepalive_connections=max_connections,
            keepalive_expiry=KEEPALIVE_SECONDS,
        )
        self._http = http or httpx.AsyncClient(
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            transport=pooled_transport(limits),
            trust_env=False,
        )
        # Requests wait here rather than in httpcore's pool, whose queue costs CPU per waiter.
        self._connections = anyio.Semaphore(max_connections)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def call(
        self,
        kind: RequestKind,
        method: str,
        path: str,
        *,
        json_body: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> Any:
        """The JSON document of a successful answer; raises ProviderError otherwise."""
        try:
            answer = await self._send(kind, method, path, json_body, params)
            return read_answer(kind, answer, self.key_hint)
        except ProviderError as error:
            raise self.redacted(error) from None

    def redacted(self, error: ProviderError) -> ProviderError:
        """`error` with every credential in its message replaced by ***."""
        message = self.redact(str(error))
        return error if message == str(error) else error.with_message(message)

    def redact(self, text: str) -> str:
        for secret in self.auth.secrets:
            text = text.replace(secret, REDACTED)
        return text

    async def _send(
        self,
        kind: RequestKind,
        method: str,
        path: str,
        json_body: Mapping[str, Any] | None,
        params: Mapping[str, Any] | None,
    ) -> Answer:
        if self._limiter is not None:
            await self._limiter.acquire()
        self.calls += 1
        headers = {**self.auth.headers(), "Accept": "application/json"}
        try:
            with anyio.CancelScope(shield=kind == "create"):
                async with self._connections:
                    response = await self._http.request(
                        method, self.base_url + path, json=json_body, params=params, headers=headers
                    )
        except httpx.InvalidURL as exc:
            raise ConnectFailed(f"the request's URL cannot be sent ({exc})") from None
        except httpx.HTTPError as exc:
            error = network_error(kind, exc)
            if self.observer is not None and isinstance(error, ConnectFailed):
                self.observer(False, str(error))
            raise error from None
        if self.observer is not None:
            self.observer(True, "")
        return Answer(
            response.status_code,
            response.content,
            response.headers.get("content-type", ""),
            response.headers.get("retry-after"),
            response.headers.get("location"),
        )


def network_error(kind: RequestKind, exc: httpx.HTTPError) -> ProviderError:
    """What a failed exchange means: nothing sent, or (for a create) an unknown outcome."""
    name = type(exc).__name__
    detail = str(exc).strip()
    message = f"network error ({name}{': ' + detail if detail else ''})"
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.UnsupportedProtocol):
        return ConnectFailed(message)
    if isinstance(exc, httpx.PoolTimeout):
        return RetryableError(message)
    if kind == "create":
        return OutcomeUnknown(message)
    return RetryableError(message)
