"""Every answer a provider gives is classified, whatever its shape: the real bodies of
kling-api.md §17, both error envelopes, the relay's string and null codes, HTML, redirects."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from batchgen.errors import (
    AccountError,
    DuplicateExternalId,
    JobRejected,
    OutcomeUnknown,
    ProviderError,
    ProviderUnreachable,
    RetryableError,
    TaskNotFound,
    ThrottledError,
)
from batchgen.providers.answers import Answer, read_answer, retry_after_seconds
from batchgen.providers.task import parse_task, task_in, tasks_in

HINT = "COMETAPI_KEY / --api-key"

# Real bodies, kling-api.md §17 (ellipses of the source kept as they were written there).
E1_CREATE = {
    "code": 0,
    "message": "success",
    "data": {
        "task_id": "2032273942220931072",
        "task_status": "submitted",
        "task_info": {},
        "created_at": 1773366840306,
        "updated_at": 1773366840306,
    },
}
E6_MODEL_REQUIRED = {"error": {"code": "", "message": "model name is required (request id: X1)"}}
E10_NO_CHANNEL = {
    "error": {
        "code": "model_not_found",
        "message": "no available channel for group default and model kling-v3 (distributor) "
        "(request id: 20261125-abc)",
        "type": "comet_api_error",
    }
}
E10_QUOTA = {"code": None, "message": "user quota is not enough"}
E12_NOT_EXIST = {"code": "task_not_exist", "message": "task_not_exist", "data": None}
E12_SATURATED = {
    "code": "fail_to_fetch_task",
    "message": "当前分组上游负载已饱和，请稍后再试",
    "data": None,
}
E12_TASK_FAILED_SLOTS = {
    "code": "task_failed",
    "message": "parallel task over resource pack limit",
    "data": None,
}
E12_TASK_FAILED_CONTENT = {
    "code": "task_failed",
    "message": "content-safety policy triggered",
    "data": None,
}
E15_SLOTS = {"code": 1303, "message": "parallel task over resource pack limit", "request_id": "r1"}
E16_SUCCESS = {
    "code": 0,
    "message": "SUCCEED",
    "request_id": "CjnVU2evHRAAAAAAAKDHAg",
    "data": {
        "task_id": "CjI17WevH1IAAAAAAHmgsw",
        "task_status": "succeed",
        "task_status_msg": "",
        "task_result": {
            "videos": [
                {
                    "id": "28444a6c-b923-4d7c-be2c-e0898ea73dc0",
                    "url": "https://cdn.klingai.com/bs2/upload-kling-api/5739745938/image2video/"
                    "CjI17WevH1IAAAAAAHmgsw-0_raw_video_1.mp4",
                    "duration": "5.1",
                }
            ]
        },
        "created_at": 1739744384259,
        "updated_at": 1739744621359,
    },
}
E17_FAILED = {
    "code": 0,
    "message": "SUCCEED",
    "data": {
        "task_id": "867283741759111203",
        "task_status": "failed",
        "task_status_msg": "Image pixel is invalid",
        "task_result": {},
    },
}
E18_ECHO = {
    "code": 0,
    "message": "success",
    "data": {
        "task_id": "867283741759111202",
        "task_status": "submitted",
        "task_info": {"external_task_id": "text2video_kling_v3_final-1774805076"},
    },
}
CLOUDFLARE_524 = b"<!DOCTYPE html><html><head><title>A timeout occurred</title></head></html>"
HTML_PAGE = b"<html><body>Welcome to CometAPI</body></html>"


def answer(
    status: int, body: Any, content_type: str = "application/json", **headers: str
) -> Answer:
    raw = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode()
    return Answer(status, raw, content_type, headers.get("retry_after"), headers.get("location"))


def outcome(kind: str, status: int, body: Any, **headers: str) -> type | None:
    """The error class an answer raises, or None when it reads as a success."""
    try:
        read_answer(kind, answer(status, body, **headers), HINT)  # type: ignore[arg-type]
    except ProviderError as error:
        return type(error)
    return None


def kling(code: int, message: str = "x") -> dict[str, Any]:
    return {"code": code, "message": message, "request_id": "r1"}


REAL_BODIES = [
    ("E1 create answer, no request_id", "create", 200, E1_CREATE, None),
    ("E6 gateway, empty code", "create", 400, E6_MODEL_REQUIRED, JobRejected),
    ("E10 no channel for the model", "create", 503, E10_NO_CHANNEL, RetryableError),
    ("E10 null code: quota", "create", 403, E10_QUOTA, AccountError),
    ("E12 task_not_exist on a query", "query", 400, E12_NOT_EXIST, TaskNotFound),
    ("E12 upstream saturated (429 rewritten)", "create", 429, E12_SATURATED, ThrottledError),
    ("E12 task_failed: slots full", "create", 400, E12_TASK_FAILED_SLOTS, ThrottledError),
    ("E12 task_failed: content", "create", 400, E12_TASK_FAILED_CONTENT, JobRejected),
    ("E15 1303 slots full", "create", 429, E15_SLOTS, ThrottledError),
    ("E16 real success", "query", 200, E16_SUCCESS, None),
    ("E17 failed generation is not an HTTP error", "query", 200, E17_FAILED, None),
    ("E18 create echoing the external id", "create", 200, E18_ECHO, None),
    ("E6 HTML 524 on a create", "create", 524, CLOUDFLARE_524, OutcomeUnknown),
    ("E6 HTML 524 on a query", "query", 524, CLOUDFLARE_524, RetryableError),
]


@pytest.mark.parametrize(
    ("kind", "status", "body", "expected"),
    [row[1:] for row in REAL_BODIES],
    ids=[row[0] for row in REAL_BODIES],
)
def test_every_real_body_is_classified(kind, status, body, expected):
    """Each real answer of kling-api.md §17 reads as its documented meaning."""
    assert outcome(kind, status, body) is expected


SHAPES = [
    ("Kling 1000 credentials", "create", 401, kling(1000), AccountError),
    ("Kling 1001 no header", "query", 401, kling(1001), AccountError),
    ("Kling 1102 pack exhausted at 429", "create", 429, kling(1102), AccountError),
    ("Kling 1103 permission", "create", 403, kling(1103), AccountError),
    ("Kling 1304 whitelist", "create", 429, kling(1304), AccountError),
    ("Kling 1302 rate", "create", 429, kling(1302), ThrottledError),
    ("Kling 1004 token expired", "query", 401, kling(1004), RetryableError),
    ("Kling 1200 parameters", "create", 400, kling(1200), JobRejected),
    ("Kling 1301 content", "create", 400, kling(1301), JobRejected),
    (
        "Kling 1201 duplicate id",
        "create",
        400,
        kling(1201, "external_task_id already exists"),
        DuplicateExternalId,
    ),
    ("Kling 1201 other", "create", 400, kling(1201, "prompt too long"), JobRejected),
    ("Kling 1203 on a look-up", "lookup", 404, kling(1203), TaskNotFound),
    ("Kling 5000", "create", 500, kling(5000), RetryableError),
    ("Kling 5001", "create", 503, kling(5001), RetryableError),
    ("Kling 5002 internal timeout: create may exist", "create", 504, kling(5002), OutcomeUnknown),
    ("Kling 5002 on a query", "query", 504, kling(5002), RetryableError),
    ("code as a digit string", "create", 429, {"code": "1303", "message": "m"}, ThrottledError),
    ("code 0 as a string", "query", 200, {"code": "0", "data": E16_SUCCESS["data"]}, None),
    ("a nonzero code at HTTP 200", "create", 200, kling(1301), JobRejected),
    ("gateway 429, no code", "create", 429, {"error": {"message": "slow down"}}, ThrottledError),
    (
        "gateway 401",
        "query",
        401,
        {"error": {"message": "invalid token", "code": ""}},
        AccountError,
    ),
    (
        "gateway invalid_request at 500",
        "create",
        500,
        {"error": {"message": "bad body", "code": "invalid_request"}},
        JobRejected,
    ),
    (
        "gateway 500 JSON: refused",
        "create",
        500,
        {"error": {"message": "oops", "code": ""}},
        RetryableError,
    ),
    (
        "gateway 502 on a create",
        "create",
        502,
        {"error": {"message": "bad gateway"}},
        OutcomeUnknown,
    ),
    (
        "relay lost the upstream answer",
        "create",
        500,
        {"code": "read_response_body_failed", "message": "EOF", "data": None},
        OutcomeUnknown,
    ),
    (
        "relay upstream 5xx on a query",
        "query",
        503,
        {"code": "fail_to_fetch_task", "message": "upstream 503", "data": None},
        RetryableError,
    ),
    (
        "relay duplicate by message",
        "create",
        400,
        {"code": "task_failed", "message": "external_task_id bg-1 already exists", "data": None},
        DuplicateExternalId,
    ),
    ("relay null code, 500", "create", 500, {"code": None, "message": "x"}, RetryableError),
    ("429 with any body lowers slots", "create", 429, {"anything": [1, 2]}, ThrottledError),
    ("301 redirect", "create", 301, HTML_PAGE, ProviderUnreachable),
    ("404 on a create: wrong path", "create", 404, b"404 page not found", ProviderUnreachable),
    (
        "Kling 404/1202 on a create: wrong path",
        "create",
        404,
        {"code": 1202, "message": "invalid request method", "request_id": "r"},
        ProviderUnreachable,
    ),
    (
        "Kling 404/1203 on a create: the model, a job's fault",
        "create",
        404,
        {"code": 1203, "message": "resource does not exist", "request_id": "r"},
        JobRejected,
    ),
    ("405 on a create: wrong method or path", "create", 405, b"", ProviderUnreachable),
    ("404 text on a query", "query", 404, b"404 page not found", TaskNotFound),
    ("HTML with 200 on a create", "create", 200, HTML_PAGE, OutcomeUnknown),
    ("HTML with 200 on a query", "query", 200, HTML_PAGE, RetryableError),
    ("cut-off JSON on a create", "create", 200, b'{"code":0,"message":"succ', OutcomeUnknown),
    ("empty 200 on a create", "create", 200, b"", OutcomeUnknown),
    ("plain 500 text on a create", "create", 500, b"Internal Server Error", OutcomeUnknown),
    ("plain 503 text on a query", "query", 503, b"Service Unavailable", RetryableError),
    ("HTML 403 from a firewall", "create", 403, HTML_PAGE, AccountError),
    ("JSON that is a list", "query", 500, [1, 2, 3], RetryableError),
]


@pytest.mark.parametrize(
    ("kind", "status", "body", "expected"),
    [row[1:] for row in SHAPES],
    ids=[row[0] for row in SHAPES],
)
def test_every_shape_ends_in_its_class(kind, status, body, expected):
    """Integer, string, empty and null codes, both envelopes, HTML and redirects."""
    assert outcome(kind, status, body) is expected


def test_a_429_for_the_balance_is_not_mistaken_for_throttling():
    """HTTP 429 is shared by account problems and throttling: the code decides (§6)."""
    assert outcome("create", 429, kling(1102)) is AccountError
    assert outcome("create", 429, kling(1303)) is ThrottledError


def test_account_errors_say_what_to_fix_once():
    """An account error names the fix, and does not repeat the provider's words."""
    with pytest.raises(AccountError) as caught:
        read_answer("create", answer(429, kling(1101, "account in arrears")), HINT)
    text = str(caught.value)
    assert "top up" in text and text.count("arrears") == 1


