"""The provider client: CometAPI's relay of Kling image2video. The only module that knows URLs,
response envelopes and error codes; every failure leaves here as a `ProviderError` subclass.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import anyio
import httpx

from batchgen.errors import (
    AccountError,
    DuplicateExternalId,
    JobRejected,
    ProviderError,
    RetryableError,
    TaskNotFound,
    ThrottledError,
)

DEFAULT_BASE_URL = "https://api.cometapi.com"
ROUTE = "/kling/v1/videos/image2video"
LIST_PAGE_MAX = 500

ACCOUNT_CODES = frozenset({1000, 1001, 1002, 1100, 1101, 1102, 1103, 1304})
THROTTLE_CODES = frozenset({1302, 1303})
RETRYABLE_CODES = frozenset({1003, 1004, 5000, 5001, 5002})
NOT_FOUND_CODES = frozenset({1202, 1203})

ACCOUNT_HINTS = {
    1000: "authentication failed: check COMETAPI_KEY / --api-key",
    1001: "no API key was sent: set COMETAPI_KEY or pass --api-key",
    1002: "the API key is not valid: check COMETAPI_KEY / --api-key",
    1100: "the account is in an abnormal state: contact the provider",
    1101: "the account is in arrears: top up the balance",
    1102: "the resource pack is exhausted or expired: buy or renew a pack",
    1103: "this key has no permission for this API or model",
    1304: "the IP whitelist refused this machine: add its address to the whitelist",
}


class RequestLimiter(Protocol):
    async def acquire(self) -> None: ...


@dataclass(frozen=True, slots=True)
class TaskInfo:
    """What the provider says about one task, normalised."""

    task_id: str
    status: str
    external_task_id: str | None = None
    message: str = ""
    video_url: str | None = None
    video_duration: str | None = None
    final_unit_deduction: str | None = None
    created_at: int | None = None
    updated_at: int | None = None

    @property
    def terminal(self) -> bool:
        return self.status in ("succeed", "succeeded", "failed")


def parse_task(data: Mapping[str, Any]) -> TaskInfo:
    """A TaskInfo from a task object (`data` of a query, an item of a list, or a bare body)."""
    info = data.get("task_info") or {}
    videos = (data.get("task_result") or {}).get("videos") or []
    video = videos[0] if videos else {}
    deduction = data.get("final_unit_deduction")
    return TaskInfo(
        task_id=str(data["task_id"]),
        status=str(data.get("task_status", "")),
        external_task_id=info.get("external_task_id") or None,
        message=str(data.get("task_status_msg") or ""),
        video_url=video.get("url") or None,
        video_duration=None if video.get("duration") is None else str(video["duration"]),
        final_unit_deduction=None if deduction is None else str(deduction),
        created_at=_int_or_none(data.get("created_at")),
        updated_at=_int_or_none(data.get("updated_at")),
    )


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def classify(http_status: int, body: Any, *, request_kind: str = "create") -> ProviderError | None:
    """The error an answer means, or None for a success. Decides by the business `code` where
    the body has one (Kling's envelope), by HTTP status otherwise (CometAPI's gateway envelope)."""
    if isinstance(body, Mapping) and isinstance(body.get("error"), Mapping):
        return _classify_gateway(http_status, body["error"], request_kind)
    code = body.get("code") if isinstance(body, Mapping) else None
    message = str(body.get("message", "")) if isinstance(body, Mapping) else ""
    request_id = body.get("request_id") if isinstance(body, Mapping) else None
    if code in (0, "0") and http_status < 400:
        return None
    if code is None:
        return _by_http(http_status, message or f"HTTP {http_status}", None, None, request_kind)
    kind = _kind_of_code(int(code), message, request_kind)
    return kind(
        _account_message(int(code), message),
        code=int(code),
        http_status=http_status,
        request_id=request_id,
    )


def _kind_of_code(code: int, message: str, request_kind: str) -> type[ProviderError]:
    if code in ACCOUNT_CODES:
        return AccountError
    if code in THROTTLE_CODES:
        return ThrottledError
    if code in RETRYABLE_CODES:
        return RetryableError
    if code == 1201 and "external" in message.lower():
        return DuplicateExternalId
    if code in NOT_FOUND_CODES and request_kind != "create":
        return TaskNotFound
    if code >= 5000:
        return RetryableError
    return JobRejected


def _account_message(code: int, message: str) -> str:
    hint = ACCOUNT_HINTS.get(code)
    return f"{message} ({hint})" if hint else message


def _classify_gateway(
    http_status: int, error: Mapping[str, Any], request_kind: str
) -> ProviderError:
    message = str(error.get("message", "")) or f"HTTP {http_status}"
    code = error.get("code") or None
    if http_status >= 500 and code == "invalid_request":
        return JobRejected(message, code=code, http_status=http_status)
    return _by_http(http_status, message, code, None, request_kind)


def _by_http(
    http_status: int, message: str, code: Any, request_id: Any, request_kind: str
) -> ProviderError:
    kind: type[ProviderError]
    if http_status >= 500 or http_status in (408, 425):
        kind = RetryableError
    elif http_status == 429:
        kind = ThrottledError
    elif http_status in (401, 403):
        kind = AccountError
        message = f"{message} (check the API key and its permissions)"
    elif http_status == 404 and request_kind != "create":
        kind = TaskNotFound
    else:
        kind = JobRejected
    return kind(message, code=code, http_status=http_status, request_id=request_id)


def _network_error(exc: httpx.HTTPError) -> RetryableError:
    name = type(exc).__name__
    return RetryableError(f"network error ({name}): {exc}".rstrip(": "))


class KlingClient:
    """Async client for the image2video task API. Owns its httpx.AsyncClient unless given one."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = 30.0,
        max_connections: int = 64,
        http: httpx.AsyncClient | None = None,
        limiter: RequestLimiter | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = http or httpx.AsyncClient(
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=32),
        )
        self._headers = {"Authorization": f"Bearer {api_key}", "Accept": "application/json"}
        self._limiter = limiter
        # Requests wait here rather than in httpcore's pool, whose queue costs CPU per waiter.
        self._connections = anyio.Semaphore(max_connections)
        self.calls = 0
        self.list_supported: bool | None = None

    async def aclose(self) -> None:
        await self._http.aclose()

    async def create(self, body: Mapping[str, Any]) -> TaskInfo:
        """Submit a task. Raises DuplicateExternalId if the provider has this external id."""
        data = await self._call("POST", ROUTE, json_body=body, kind="create")
        return parse_task(_task_object(data))

    async def get(self, task_id: str) -> TaskInfo:
        """Query one task by its task_id."""
        return parse_task(_task_object(await self._call("GET", f"{ROUTE}/{task_id}")))

    async def find_by_external_id(self, external_id: str) -> TaskInfo | None:
        """The task with this external_task_id, or None. Tries `?external_task_id=` and then the
        path form (§16); falls back to scanning the newest page of the list endpoint."""
        for path, params in (
            (ROUTE, {"external_task_id": external_id}),
            (f"{ROUTE}/{external_id}", None),
        ):
            try:
                data = await self._call("GET", path, params=params)
            except (TaskNotFound, JobRejected):
                continue
            found = _match_external(data, external_id)
            if found is not None:
                return found
        return await self._scan_list_for(external_id)

    async def list_tasks(self, page: int = 1, page_size: int = LIST_PAGE_MAX) -> list[TaskInfo]:
        """One page of the account's tasks, newest first. Raises TaskNotFound where the relay
        does not serve the list endpoint (and remembers that in `list_supported`)."""
        params = {"pageNum": page, "pageSize": min(page_size, LIST_PAGE_MAX)}
        try:
            data = await self._call("GET", ROUTE, params=params)
        except (TaskNotFound, JobRejected):
            self.list_supported = False
            raise TaskNotFound("the provider does not serve the task list") from None
        items = data.get("data") if isinstance(data, Mapping) else data
        if not isinstance(items, list):
            self.list_supported = False
            raise TaskNotFound("the provider's task list has an unknown shape")
        self.list_supported = True
        return [parse_task(item) for item in items if isinstance(item, Mapping)]

    async def _scan_list_for(self, external_id: str, pages: int = 2) -> TaskInfo | None:
        if self.list_supported is False:
            return None
        for page in range(1, pages + 1):
            try:
                tasks = await self.list_tasks(page)
            except TaskNotFound:
                return None
            for task in tasks:
                if task.external_task_id == external_id:
                    return task
            if len(tasks) < LIST_PAGE_MAX:
                return None
        return None

    async def _call(
        self,
        method: str,
        path: str,
        *,
        json_body: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        kind: str = "query",
    ) -> Any:
        if self._limiter is not None:
            await self._limiter.acquire()
        self.calls += 1
        try:
            async with self._connections:
                response = await self._http.request(
                    method,
                    self.base_url + path,
                    json=json_body,
                    params=params,
                    headers=self._headers,
                )
        except httpx.HTTPError as exc:
            raise _network_error(exc) from None
        body = _json_or_none(response)
        error = classify(response.status_code, body, request_kind=kind)
        if error is not None:
            raise error
        if body is None:
            raise RetryableError(
                "the provider answered with a body that is not JSON",
                http_status=response.status_code,
            )
        return body


def _json_or_none(response: httpx.Response) -> Any:
    try:
        return response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None


def _task_object(body: Any) -> Mapping[str, Any]:
    """The task inside an answer: `data` (Kling, CometAPI) or the bare body (§5)."""
    data = body.get("data") if isinstance(body, Mapping) else None
    if isinstance(data, Mapping) and "task_id" in data:
        return data
    if isinstance(body, Mapping) and "task_id" in body:
        return body
    raise RetryableError("the provider's answer has no task in it")


def _match_external(body: Any, external_id: str) -> TaskInfo | None:
    """An external-id lookup may answer with one task or a list of them."""
    data = body.get("data") if isinstance(body, Mapping) else None
    candidates = data if isinstance(data, list) else [data if data is not None else body]
    for item in candidates:
        if isinstance(item, Mapping) and "task_id" in item:
            task = parse_task(item)
            if task.external_task_id in (None, external_id):
                return task
    return None
