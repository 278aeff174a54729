"""The cometapi profile: CometAPI's relay (new-api) as the docs and real bodies show it
(kling-api.md §2, §5, §6, §16, §17 E1-E12), over loopback HTTP."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.runs.test_simulator import COMETAPI_PATH, IMAGE, Api, api, growth


@pytest.fixture(scope="module")
def relay() -> Iterator[Api]:
    """One cometapi simulator for the tests that compare counters before and after."""
    with api(slots=100) as a:
        yield a


SATURATED = "当前分组上游负载已饱和，请稍后再试"
TASK_NOT_EXIST = {"code": "task_not_exist", "message": "task_not_exist", "data": None}


def relay_error(code: str, message: str) -> dict[str, Any]:
    return {"code": code, "message": message, "data": None}


def gateway_error(answer: httpx.Response, message: str) -> None:
    """The answer is the gateway envelope with `message` and a request id, `code` empty."""
    error = answer.json()["error"]
    assert error["message"].startswith(f"{message} (request id: ")
    assert (error["type"], error["param"], error["code"]) == ("comet_api_error", "", "")


def test_a_create_answers_success_without_request_id_or_external_id() -> None:
    """The create answer is E1's: code 0, "success", data with task_info {} and no request_id."""
    with api() as a:
        answer = a.create(external_task_id="bg-1")
        task_id = answer.json()["data"]["task_id"]
        query = a.get(task_id)
    assert answer.status_code == 200 and answer.headers["content-type"].startswith(
        "application/json"
    )
    body = answer.json()
    assert list(body) == ["code", "message", "data"]
    assert (body["code"], body["message"]) == (0, "success")
    assert set(body["data"]) == {"task_id", "task_status", "task_info", "created_at", "updated_at"}
    assert body["data"]["task_status"] == "submitted" and body["data"]["task_info"] == {}
    assert query.status_code == 200 and query.json()["data"]["task_id"] == task_id
    assert query.json()["data"]["task_info"] == {}


@pytest.mark.parametrize(
    "query", ["", "?pageNum=1&pageSize=30", "?external_task_id=bg-1", "?task_id=x"]
)
def test_a_get_on_the_collection_answers_gins_plain_404(relay: Api, query: str) -> None:
    """The relay has no list and no query-string look-up: 404, text/plain, "404 page not found"."""
    relay.create(external_task_id="bg-1")
    before = relay.stats()
    answer = relay.client.get(COMETAPI_PATH + query)
    assert answer.status_code == 404
    assert answer.headers["content-type"] == "text/plain"
    assert answer.content == b"404 page not found"
    assert growth(before, relay.stats()) == {"unrouted": 1}


def test_an_external_id_or_unknown_id_answers_task_not_exist() -> None:
    """Only task ids are found: an external_task_id or any other id answers 400 task_not_exist."""
    with api() as a:
        a.create(external_task_id="bg-1")
        by_external = a.get("bg-1")
        unknown = a.get("2032273942220931999")
        stats = a.stats()
    for answer in (by_external, unknown):
        assert answer.status_code == 400 and answer.json() == TASK_NOT_EXIST
    assert stats["not_found"] == 2 and stats["external_lookups"] == 0


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v1/videos/image2video"),
        ("GET", "/v1/videos/image2video/123"),
        ("GET", COMETAPI_PATH + "/123/extra"),
        ("POST", COMETAPI_PATH + "/123"),
        ("GET", "/kling/v1/videos/text2video/123"),
        ("GET", "/"),
    ],
)
def test_any_other_path_is_redirected_to_the_home_page(relay: Api, method: str, path: str) -> None:
    """A path mistake answers 301 to https://www.cometapi.com/ with a small HTML body (E6)."""
    before = relay.stats()
    answer = relay.client.request(method, path, json={"image": IMAGE})
    assert answer.status_code == 301
    assert answer.headers["location"] == "https://www.cometapi.com/"
    assert answer.headers["content-type"].startswith("text/html")
    assert b"Moved Permanently" in answer.content
    assert growth(before, relay.stats()) == {"unrouted": 1}


def test_a_resent_external_id_makes_a_second_paid_task() -> None:
    """The relay does not deduplicate external ids: a resend creates (and charges) a new task."""
    with api() as a:
        first = a.create(external_task_id="bg-twice")
        second = a.create(external_task_id="bg-twice")
        stats = a.stats()
    assert first.status_code == second.status_code == 200
    assert first.json()["data"]["task_id"] != second.json()["data"]["task_id"]
    assert stats["submissions_per_external_id"] == {"bg-twice": 2}
    assert stats["tasks_total"] == 2 and stats["duplicate_external_id_refusals"] == 0


def test_a_refused_create_is_task_failed_with_klings_message() -> None:
    """Kling refusing a create (bad parameters) reaches the client as 400 task_failed (E12)."""
    with api() as a:
        too_long = a.create(prompt="x" * 501)
        not_json = a.client.post(COMETAPI_PATH, content=b"{not json")
    assert too_long.status_code == 400
    assert too_long.json() == relay_error("task_failed", "prompt: at most 500 characters (got 501)")
    assert not_json.status_code == 400
    assert not_json.json() == relay_error("task_failed", "body: not valid JSON")


def throttled_answers(count: int, **settings: Any) -> list[httpx.Response]:
    """`count` creates on a simulator whose one slot is taken by a long task."""
    with api(slots=1, latency=(30, 30), **settings) as a:
        assert a.create().status_code == 200
        return [a.create() for _ in range(count)]


