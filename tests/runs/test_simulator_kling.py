"""The kling profile: Kling's own API (kling-api.md §1, §2, §6, §17 E13-E25) — paths without
the /kling prefix, JWT auth, external ids deduplicated, echoed and looked up, the list."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.runs.test_simulator import COMETAPI_PATH, IMAGE, KLING_PATH, Api, api, token


@pytest.fixture(scope="module")
def kling() -> Iterator[Api]:
    """One kling simulator for the tests that only read answers."""
    with api(profile="kling", latency=(30, 30), slots=100) as a:
        yield a


def kling_error(answer: httpx.Response, status: int, code: int) -> None:
    """The answer is Kling's error envelope: that status and code, a request id, no data."""
    body = answer.json()
    assert answer.status_code == status
    assert set(body) == {"code", "message", "request_id"}
    assert body["code"] == code and body["message"] and body["request_id"]


def test_a_create_echoes_the_external_id_and_carries_a_request_id(kling: Api) -> None:
    """POST /v1/videos/image2video answers code 0 with request_id and task_info echoing the id."""
    answer = kling.create(external_task_id="bg-echo")
    body = answer.json()
    assert answer.status_code == 200 and kling.path == KLING_PATH
    assert body["code"] == 0 and body["request_id"]
    assert body["data"]["task_info"] == {"external_task_id": "bg-echo"}
    assert body["data"]["task_status"] == "submitted"


@pytest.mark.parametrize("form", ["path", "query"])
def test_a_look_up_by_external_id_is_answered_where_the_setting_says(form: str) -> None:
    """With lookup_form set, the form it names answers the task echoing its external id; the
    other form does not (kling-api.md §18.2 (1): the real location is unknown)."""
    with api(profile="kling", lookup_form=form) as a:
        task_id = a.task_id(external_task_id="bg-form")
        in_path = a.get("bg-form")
        in_query = a.client.get(KLING_PATH, params={"external_task_id": "bg-form"})
    answered, other = (in_path, in_query) if form == "path" else (in_query, in_path)
    assert answered.status_code == 200 and answered.json()["data"]["task_id"] == task_id
    assert answered.json()["data"]["task_info"] == {"external_task_id": "bg-form"}
    assert other.status_code == 404 or isinstance(other.json()["data"], list)


def test_by_default_no_form_answers_a_look_up_by_external_id(kling: Api) -> None:
    """The stingiest documented behaviour: the path form says not found (1203), the query
    form is only the list."""
    kling.create(external_task_id="bg-nowhere")
    kling_error(kling.get("bg-nowhere"), 404, 1203)
    listed = kling.client.get(KLING_PATH, params={"external_task_id": "bg-nowhere"})
    assert isinstance(listed.json()["data"], list)


def test_the_query_string_form_is_the_list_not_a_lookup(kling: Api) -> None:
    """GET …?external_task_id=X is the list endpoint: `data` is an array of every task."""
    kling.create(external_task_id="bg-query")
    kling.create(external_task_id="bg-query-other")
    answer = kling.client.get(KLING_PATH, params={"external_task_id": "bg-query"})
    assert answer.status_code == 200 and isinstance(answer.json()["data"], list)
    assert len(answer.json()["data"]) > 1


def test_an_unknown_id_answers_404_with_1203(kling: Api) -> None:
    """An id that is neither a task id nor an external id answers 404/1203."""
    kling_error(kling.get("no-such-task"), 404, 1203)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", COMETAPI_PATH),
        ("GET", COMETAPI_PATH + "/123"),
        ("GET", KLING_PATH + "/123/extra"),
        ("DELETE", KLING_PATH),
        ("GET", "/"),
    ],
)
def test_other_paths_answer_404_with_1202(kling: Api, method: str, path: str) -> None:
    """The relay's /kling prefix and any other path or method answer 404/1202 in JSON."""
    answer = kling.client.request(method, path)
    kling_error(answer, 404, 1202)
    assert answer.headers["content-type"] == "application/json"


def test_a_reused_external_task_id_is_refused_with_1201_where_set() -> None:
    """With refuses_reused_ids, a second create with the same external_task_id answers
    400/1201 with the configured message and makes no task."""
    with api(profile="kling", refuses_reused_ids=True) as a:
        assert a.create(external_task_id="bg-abc").status_code == 200
        again = a.create(external_task_id="bg-abc")
        stats = a.stats()
    kling_error(again, 400, 1201)
    assert again.json()["message"] == "external_task_id already exists"
    assert stats["submissions_per_external_id"] == {"bg-abc": 1} and stats["tasks_total"] == 1
    assert stats["duplicate_external_id_refusals"] == 1


def test_by_default_a_reused_external_task_id_makes_a_second_paid_task(kling: Api) -> None:
    """The docs say only that the id must be unique (§18.2 (2)): by default the simulator
    accepts a reuse, and so charges for it twice."""
    assert kling.create(external_task_id="bg-twice").status_code == 200
    assert kling.create(external_task_id="bg-twice").status_code == 200
    assert kling.stats()["submissions_per_external_id"]["bg-twice"] == 2


