"""The JSON bodies the simulator answers with: Kling's `{code, message, request_id, data}`,
CometAPI's gateway `{"error": {...}}`, and task objects (kling-api.md §5, §6). Pure."""

from __future__ import annotations

from typing import Any

from batchgen.simulator.tasks import Task

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
GATEWAY_CODES = {500: "internal_error", 502: "bad_response_status_code", 503: "model_not_ready"}
FAILURE_MESSAGE = "Failure to pass the risk control system (simulated content moderation)"


def http_status(code: int) -> int:
    """The HTTP status Kling answers a business code with (§6); 400 for codes not listed."""
    return ERRORS.get(code, (400, ""))[0]


def kling_error(code: int, request_id: str, message: str | None = None) -> dict[str, Any]:
    """Kling's error envelope: no `data`."""
    text = message if message is not None else ERRORS.get(code, (0, "error"))[1]
    return {"code": code, "message": text, "request_id": request_id}


def gateway_error(status: int, request_id: str) -> dict[str, Any]:
    """CometAPI's gateway error envelope, request id inside the message."""
    return {
        "error": {
            "message": f"upstream error, HTTP {status} (request id: {request_id})",
            "type": "comet_api_error",
            "param": "",
            "code": GATEWAY_CODES.get(status, "upstream_error"),
        }
    }


def success(data: Any, request_id: str, message: str = "SUCCEED") -> dict[str, Any]:
    return {"code": 0, "message": message, "request_id": request_id, "data": data}


def created(task: Task) -> dict[str, Any]:
    """`data` of a create answer."""
    return {
        "task_id": task.task_id,
        "task_status": "submitted",
        "task_info": _task_info(task),
        "created_at": _ms(task.created),
        "updated_at": _ms(task.created),
    }


def task_object(task: Task, now: float, video_url: str | None) -> dict[str, Any]:
    """The task as a query shows it at `now`; `video_url` is used once it has succeeded."""
    status = task.status(now)
    data: dict[str, Any] = {
        "task_id": task.task_id,
        "task_status": status,
        "task_status_msg": FAILURE_MESSAGE if status == "failed" else "",
        "task_info": _task_info(task),
        "created_at": _ms(task.created),
        "updated_at": _ms(task.updated(now)),
        "task_result": {},
    }
    if status == "succeed" and video_url is not None:
        video = {"id": f"{task.task_id}-0", "url": video_url, "duration": task.duration}
        data["task_result"] = {"videos": [video]}
    if status in ("succeed", "failed"):
        data["final_unit_deduction"] = task.units if status == "succeed" else "0"
    return data


def _task_info(task: Task) -> dict[str, Any]:
    return {"external_task_id": task.external_task_id} if task.external_task_id else {}


def _ms(seconds: float) -> int:
    return int(seconds * 1000)