def test_credential_errors_name_the_setting_to_fix():
    """A 401 tells the user which variable holds the credentials."""
    with pytest.raises(AccountError, match="COMETAPI_KEY"):
        read_answer("create", answer(401, kling(1000, "authentication failed")), HINT)


def test_retry_after_is_read_from_seconds_and_dates():
    """Retry-After as seconds or an HTTP date becomes bounded seconds on the error."""
    assert retry_after_seconds("7") == 7.0
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
    assert retry_after_seconds("99999") == 600.0
    assert retry_after_seconds("soon") is None
    with pytest.raises(ThrottledError) as caught:
        read_answer("create", answer(429, E12_SATURATED, retry_after="3"), HINT)
    assert caught.value.retry_after == 3.0


def test_the_real_success_parses_to_its_video():
    """E16 gives the task id, the video URL, the real duration and the timestamps."""
    task = task_in(E16_SUCCESS)
    assert task is not None and task.succeeded
    assert task.task_id == "CjI17WevH1IAAAAAAHmgsw"
    assert task.video_url is not None and task.video_url.endswith("raw_video_1.mp4")
    assert (task.video_duration, task.created_at, task.updated_at) == (
        "5.1",
        1739744384259,
        1739744621359,
    )


def test_a_failed_generation_keeps_its_reason():
    """E17: status failed with the provider's message, and no charge reported."""
    task = task_in(E17_FAILED)
    assert task is not None and task.status == "failed" and task.terminal
    assert task.message == "Image pixel is invalid" and task.final_unit_deduction is None


