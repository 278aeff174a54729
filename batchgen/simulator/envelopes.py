"""Kling's JSON bodies: `{code, message, request_id, data}`, errors without `data`, and task
objects (kling-api.md §5, §6, §17 E13-E17). Pure."""

from __future__ import annotations

from typing import Any

from batchgen.simulator.tasks import Outcome, Task

ERRORS = {  # code: (HTTP status, message)
    1000: (401, "authentication failed"),
    1001: (401, "Authorization header is empty"),
    1002: (401, "Authorization is invalid"),
    1003: (401, "token is not yet valid"),
    1004: (401, "token has expired"),
    1100: (429, "account exception"),
    1101: (429, "account in arrears"),
    1102: (429, "resource pack exhausted or expired"),
    1103: (403, "no permission for this API or model"),
    1200: (400, "invalid request parameters"),
    1201: (400, "invalid parameter"),
    1202: (404, "invalid request method"),
    1203: (404, "resource does not exist"),
    1300: (400, "platform policy triggered"),
    1301: (400, "content-safety policy triggered"),
    1302: (429, "request rate too high"),
    1303: (429, "parallel task over resource pack limit"),
    1304: (429, "IP whitelist policy"),
    5000: (500, "internal error"),
    5001: (503, "service temporarily unavailable"),
    5002: (504, "internal timeout"),
}
FAILURE_MESSAGES = {
    Outcome.FAILED: "Failure to pass the risk control system (simulated content moderation)",
    Outcome.IMAGE_REJECTED: "Image pixel is invalid",
    Outcome.NO_SLOT: "parallel task over resource pack limit",
}


def http_status(code: int) -> int:
    """The HTTP status Kling answers a business code with (§6); 400 for codes not listed."""
    return ERRORS.get(code, (400, ""))[0]


def message_of(code: int) -> str:
    """Kling's message for a code."""
    return ERRORS.get(code, (0, "error"))[1]


def kling_error(code: int, request_id: str, message: str | None = None) -> dict[str, Any]:
    """Kling's error envelope: no `data`."""
    return {"code": code, "message": message or message_of(code), "request_id": request_id}


def success(data: Any, request_id: str | None, message: str = "SUCCEED") -> dict[str, Any]:
    """Kling's success envelope; without `request_id` when it is None (CometAPI's create, E1)."""
    envelope = {"code": 0, "message": message, "request_id": request_id, "data": data}
    if request_id is None:
        del envelope["request_id"]
    return envelope


def created(task: Task, echo_external_id: bool) -> dict[str, Any]:
    """`data` of a create answer."""
    return {
        "task_id": task.task_id,
        "task_status": "submitted",
        "task_info": _task_info(task, echo_external_id),
        "created_at": _ms(task.created),
        "updated_at": _ms(task.created),
    }


def task_object(
    task: Task,
    now: float,
    video_url: str | None,
    echo_external_id: bool,
    updated_at: float | None = None,
) -> dict[str, Any]:
    """The task as seen at `now` (also the flat callback body, E25); `video_url` is used once
    it has succeeded. `updated_at` replaces the time of its last change when given."""
    status = task.status(now)
    data: dict[str, Any] = {
        "task_id": task.task_id,
        "task_status": status,
        "task_status_msg": FAILURE_MESSAGES.get(task.outcome, "") if status == "failed" else "",
        "task_info": _task_info(task, echo_external_id),
        "created_at": _ms(task.created),
        "updated_at": _ms(task.updated(now) if updated_at is None else updated_at),
        "task_result": {},
    }
    if status == "succeed" and video_url is not None and not task.no_video:
        video = {"id": f"{task.task_id}-0", "url": video_url, "duration": task.duration}
        if task.watermarked:
            video["watermark_url"] = f"{video_url}&watermark=1"
        data["task_result"] = {"videos": [video]}
    if status == "succeed":
        data["final_unit_deduction"] = task.units
    elif status == "failed" and task.outcome is Outcome.FAILED:
        data["final_unit_deduction"] = "0"
    return data


def _task_info(task: Task, echo_external_id: bool) -> dict[str, Any]:
    if echo_external_id and task.external_task_id:
        return {"external_task_id": task.external_task_id}
    return {}


def _ms(seconds: float) -> int:
    return int(seconds * 1000)


WRAPPED = {"submitted": "SUBMITTED", "processing": "IN_PROGRESS", "succeed": "SUCCESS"}


def wrapped(data: dict[str, Any], request_id: str) -> dict[str, Any]:
    """A query's answer as new-api wraps it (kling-api.md E40): its own status words, the
    upstream Kling body nested under `data`."""
    status = str(data["task_status"])
    return {
        "code": "success",
        "message": "",
        "data": {
            "task_id": data["task_id"],
            "status": WRAPPED.get(status, "FAILURE"),
            "fail_reason": data.get("task_status_msg") or "",
            "progress": "100%" if status in ("succeed", "failed") else "50%",
            "submit_time": data["created_at"] // 1000,
            "finish_time": data["updated_at"] // 1000,
            "data": {"code": 0, "message": "SUCCEED", "request_id": request_id, "data": data},
        },
    }


def with_nulls(data: dict[str, Any]) -> dict[str, Any]:
    """The task with nulls where the schema has objects or strings it leaves empty (E38)."""
    nulled = dict(data)
    if not nulled.get("task_info"):
        nulled["task_info"] = {"external_task_id": None}
    if not nulled.get("task_result"):
        nulled["task_result"] = None
    if not nulled.get("task_status_msg"):
        nulled["task_status_msg"] = None
    return nulled


UNIT_USD = 0.14  # what a unit costs in cash (kling-api.md E24)


def with_billing(data: dict[str, Any]) -> dict[str, Any]:
    """The task reporting its cost in cash too, as Kling's `billing[]` does (§18.2 (9))."""
    units = data.get("final_unit_deduction")
    if units is None:
        return data
    amount = round(float(units) * UNIT_USD, 4)
    entry = {"charge_type": "cash", "currency": "USD", "amount": amount, "list_price": amount}
    return {**data, "billing": [entry]}
