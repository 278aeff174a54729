"""A provider's task, normalised: what a create, a query, a list item or a callback says of one
task (kling-api.md §5, §11, §17 E16, E25, §18.2 (3), E38, E40, E42). Pure; tolerant of any
JSON shape: nulls where objects are expected, numbers where strings are documented.

A relay built on new-api may wrap its answer to a query (E40):
`{"code": "success", "data": {"task_id", "status": "SUCCESS", "fail_reason", "data": <the
upstream body>}}`. The nested Kling task is read where there is one (under the relay's task
id); otherwise its status is mapped (`WRAPPED_STATUS`), UNKNOWN meaning not finished.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

TERMINAL = frozenset({"succeed", "succeeded", "failed"})
# new-api's task statuses (E40) as Kling's; UNKNOWN is not an end.
WRAPPED_STATUS = {
    "SUCCESS": "succeed",
    "FAILURE": "failed",
    "IN_PROGRESS": "processing",
    "SUBMITTED": "submitted",
    "QUEUED": "submitted",
    "NOT_START": "submitted",
    "UNKNOWN": "processing",
}
MAX_TASK_ID = 256  # Kling's ids are 19 digits; anything this long is not a provider's id
# Unix ms past any real date, exact as a float and within SQLite's INTEGER: a provider's
# timestamp outside 0..this is not believed (it is kept as None, never stored).
MAX_TIMESTAMP = 2**53


@dataclass(frozen=True, slots=True)
class TaskInfo:
    """One task as the provider describes it."""

    task_id: str
    status: str
    external_task_id: str | None = None  # as echoed in task_info; None when not echoed
    message: str = ""
    video_url: str | None = None
    video_duration: str | None = None
    watermark_url: str | None = None
    final_unit_deduction: str | None = None
    cash: str | None = None  # cash charged as the task says it: "USD 0.42" (billing[], §18.2 (9))
    created_at: int | None = None  # Unix ms
    updated_at: int | None = None  # Unix ms

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    @property
    def succeeded(self) -> bool:
        return self.status in ("succeed", "succeeded")


def parse_task(data: Any) -> TaskInfo | None:
    """A TaskInfo from a task object, or None when `data` holds no usable task id."""
    if not isinstance(data, Mapping):
        return None
    if _is_wrapped(data):
        return _unwrapped(data)
    task_id = _text(data.get("task_id")) or _new_api_id(data)
    if not task_id or task_id_problem(task_id):
        return None
    video = _first_video(data.get("task_result"))
    return TaskInfo(
        task_id=task_id,
        status=_text(data.get("task_status")) or _lower(data.get("status")),
        external_task_id=_text(_mapping(data.get("task_info")).get("external_task_id")),
        message=_text(data.get("task_status_msg")) or "",
        video_url=_text(video.get("url")),
        video_duration=_text(video.get("duration")),
        watermark_url=_text(video.get("watermark_url")),
        final_unit_deduction=_text(data.get("final_unit_deduction")),
        cash=cash_of(data),
        created_at=_timestamp(data.get("created_at")),
        updated_at=_timestamp(data.get("updated_at")),
    )


def task_id_problem(task_id: str) -> str | None:
    """Why `task_id` cannot be a provider's task id (empty, too long, a blank or a control
    character in it), or None when it can."""
    if not task_id:
        return "a task id cannot be empty"
    if len(task_id) > MAX_TASK_ID:
        return f"a task id has at most {MAX_TASK_ID} characters (got {len(task_id):,})"
    if not task_id.isprintable() or any(c.isspace() for c in task_id):
        return "a task id has no blanks or control characters"
    return None


def cash_of(data: Mapping[str, Any]) -> str | None:
    """The cash a task reports it was charged, per currency ("USD 0.42", "CNY 3; USD 0.1"):
    the cash entries of `billing[]`, else the legacy `final_balance_deduction.quota` (its
    currency unsaid). None when it reports none."""
    totals: dict[str, float] = {}
    billing = data.get("billing")
    for item in billing if isinstance(billing, list) else []:
        entry = _mapping(item)
        amount = _number(entry.get("amount"))
        if entry.get("charge_type") == "cash" and amount is not None:
            currency = _text(entry.get("currency")) or "?"
            totals[currency] = totals.get(currency, 0.0) + amount
    if totals:
        return "; ".join(f"{currency} {amount:g}" for currency, amount in sorted(totals.items()))
    quota = _number(_mapping(data.get("final_balance_deduction")).get("quota"))
    return None if quota is None else f"balance {quota:g}"


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if number == number and abs(number) < 1e15 else None


def _is_wrapped(data: Mapping[str, Any]) -> bool:
    """new-api's own task object (E40): `status` in capitals, no `task_status`."""
    status = data.get("status")
    return "task_status" not in data and isinstance(status, str) and status in WRAPPED_STATUS


def _unwrapped(data: Mapping[str, Any]) -> TaskInfo | None:
    """The Kling task inside a wrapped answer (under the relay's task id), else the wrapper's
    own status mapped."""
    task_id = _text(data.get("task_id"))
    inner = task_in(data.get("data"))
    if inner is not None:
        return replace(inner, task_id=task_id or inner.task_id)
    if not task_id or task_id_problem(task_id):
        return None
    return TaskInfo(
        task_id=task_id,
        status=WRAPPED_STATUS[str(data["status"])],
        message=_text(data.get("fail_reason")) or "",
    )


def _new_api_id(data: Mapping[str, Any]) -> str | None:
    """The task id of Kling's newer callback shape (E42: `id`, `status`, `outputs`)."""
    if "outputs" in data and isinstance(data.get("status"), str):
        return _text(data.get("id"))
    return None


def _lower(value: Any) -> str:
    text = _text(value) or ""
    return text.lower() if text.isupper() else text


def task_in(body: Any) -> TaskInfo | None:
    """The task of an answer: inside `data` (Kling, CometAPI) or the bare body (§5)."""
    if isinstance(body, Mapping):
        return parse_task(body.get("data")) or parse_task(body)
    return None


def tasks_in(body: Any) -> list[TaskInfo] | None:
    """The tasks of a list answer (`data` an array), or None when it holds no array."""
    items = body.get("data") if isinstance(body, Mapping) else body
    if not isinstance(items, list):
        return None
    return [task for task in map(parse_task, items) if task is not None]


def _first_video(result: Any) -> Mapping[str, Any]:
    videos = _mapping(result).get("videos")
    if isinstance(videos, list) and videos:
        return _mapping(videos[0])
    return {}


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _text(value: Any) -> str | None:
    """Strings and numbers as text (ids and durations come as either); anything else None."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str):
        return value or None
    if isinstance(value, int | float):
        return str(value)
    return None


def _timestamp(value: Any) -> int | None:
    """Unix ms as an int, or None when `value` is none or out of range (1e300, -1)."""
    number = _int(value)
    return number if number is not None and 0 <= number <= MAX_TIMESTAMP else None


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):
        return None