def test_an_echoed_external_id_is_read_and_a_missing_one_is_none():
    """E18 echoes the external id; E1's empty task_info echoes none."""
    echoed, bare = task_in(E18_ECHO), task_in(E1_CREATE)
    assert echoed is not None and echoed.external_task_id == "text2video_kling_v3_final-1774805076"
    assert bare is not None and bare.external_task_id is None


def test_a_bare_task_body_is_read_like_one_inside_data():
    """CometAPI's guide: a query may answer the task bare rather than inside `data` (§5)."""
    assert task_in(E16_SUCCESS["data"]) == task_in(E16_SUCCESS)


def test_numbers_where_strings_are_documented_are_read_as_text():
    """Task ids, durations and charges may come as numbers: they are kept as text."""
    task = parse_task(
        {
            "task_id": 2032273942220931072,
            "task_status": "succeed",
            "task_result": {"videos": [{"url": "http://x/v.mp4", "duration": 5}]},
            "final_unit_deduction": 10,
        }
    )
    assert task is not None
    assert (task.task_id, task.video_duration, task.final_unit_deduction) == (
        "2032273942220931072",
        "5",
        "10",
    )


def test_a_list_answer_yields_its_tasks_and_skips_junk():
    """Items without a task id are left out; a body with no array is not a list."""
    assert [t.task_id for t in tasks_in({"data": [E16_SUCCESS["data"], {"x": 1}, 7]}) or []] == [
        "CjI17WevH1IAAAAAAHmgsw"
    ]
    assert tasks_in({"data": {"task_id": "1"}}) is None


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(["code", "message", "error", "data", "task_id", "request_id", "x"])
            | st.text(max_size=8),
            children,
            max_size=5,
        )
    ),
    max_leaves=12,
)
bodies = json_values.map(lambda v: json.dumps(v).encode()) | st.binary(max_size=200)


