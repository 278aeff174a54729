"""The real and documented bodies of the 2026-12 audit (kling-api.md §18.4, E28–E42), each
read as the client must: classified, parsed, and never mistaken for another case."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

import pytest

from batchgen.errors import (
    AccountError,
    CallbackRefused,
    ContentRefused,
    JobRejected,
    ModelRefused,
    ThrottledError,
)
from batchgen.providers.answers import MODERATION, THROTTLING, Answer, read_answer
from batchgen.providers.callbacks import parse_callback, verify_signature
from batchgen.providers.task import parse_task, task_in

HINT = "KLING_ACCESS_KEY and KLING_SECRET_KEY"

E28_CREATE = {
    "code": 0,
    "message": "SUCCEED",
    "request_id": "c0656403-1e6e-4b7e-b8f8-2cdd2595f2b9",
    "data": {
        "task_id": "867283741759111202",
        "task_status": "submitted",
        "task_info": {"external_task_id": "text2video_kling_v3_final-1774805076"},
        "created_at": 1774805076166,
        "updated_at": 1774805076166,
    },
}
E29_FAILED = {
    "code": 0,
    "data": {
        "task_id": "833446756*******",
        "task_info": {},
        "created_at": 1766737710125,
        "updated_at": 1766737711775,
        "task_result": {},
        "task_status": "failed",
        "task_status_msg": "Image pixel is invalid",
    },
    "message": "SUCCEED",
    "request_id": "ace7625a-3e18-49aa-abc4-*******",
}
E30_BALANCE = {"code": 1102, "message": "Account balance not enough"}
E31_NO_IMAGE = {"code": 1201, "message": "image can not be null"}
E32_BASE64 = {"code": 1201, "message": "File is not in a valid base64 format"}
E33_MODEL = {"code": 1201, "message": "model is not supported"}
E34_RELAY = {"code": "0", "message": "Failure to pass the risk control system"}
E35_SLOTS = {
    "code": 1303,
    "message": "parallel task over resource pack limit",
    "request_id": "9984d27b-a408-4073-ae28-17ca6a13622d",
}
E36_RUNNING = {
    "code": 0,
    "message": "SUCCEED",
    "request_id": "9ab376fc-9059-487f-9e2a-c9c89f1a344f",
    "data": {
        "task_id": "878106242831892487",
        "task_info": {},
        "created_at": 1777385361501,
        "updated_at": 1777385363321,
        "task_result": {},
        "task_status": "processing",
    },
}
E37_OMNI = {
    "code": 0,
    "message": "success",
    "request_id": "878106484537192522",
    "data": {
        "task_id": "878106484537192522",
        "task_info": {},
        "created_at": 1777385419126,
        "updated_at": 1777385430317,
        "task_result": {},
        "task_status": "processing",
    },
}
E38_NULLS = {
    "code": 123,
    "data": {
        "created_at": 123,
        "task_id": "<string>",
        "task_info": {"external_task_id": None},
        "task_result": None,
        "task_status": "<string>",
        "task_status_msg": None,
        "updated_at": 123,
    },
    "message": "<string>",
}
E39_GATEWAY = {
    "error": {
        "code": "",
        "message": "model name is required (request id: 20261201-x)",
        "type": "comet_api_error",
    }
}
E40_WRAPPED = {
    "code": "success",
    "data": {
        "task_id": "878106242831892487",
        "status": "SUCCESS",
        "fail_reason": "",
        "progress": "100%",
        "submit_time": 1777385361,
        "finish_time": 1777385600,
        "data": {
            "code": 0,
            "message": "SUCCEED",
            "data": {
                "task_id": "878106242831892487",
                "task_status": "succeed",
                "task_result": {
                    "videos": [{"id": "v", "url": "https://cdn/v.mp4", "duration": "5.1"}]
                },
            },
        },
    },
}
E41_CALLBACK = {
    "task_id": "string",
    "task_status": "string",
    "task_status_msg": "string",
    "created_at": 1722769557708,
    "updated_at": 1722769557708,
    "task_result": {
        "images": [{"index": 0, "url": "https://example.com/generated-image.png"}],
        "videos": [
            {"id": "string", "url": "https://example.com/generated-video.mp4", "duration": "5"}
        ],
    },
}
E42_HEADERS = {"webhook-id": "8674665223082153551", "webhook-timestamp": "1781080794"}
E42_BODY = (
    b'{"id":"913827032734642185","status":"submitted","outputs":[],"message":"",'
    b'"create_time":1785901861504,"update_time":1785901861504}'
)


def answer(status: int, body: Any) -> Answer:
    return Answer(status, json.dumps(body).encode(), "application/json")


def test_e28_a_real_create_is_read_with_its_echoed_external_id():
    """E28: "SUCCEED", a UUID request id and an 18-digit task id; the echo is read."""
    task = task_in(read_answer("create", answer(200, E28_CREATE), HINT))
    assert task is not None and task.task_id == "867283741759111202"
    assert task.external_task_id == "text2video_kling_v3_final-1774805076"
    assert task.status == "submitted"


def test_e29_a_task_failed_for_its_image_keeps_the_reason():
    """E29: a failed task (HTTP 200, code 0) with its message and an empty result."""
    task = task_in(read_answer("query", answer(200, E29_FAILED), HINT))
    assert task is not None and task.status == "failed"
    assert task.message == "Image pixel is invalid" and task.video_url is None


def test_e30_a_429_for_the_balance_stops_the_run_rather_than_waits():
    """E30: HTTP 429 with 1102 is the balance (an account error), not throttling."""
    with pytest.raises(AccountError) as refused:
        read_answer("create", answer(429, E30_BALANCE), HINT)
    assert not isinstance(refused.value, ThrottledError) and "resource pack" in str(refused.value)


@pytest.mark.parametrize("body", [E31_NO_IMAGE, E32_BASE64], ids=["E31", "E32"])
def test_e31_e32_bad_images_fail_the_job_and_nothing_else(body):
    """E31, E32: 1201 about the image rejects that job: not a model or moderation refusal."""
    with pytest.raises(JobRejected) as refused:
        read_answer("create", answer(400, body), HINT)
    assert type(refused.value) is JobRejected and body["message"] in str(refused.value)


def test_e33_a_model_the_provider_does_not_take_is_a_model_refusal():
    """E33: "model is not supported" refuses the model (every job of it), not one job."""
    with pytest.raises(ModelRefused):
        read_answer("create", answer(400, E33_MODEL), HINT)


def test_e34_moderation_is_recognised_in_a_failed_task_and_in_a_relay_create():
    """E34: the moderation text, as a failed task's message and as a relay's "success" with
    no task (which the client reads as a refusal, never as a task that may exist)."""
    assert MODERATION.search("Failure to pass the risk control system")
    doc = read_answer("create", answer(200, E34_RELAY), HINT)
    assert task_in(doc) is None and MODERATION.search(doc["message"])
    assert issubclass(ContentRefused, JobRejected)


def test_e35_the_concurrency_limit_waits_and_is_known_as_a_failed_task_too():
    """E35: 1303 (HTTP 429) is throttling; its text in a failed task is recognised."""
    with pytest.raises(ThrottledError):
        read_answer("create", answer(429, E35_SLOTS), HINT)
    assert THROTTLING.search(E35_SLOTS["message"])


@pytest.mark.parametrize("body", [E36_RUNNING, E37_OMNI], ids=["E36", "E37"])
def test_e36_e37_cometapi_queries_of_a_running_task(body):
    """E36, E37: CometAPI's query answers, "SUCCEED" or "success", request id or not."""
    task = task_in(read_answer("query", answer(200, body), HINT))
    assert task is not None and task.status == "processing"
    assert task.task_id == body["data"]["task_id"] and task.video_url is None