def test_a_full_account_is_refused_in_either_relay_shape() -> None:
    """1303 comes back as 429 fail_to_fetch_task (rewritten message) or 400 task_failed."""
    answers = throttled_answers(16)
    shapes = {(a.status_code, json.dumps(a.json(), ensure_ascii=False)) for a in answers}
    assert shapes == {
        (429, json.dumps(relay_error("fail_to_fetch_task", SATURATED), ensure_ascii=False)),
        (400, json.dumps(relay_error("task_failed", "parallel task over resource pack limit"))),
    }


def test_too_many_requests_a_minute_are_refused_in_either_relay_shape() -> None:
    """Above `rpm`, 1302 comes back as 429 fail_to_fetch_task or 400 task_failed."""
    with api(rpm=2) as a:
        answers = [a.create() for _ in range(18)]
        stats = a.stats()
    refused = answers[2:]
    assert [r.status_code for r in answers[:2]] == [200, 200]
    assert {(r.status_code, r.json()["message"]) for r in refused} == {
        (429, SATURATED),
        (400, "request rate too high"),
    }
    assert stats["throttled_1302"] == 16


def test_retry_after_is_sent_on_some_429s_only_when_set() -> None:
    """With `retry_after` some throttling 429s carry `Retry-After: N`; without it none do."""
    with_header = [a for a in throttled_answers(24, retry_after=7) if a.status_code == 429]
    without = [a for a in throttled_answers(12) if a.status_code == 429]
    values = [a.headers.get("retry-after") for a in with_header]
    assert set(values) == {"7", None}
    assert without and all("retry-after" not in a.headers for a in without)


@pytest.mark.parametrize(
    ("code", "status", "expected"),
    [
        (1000, 401, "invalid token"),
        (1102, 403, {"code": None, "message": "user quota is not enough"}),
        (1101, 403, {"code": None, "message": "user quota is not enough"}),
        (1103, 403, "no permission for this model"),
        (1304, 403, "IP not allowed"),
        (1301, 400, relay_error("task_failed", "content-safety policy triggered")),
    ],
)
def test_account_errors_come_in_the_relays_envelopes(code: int, status: int, expected: Any) -> None:
    """`account_error` answers each create as the relay words that Kling code (E10, E12)."""
    with api(account_error=code) as a:
        answer = a.create()
        stats = a.stats()
    assert answer.status_code == status
    if isinstance(expected, str):
        gateway_error(answer, expected)
    else:
        assert answer.json() == expected
    assert stats["account_error_refusals"] == 1 and stats["tasks_total"] == 0


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, "1001"),
        ({"Authorization": "Bearer"}, "1001"),
        ({"Authorization": "Token sk-right"}, "1002"),
        ({"Authorization": "Bearer sk-wrong"}, "1000"),
    ],
)
def test_a_missing_or_wrong_key_answers_the_gateways_401(
    headers: dict[str, str], code: str
) -> None:
    """Any credential problem is the gateway's 401 "invalid token"; it is counted by code."""
    with api(api_key="sk-right") as a:
        refused = httpx.post(a.sim.base_url + COMETAPI_PATH, json={"image": IMAGE}, headers=headers)
        right = httpx.post(
            a.sim.base_url + COMETAPI_PATH,
            json={"image": IMAGE},
            headers={"Authorization": "Bearer sk-right"},
        )
        stats = a.stats()
    assert refused.status_code == 401
    gateway_error(refused, "invalid token")
    assert right.status_code == 200
    assert stats["auth_refusals"] == {code: 1} and stats["tasks_total"] == 1


def test_server_errors_on_creates_are_gateway_500s_or_no_channel_503s() -> None:
    """`error_rate` answers creates 500 (gateway, code "") or 503 model_not_found naming the
    model (E10), and records nothing."""
    with api(error_rate=1.0) as a:
        answers = [a.create(model_name="kling-v2-6") for _ in range(16)]
        stats = a.stats()
    assert {r.status_code for r in answers} == {500, 503}
    for answer in answers:
        if answer.status_code == 500:
            gateway_error(answer, "internal server error")
        else:
            error = answer.json()["error"]
            assert set(error) == {"code", "message", "type"} and error["code"] == "model_not_found"
            assert error["message"].startswith(
                "no available channel for group default and model kling-v2-6 (distributor) "
                "(request id: "
            )
    assert stats["tasks_total"] == 0 and stats["faults"]["server_error"] == 16


def test_server_errors_on_queries_carry_the_upstream_status() -> None:
    """A query meeting `error_rate` answers a gateway 500 or fail_to_fetch_task with Kling's
    5xx status and body (E12)."""
    with api() as a:
        task_id = a.task_id()
        a.sim.reconfigure(error_rate=1.0)
        answers = [a.get(task_id) for _ in range(20)]
    upstream = [r for r in answers if "code" in r.json()]
    assert upstream and len(upstream) < len(answers)
    for answer in upstream:
        body = answer.json()
        assert body["code"] == "fail_to_fetch_task" and body["data"] is None
        kling = json.loads(body["message"])
        assert (answer.status_code, kling["code"]) in {(500, 5000), (503, 5001), (504, 5002)}
    for answer in answers:
        if answer not in upstream:
            assert answer.status_code == 500
            gateway_error(answer, "internal server error")


def test_the_relay_api_key_is_never_shown() -> None:
    """GET /_sim/config shows the api_key as *** ."""
    with api(api_key="sk-secret-value") as a:
        shown = a.client.get("/_sim/config").json()
    assert shown["api_key"] == "***" and shown["profile"] == "cometapi"
    assert "sk-secret-value" not in json.dumps(shown)