@settings(max_examples=600, deadline=None)
@given(
    kind=st.sampled_from(["create", "query", "lookup", "list"]),
    status=st.integers(min_value=100, max_value=599),
    body=bodies,
    content_type=st.sampled_from(["application/json", "text/html", "", "text/plain; charset=x"]),
    retry_after=st.none() | st.text(max_size=40),
)
def test_no_answer_whatsoever_escapes_as_anything_but_a_provider_error(
    kind, status, body, content_type, retry_after
):
    """Any status and any bytes: read_answer returns a document or raises a ProviderError."""
    try:
        doc = read_answer(kind, Answer(status, body, content_type, retry_after, None), HINT)
    except ProviderError:
        return
    task_in(doc)
    tasks_in(doc)


@pytest.mark.parametrize("stamp", [1e300, 10**300, -1, 2**63, float("inf"), "1e300", [1]])
def test_a_timestamp_no_state_can_hold_is_not_believed(stamp):
    """created_at / updated_at outside 0..2^53 ms (or not a number) are read as None."""
    task = parse_task({"task_id": "1", "task_status": "succeed", "created_at": stamp})
    assert task is not None and task.created_at is None


@pytest.mark.parametrize("task_id", ["x" * 100_000, "a b", "line\nbreak", ""])
def test_a_task_id_no_provider_gives_is_no_task(task_id):
    """A task id that is empty, longer than 256 characters or holds blanks names no task."""
    assert parse_task({"task_id": task_id, "task_status": "succeed"}) is None