def test_e38_nulls_where_objects_are_expected_are_read_as_absent():
    """E38: null task_info values, task_result and message parse as absent fields."""
    task = parse_task(E38_NULLS["data"])
    assert task is not None and task.task_id == "<string>"
    assert task.external_task_id is None and task.message == "" and task.video_url is None


def test_e39_a_missing_model_name_is_the_jobs_own_problem():
    """E39: "model name is required" rejects the job; it names no model to refuse."""
    with pytest.raises(JobRejected) as refused:
        read_answer("create", answer(400, E39_GATEWAY), HINT)
    assert not isinstance(refused.value, ModelRefused)


def test_e40_a_wrapped_answer_is_read_through_to_the_kling_task():
    """E40: new-api's wrapper: the nested Kling task is used (under the relay's task id);
    without one, SUCCESS / FAILURE / UNKNOWN map to succeed / failed / not finished."""
    task = task_in(read_answer("query", answer(200, E40_WRAPPED), HINT))
    assert task is not None and task.status == "succeed" and task.video_url == "https://cdn/v.mp4"
    bare = {"code": "success", "data": {"task_id": "t", "status": "FAILURE", "fail_reason": "x"}}
    failed = task_in(bare)
    assert failed is not None and failed.status == "failed" and failed.message == "x"
    unknown = task_in({"code": "success", "data": {"task_id": "t", "status": "UNKNOWN"}})
    assert unknown is not None and not unknown.terminal


