"""How provider answers are classified: both envelopes, every retry class of §6 and §16."""

from __future__ import annotations

import random

import pytest

from batchgen.errors import (
    AccountError,
    DuplicateExternalId,
    JobRejected,
    RetryableError,
    TaskNotFound,
    ThrottledError,
)
from batchgen.kling import classify, parse_task
from batchgen.policy import Action, RetryPolicy


def kling(code: int, message: str = "x") -> dict[str, object]:
    return {"code": code, "message": message, "request_id": "r1"}


def gateway(code: str = "", message: str = "upstream error") -> dict[str, object]:
    return {"error": {"message": message, "type": "comet_api_error", "param": "", "code": code}}


@pytest.mark.parametrize(
    ("http", "body", "kind"),
    [
        (401, kling(1000), AccountError),
        (401, kling(1001), AccountError),
        (429, kling(1101), AccountError),
        (429, kling(1102), AccountError),
        (403, kling(1103), AccountError),
        (429, kling(1304), AccountError),
        (429, kling(1302), ThrottledError),
        (429, kling(1303), ThrottledError),
        (400, kling(1200), JobRejected),
        (400, kling(1301), JobRejected),
        (400, kling(1201, "external_task_id already exists"), DuplicateExternalId),
        (400, kling(1201, "prompt too long"), JobRejected),
        (500, kling(5000), RetryableError),
        (503, kling(5001), RetryableError),
        (504, kling(5002), RetryableError),
        (502, gateway(), RetryableError),
        (500, gateway("invalid_request"), JobRejected),
        (429, gateway(), ThrottledError),
        (401, gateway(), AccountError),
        (400, gateway(), JobRejected),
        (503, None, RetryableError),
        (504, "<html>gateway timeout</html>", RetryableError),
    ],
)
def test_answers_are_classified_by_code_then_http_status(http, body, kind):
    """Business codes decide where present; the gateway envelope and bare bodies go by HTTP."""
    assert isinstance(classify(http, body), kind)


def test_a_429_for_the_balance_is_not_mistaken_for_throttling():
    """HTTP 429 is shared by account problems and throttling: the code decides (§6)."""
    assert isinstance(classify(429, kling(1102)), AccountError)
    assert isinstance(classify(429, kling(1303)), ThrottledError)


def test_not_found_on_a_query_is_task_not_found():
    """A 1203 on a query means the provider has no such task."""
    assert isinstance(classify(404, kling(1203), request_kind="query"), TaskNotFound)


def test_success_is_not_an_error():
    """code 0 with HTTP 200 is a success."""
    assert classify(200, {"code": 0, "message": "SUCCEED", "data": {}}) is None


def test_account_errors_say_what_to_fix():
    """An account-level error names the fix, e.g. topping up the balance."""
    error = classify(429, kling(1101, "account in arrears"))
    assert "top up" in str(error)


def test_task_parsing_reads_the_documented_shape():
    """A succeeded task yields its video URL, duration and the units charged."""
    task = parse_task(
        {
            "task_id": 2032273942220931072,
            "task_status": "succeed",
            "task_info": {"external_task_id": "bg-1"},
            "task_result": {"videos": [{"id": "v", "url": "http://x/v.mp4", "duration": 5}]},
            "final_unit_deduction": 10,
            "created_at": "1722769557708",
        }
    )
    assert task.task_id == "2032273942220931072"
    assert (task.video_url, task.video_duration, task.final_unit_deduction) == (
        "http://x/v.mp4",
        "5",
        "10",
    )
    assert task.created_at == 1722769557708 and task.terminal


@pytest.mark.parametrize(
    ("error", "action"),
    [
        (AccountError("no balance", code=1102), Action.STOP_RUN),
        (DuplicateExternalId("exists", code=1201), Action.ADOPT),
        (ThrottledError("full", code=1303), Action.WAIT),
        (RetryableError("boom", code=5000), Action.RETRY),
        (JobRejected("bad prompt", code=1201), Action.FAIL_JOB),
    ],
)
def test_each_error_class_has_its_action(error, action):
    """Retry policy: account → stop, 1201 → adopt, throttle → wait, 5xx → retry, else fail."""
    assert RetryPolicy().decide(error, 0, random.Random(0)).action == action


def test_transient_errors_give_up_after_the_attempt_budget():
    """A job that keeps hitting 5xx fails after max_attempts, with the reason kept."""
    policy = RetryPolicy(max_attempts=3)
    decision = policy.decide(RetryableError("boom", code=5000), 2, random.Random(0))
    assert decision.action == Action.FAIL_JOB and "boom" in decision.reason


def test_backoff_grows_and_stays_bounded():
    """Back-off ceilings double per attempt and never pass max_delay."""
    policy = RetryPolicy(base_delay=1.0, max_delay=8.0)
    rng = random.Random(1)
    for attempt in range(1, 12):
        delay = policy.backoff(attempt, rng)
        assert 0.5 <= delay <= min(8.0, 2 ** (attempt - 1))


def test_throttling_never_counts_as_failure():
    """However many 1303s a job meets, the decision is to wait, never to fail."""
    policy = RetryPolicy(max_attempts=2)
    for attempts in range(10):
        decision = policy.decide(ThrottledError("full", code=1303), attempts, random.Random(0))
        assert decision.action == Action.WAIT and decision.delay >= 1.0
