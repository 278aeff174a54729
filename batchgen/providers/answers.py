"""Every answer a provider can give, classified: success, or the ProviderError it means. Pure.

The shapes (kling-api.md §5, §6, §16, §17 E6, E10, E12):

    Kling          {"code": 1303, "message": "...", "request_id": "...", "data": ...}
    gateway        {"error": {"message": "... (request id: X)", "type": "...", "code": "" | str}}
    relay          {"code": "task_failed" | "task_not_exist" | ... | null, "message": ...,
                    "data": null}
    anything else  HTML pages, 301s, a 524 from a CDN, cut-off JSON, empty bodies

An integer code decides where there is one; otherwise a relay code, then the message where it
names a known case ("parallel task over resource pack limit", an external id that exists, a
spent quota), then the HTTP status. On a create, an answer that does not say the request was
refused (a gateway timeout, a cut-off body, a relay that lost the upstream's answer) is
`OutcomeUnknown`: the task may exist. No input makes `read_answer` raise anything but a
ProviderError.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Literal

from batchgen.errors import (
    AccountError,
    ContentRefused,
    DuplicateExternalId,
    JobRejected,
    ModelRefused,
    OutcomeUnknown,
    ProviderError,
    ProviderUnreachable,
    RetryableError,
    TaskNotFound,
    ThrottledError,
)

RequestKind = Literal["create", "query", "lookup", "list"]

ACCOUNT_CODES = frozenset({1000, 1001, 1002, 1100, 1101, 1102, 1103, 1304})
TOKEN_CODES = frozenset({1003, 1004})  # the JWT is not yet valid or has expired: renew it
THROTTLE_CODES = frozenset({1302, 1303})
NOT_FOUND_CODES = frozenset({1202, 1203})
ROUTE_NOT_SERVED = 1202  # "invalid request method": no such path or method (the address)
ADDRESS_FIX = "is --base-url the API's address, and --provider the right one?"
OUTCOME_UNKNOWN_CODES = frozenset({5002})  # Kling's own timeout: the create may have gone on
# A gateway gave up waiting for the server behind it: whatever that server did is unknown.
GATEWAY_TIMEOUTS = frozenset({502, 504, 520, 521, 522, 523, 524, 525, 526, 527, 598, 599})
# The relay's codes for an upstream answer it lost after sending the request on.
RELAY_LOST_ANSWER = frozenset(
    {"do_request_failed", "read_response_body_failed", "unmarshal_response_failed"}
)
SUCCESS_WORDS = frozenset({"", "0", "success", "succeed", "ok"})
MAX_RETRY_AFTER = 600.0

FIXES = {
    1000: "check {key}",
    1001: "no credentials were sent: set {key}",
    1002: "check {key}",
    1100: "contact the provider about the account",
    1101: "top up the balance",
    1102: "buy or renew a resource pack",
    1103: "use a key with permission for this API and model",
    1304: "add this machine's IP address to the key's whitelist",
}
BALANCE_FIX = "top up the balance or raise the quota"

_THROTTLE = re.compile(
    r"parallel task|resource pack limit|concurren|rate limit|request rate|too many requests"
    r"|负载已饱和",
    re.IGNORECASE,
)
_DUPLICATE = re.compile(
    r"external[_ ]?task[_ ]?id.*(exist|duplicat|already|used)|duplicat.*external", re.IGNORECASE
)
_MODEL = re.compile(
    r"model is not supported|invalid model name|unsupported model|model \S+ is not supported",
    re.IGNORECASE,
)
MODERATION = re.compile(r"risk control|content (policy|moderation)|sensitive", re.IGNORECASE)
THROTTLING = _THROTTLE
_BALANCE = re.compile(
    r"quota is not enough|insufficient (quota|balance|credit)|arrears|余额不足|额度不足",
    re.IGNORECASE,
)
_REQUEST_ID = re.compile(r"request id:\s*([\w-]+)", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Answer:
    """An HTTP answer, as much of it as classifying needs."""

    status: int
    body: bytes
    content_type: str = ""
    retry_after: str | None = None  # the Retry-After header, as sent
    location: str | None = None  # the Location header, as sent


@dataclass(frozen=True, slots=True)
class _Said:
    """What an error answer says, whatever its envelope."""

    message: str
    code: int | str | None = None
    request_id: str | None = None


_NOT_JSON = object()


def read_answer(kind: RequestKind, answer: Answer, key_hint: str) -> Any:
    """The JSON document of a successful answer; raises the ProviderError the answer means.
    `key_hint` names what the user sets to fix credentials (e.g. "COMETAPI_KEY / --api-key")."""
    doc = _json(answer.body)
    if 300 <= answer.status < 400:
        raise ProviderUnreachable(
            f"the API answered HTTP {answer.status}, a redirect to "
            f"{answer.location or 'another address'}: is --base-url the API's address?",
            http_status=answer.status,
        )
    error = classify(kind, answer.status, doc, key_hint, structured=doc is not _NOT_JSON)
    if error is None and doc is _NOT_JSON:
        error = _not_json(kind, answer)
    if error is not None:
        error.retry_after = retry_after_seconds(answer.retry_after)
        raise error
    return doc


def classify(
    kind: RequestKind, status: int, doc: Any, key_hint: str, *, structured: bool = True
) -> ProviderError | None:
    """The error an answer means, or None for a success (the caller still checks the body
    holds what it asked for)."""
    if isinstance(doc, Mapping):
        error = doc.get("error")
        if isinstance(error, Mapping):
            return _gateway(kind, status, error, key_hint)
        code = doc.get("code")
        said = _Said(_text(doc.get("message")), code, _text(doc.get("request_id")) or None)
        if _integer(code) is not None:
            return _kling(kind, status, said, key_hint)
        if "code" in doc and (status >= 300 or _text(code).lower() not in SUCCESS_WORDS):
            return _relay(kind, status, said, key_hint)
    if 200 <= status < 300:
        return None
    message = _text(doc.get("message")) if isinstance(doc, Mapping) else ""
    return by_status(kind, status, _Said(message or f"HTTP {status}"), key_hint, structured)


def _kling(kind: RequestKind, status: int, said: _Said, key_hint: str) -> ProviderError | None:
    code = _integer(said.code)
    assert code is not None
    if code == 0:
        return None if status < 400 else by_status(kind, status, said, key_hint, True)
    cls: type[ProviderError]
    if code in ACCOUNT_CODES:
        return _account(said, FIXES[code].format(key=key_hint), status, code)
    if code in TOKEN_CODES:
        cls = RetryableError
    elif code in THROTTLE_CODES:
        cls = ThrottledError
    elif code == 1201 and _DUPLICATE.search(said.message):
        cls = DuplicateExternalId
    elif code == ROUTE_NOT_SERVED and kind == "create":
        return _wrong_address(said, status)
    elif _MODEL.search(said.message):
        cls = ModelRefused
    elif MODERATION.search(said.message) and kind == "create":
        cls = ContentRefused
    elif code in NOT_FOUND_CODES and kind != "create":
        cls = TaskNotFound
    elif code in OUTCOME_UNKNOWN_CODES and kind == "create":
        cls = OutcomeUnknown
    elif code >= 5000:
        cls = RetryableError
    else:
        cls = JobRejected
    return cls(
        said.message or f"code {code}", code=code, http_status=status, request_id=said.request_id
    )


def _gateway(
    kind: RequestKind, status: int, error: Mapping[str, Any], key_hint: str
) -> ProviderError:
    message = _text(error.get("message")) or f"HTTP {status}"
    found = _REQUEST_ID.search(message)
    said = _Said(message, _text(error.get("code")) or None, found.group(1) if found else None)
    if status >= 500 and said.code == "invalid_request":
        return JobRejected(message, code=said.code, http_status=status)
    return _by_message(kind, status, said, key_hint) or by_status(
        kind, status, said, key_hint, True
    )


def _relay(kind: RequestKind, status: int, said: _Said, key_hint: str) -> ProviderError:
    code = _text(said.code)
    said = _Said(said.message or code or f"HTTP {status}", code or None, said.request_id)
    if code == "task_not_exist":
        cls: type[ProviderError] = TaskNotFound if kind != "create" else JobRejected
        return cls(said.message, code=code, http_status=status)
    if code in RELAY_LOST_ANSWER:
        cls = OutcomeUnknown if kind == "create" else RetryableError
        return cls(said.message, code=code, http_status=status)
    return _by_message(kind, status, said, key_hint) or by_status(
        kind, status, said, key_hint, True
    )


def _by_message(kind: RequestKind, status: int, said: _Said, key_hint: str) -> ProviderError | None:
    """The error a message names, where it names a case the status alone would misread."""
    text = said.message
    if _BALANCE.search(text):
        return _account(said, BALANCE_FIX, status)
    if status == 429 or _THROTTLE.search(text):
        return ThrottledError(text, code=said.code, http_status=status)
    if _DUPLICATE.search(text) and kind == "create":
        return DuplicateExternalId(text, code=said.code, http_status=status)
    if _MODEL.search(text):
        return ModelRefused(text, code=said.code, http_status=status)
    return None


def by_status(
    kind: RequestKind, status: int, said: _Said, key_hint: str, structured: bool
) -> ProviderError:
    """The error an HTTP status means when nothing in the body decides."""
    args: dict[str, Any] = {"code": said.code, "http_status": status}
    if status == 429:
        return ThrottledError(said.message, **args)
    if status in (401, 403):
        fix = f"check {key_hint}" if status == 401 else "check the key's permissions and balance"
        return _account(said, fix, status)
    if status in (404, 405) and kind == "create":
        return _wrong_address(said, status)
    if status == 404:
        return TaskNotFound(said.message, **args)
    if status == 408:
        return RetryableError(said.message, **args)
    if kind == "create" and (status in GATEWAY_TIMEOUTS or not structured or status < 200):
        return OutcomeUnknown(said.message, **args)
    if status >= 500 or status < 200:
        return RetryableError(said.message, **args)
    return JobRejected(said.message, **args)


def _wrong_address(said: _Said, status: int) -> ProviderUnreachable:
    """A create answered as if its route did not exist: the address is wrong, not the job."""
    return ProviderUnreachable(
        f"{said.message or f'HTTP {status}'}: the create path was not found; {ADDRESS_FIX}",
        code=said.code,
        http_status=status,
        request_id=said.request_id,
    )


def _account(said: _Said, fix: str, status: int, code: int | None = None) -> AccountError:
    message = said.message or f"HTTP {status}"
    return AccountError(
        f"{message} ({fix})",
        code=code if code is not None else said.code,
        http_status=status,
        request_id=said.request_id,
    )


def _not_json(kind: RequestKind, answer: Answer) -> ProviderError:
    kind_of_body = answer.content_type.split(";")[0].strip() or "no content type"
    what = (
        f"HTTP {answer.status} with {kind_of_body} ({len(answer.body)} bytes) that is not JSON"
        if answer.body
        else f"HTTP {answer.status} with an empty body"
    )
    if kind == "create":
        return OutcomeUnknown(f"the answer to the create was {what}", http_status=answer.status)
    return RetryableError(
        f"the provider answered {what}; is --base-url the API's address?",
        http_status=answer.status,
    )


def retry_after_seconds(header: str | None) -> float | None:
    """Seconds asked for by a Retry-After header (a number or an HTTP date), bounded."""
    if not header:
        return None
    text = header.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        if when.tzinfo is None:
            return None
        seconds = (when - datetime.now(UTC)).total_seconds()
    if seconds != seconds:  # NaN
        return None
    return min(MAX_RETRY_AFTER, max(0.0, seconds))


def _json(body: bytes) -> Any:
    if not body:
        return _NOT_JSON
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        return _NOT_JSON


def _integer(code: Any) -> int | None:
    """An integer business code: an int, or a string of digits (never a bool)."""
    if isinstance(code, bool):
        return None
    if isinstance(code, int):
        return code
    if isinstance(code, float) and code.is_integer():
        return int(code)
    text = code.strip() if isinstance(code, str) else ""
    digits = text.removeprefix("-")
    if digits.isascii() and digits.isdecimal() and len(digits) < 19:
        return int(text)
    return None


def _text(value: Any) -> str:
    if value is None or isinstance(value, bool):
        return ""
    if isinstance(value, str | int | float):
        return str(value)
    return ""