def test_e41_cometapis_flat_callback_is_read():
    """E41: CometAPI's Kling callback is the flat task object, with its video."""
    task = parse_callback(json.dumps(E41_CALLBACK).encode())
    assert task.task_id == "string" and task.video_url == "https://example.com/generated-video.mp4"


def _sign(secret: bytes, msg_id: str, stamp: str, body: bytes) -> str:
    digest = hmac.new(secret, f"{msg_id}.{stamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def test_e42_standard_webhooks_signatures_are_checked_in_seconds_with_several_signatures():
    """E42: `webhook-timestamp` in seconds, ±5 min; any of several space-separated v1
    signatures (a key rotation) passes; a wrong one or a stale time is refused; the body's
    `id`/`status` shape is read."""
    key = b"a test secret of the account"
    secret = "whsec_" + base64.b64encode(key).decode()
    msg_id, stamp = E42_HEADERS["webhook-id"], E42_HEADERS["webhook-timestamp"]
    good = _sign(key, msg_id, stamp, E42_BODY)
    headers = {**E42_HEADERS, "webhook-signature": f"v1,bm90IGl0 {good}"}
    verify_signature(secret, headers, E42_BODY, float(stamp) + 299)
    with pytest.raises(CallbackRefused):
        verify_signature(secret, headers, E42_BODY, float(stamp) + 301)
    with pytest.raises(CallbackRefused):
        verify_signature(secret, {**headers, "webhook-signature": "v1,bm90IGl0"}, E42_BODY, 0)
    task = parse_callback(E42_BODY)
    assert task.task_id == "913827032734642185" and task.status == "submitted"


def test_the_cash_a_task_reports_is_kept_per_currency():
    """§18.2 (9): `billing[]`'s cash entries summed per currency (unit entries left to
    final_unit_deduction); the legacy `final_balance_deduction` where there is no billing."""
    billed = {
        "task_id": "1",
        "task_status": "succeed",
        "billing": [
            {"charge_type": "cash", "currency": "USD", "amount": 0.7, "list_price": 0.7},
            {"charge_type": "cash", "currency": "USD", "amount": "0.14"},
            {"charge_type": "unit", "currency": "USD", "amount": 5},
            {"charge_type": "cash", "currency": "CNY", "amount": 3},
        ],
    }
    task = parse_task(billed)
    assert task is not None and task.cash == "CNY 3; USD 0.84"
    legacy = parse_task(
        {"task_id": "2", "final_balance_deduction": {"quota": 1.5, "list_price": 2}}
    )
    assert legacy is not None and legacy.cash == "balance 1.5"
    bare = parse_task({"task_id": "3", "billing": None, "final_balance_deduction": None})
    assert bare is not None and bare.cash is None
