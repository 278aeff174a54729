"""A provider's task, normalised: what a create, a query, a list item or a callback says of one
task (kling-api.md §5, §11, §17 E16, E25). Pure; tolerant of any JSON shape."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

TERMINAL = frozenset({"succeed", "succeeded", "failed"})
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
    task_id = _text(data.get("task_id"))
    if not task_id or task_id_problem(task_id):
        return None
    video = _first_video(data.get("task_result"))
    return TaskInfo(
        task_id=task_id,
        status=_text(data.get("task_status")) or "",
        external_task_id=_text(_mapping(data.get("task_info")).get("external_task_id")),
        message=_text(data.get("task_status_msg")) or "",
        video_url=_text(video.get("url")),
        video_duration=_text(video.get("duration")),
        watermark_url=_text(video.get("watermark_url")),
        final_unit_deduction=_text(data.get("final_unit_deduction")),
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