def test_the_list_pages_tasks_newest_first() -> None:
    """pageNum/pageSize page through the tasks, newest first; bad numbers answer 1201."""
    with api(profile="kling", slots=10) as a:
        ids = [a.task_id() for _ in range(5)]
        pages = [
            a.client.get(KLING_PATH, params={"pageNum": n, "pageSize": 2}) for n in (1, 2, 3, 4)
        ]
        default = a.client.get(KLING_PATH)
        too_big = a.client.get(KLING_PATH, params={"pageSize": 501})
        stats = a.stats()
    listed = [[t["task_id"] for t in page.json()["data"]] for page in pages]
    assert listed == [ids[4:2:-1], ids[2:0:-1], ids[:1], []]
    assert [t["task_id"] for t in default.json()["data"]] == ids[::-1]
    kling_error(too_big, 400, 1201)
    assert stats["list_calls"] == 6


@pytest.mark.parametrize(
    ("authorization", "code"),
    [
        (None, 1001),
        ("Bearer", 1001),
        (f"Token {token()}", 1002),
        ("Bearer not-a-jwt", 1000),
        (f"Bearer {token(secret='another-secret')}", 1000),
        (f"Bearer {token(access='someone-else')}", 1000),
        (f"Bearer {token(expires_in=-10)}", 1004),
        (f"Bearer {token(not_before=600)}", 1003),
    ],
)
def test_a_bad_jwt_answers_401_with_its_code(
    kling: Api, authorization: str | None, code: int
) -> None:
    """Missing (1001), not Bearer (1002), unverifiable (1000), expired (1004), not yet valid
    (1003): each answers 401 with that code and makes no task."""
    headers = {} if authorization is None else {"Authorization": authorization}
    before = kling.stats()["tasks_total"]
    answer = httpx.post(kling.sim.base_url + KLING_PATH, json={"image": IMAGE}, headers=headers)
    kling_error(answer, 401, code)
    assert kling.stats()["tasks_total"] == before


def test_jwt_refusals_are_counted_by_code() -> None:
    """Each auth refusal is counted under its code; a good JWT is let in."""
    with api(profile="kling", access_key="ak-1", secret_key="sk-1" * 8) as a:
        url = a.sim.base_url + KLING_PATH
        good = {"Authorization": f"Bearer {token('ak-1', 'sk-1' * 8)}"}
        expired = {"Authorization": f"Bearer {token('ak-1', 'sk-1' * 8, expires_in=-1)}"}
        answers = [httpx.post(url, json={"image": IMAGE}, headers=h) for h in (good, expired, {})]
        stats = a.stats()
    assert [r.status_code for r in answers] == [200, 401, 401]
    assert stats["auth_refusals"] == {"1001": 1, "1004": 1}


@pytest.mark.parametrize(("code", "status"), [(1102, 429), (1103, 403), (1304, 429), (1000, 401)])
def test_an_account_error_answers_its_code_and_status(code: int, status: int) -> None:
    """`account_error` makes each create answer that code with its HTTP status from §6."""
    with api(profile="kling", account_error=code) as a:
        answer = a.create()
        a.sim.reconfigure(account_error=None)
        after = a.create()
    kling_error(answer, status, code)
    assert after.status_code == 200


def test_throttling_answers_1303_and_1302() -> None:
    """A full account answers 429/1303; above `rpm` requests a minute, 429/1302."""
    with api(profile="kling", slots=1, latency=(30, 30), rpm=3) as a:
        answers = [a.create() for _ in range(4)]
        stats = a.stats()
    assert answers[0].status_code == 200
    kling_error(answers[1], 429, 1303)
    assert answers[1].json()["message"] == "parallel task over resource pack limit"
    kling_error(answers[3], 429, 1302)
    assert stats["throttled_1303"] == 2 and stats["throttled_1302"] == 1


def test_server_errors_use_klings_5xx_codes() -> None:
    """`error_rate` answers 500/5000, 503/5001 or 504/5002 and records nothing."""
    with api(profile="kling", error_rate=1.0) as a:
        answers = [a.create() for _ in range(12)]
        stats = a.stats()
    assert {(r.status_code, r.json()["code"]) for r in answers} == {
        (500, 5000), (503, 5001), (504, 5002),
    }  # fmt: skip
    assert stats["tasks_total"] == 0


def test_bad_bodies_answer_1201_and_non_json_1200(kling: Api) -> None:
    """A body that breaks a shape rule (here Kling's own 2500-character prompt limit, not the
    relay's 500) answers 400/1201 naming the field; non-JSON 400/1200."""
    assert kling.create(prompt="x" * 2500).status_code == 200
    too_long = kling.create(prompt="x" * 2501)
    not_json = kling.client.post(KLING_PATH, content=b"{not json")
    kling_error(too_long, 400, 1201)
    assert too_long.json()["message"].startswith("prompt")
    kling_error(not_json, 400, 1200)


def test_a_finished_task_reports_its_units() -> None:
    """A succeeded task carries final_unit_deduction, a string of units."""
    with api(profile="kling") as a:
        done = a.wait_until_done(a.task_id(model_name="kling-v2-6", mode="pro"))
    assert done["task_status"] == "succeed" and done["final_unit_deduction"] == "2.5"


def test_the_secret_key_is_never_shown(kling: Api) -> None:
    """GET /_sim/config shows the secret key as *** and the access key as set."""
    shown = kling.client.get("/_sim/config").json()
    assert shown["secret_key"] == "***" and shown["access_key"] == "sim-access"
