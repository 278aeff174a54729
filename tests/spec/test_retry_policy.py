"""What the run does after each kind of failed create: a pure decision per error class."""

from __future__ import annotations

import random

import pytest

from batchgen.errors import (
    AccountError,
    ConnectFailed,
    DuplicateExternalId,
    JobRejected,
    OutcomeUnknown,
    ProviderUnreachable,
    RetryableError,
    ThrottledError,
)
from batchgen.runner.policy import Action, RetryPolicy


@pytest.mark.parametrize(
    ("error", "action"),
    [
        (AccountError("no balance", code=1102), Action.STOP_RUN),
        (ProviderUnreachable("redirected"), Action.STOP_RUN),
        (DuplicateExternalId("exists", code=1201), Action.SETTLE),
        (OutcomeUnknown("answer lost"), Action.SETTLE),
        (ThrottledError("full", code=1303), Action.WAIT),
        (ConnectFailed("refused"), Action.WAIT),
        (RetryableError("boom", code=5000), Action.RETRY),
        (JobRejected("bad prompt", code=1201), Action.FAIL_JOB),
    ],
)
def test_each_error_class_has_its_action(error, action):
    """Account → stop; may exist → settle; throttled or unreachable → wait; refused → retry."""
    assert RetryPolicy().decide(error, 0, 1, random.Random(0)).action == action


def test_transient_errors_give_up_after_the_attempt_budget():
    """A job that keeps being refused with 5xx fails after max_attempts, the reason kept."""
    policy = RetryPolicy(max_attempts=3)
    decision = policy.decide(RetryableError("boom", code=5000), 2, 0, random.Random(0))
    assert decision.action == Action.FAIL_JOB and "boom" in decision.reason


def test_backoff_grows_and_stays_bounded():
    """Back-off ceilings double per attempt and never pass max_delay."""
    policy = RetryPolicy(base_delay=1.0, max_delay=8.0)
    rng = random.Random(1)
    for attempt in range(1, 12):
        delay = policy.backoff(attempt, rng)
        assert 0.5 <= delay <= min(8.0, 2 ** (attempt - 1))


def test_throttling_never_counts_as_failure_and_waits_longer_in_a_row():
    """However many throttles a job meets it waits, from 1 s, longer as they repeat."""
    policy = RetryPolicy(max_attempts=2, throttle_max=64.0)
    rng = random.Random(0)
    ceilings = []
    for throttles in range(1, 8):
        decision = policy.decide(ThrottledError("full", code=1303), 5, throttles, rng)
        assert decision.action == Action.WAIT and decision.delay >= 1.0
        ceilings.append(min(64.0, 2 ** (throttles - 1)))
        assert ceilings[-1] / 2 <= decision.delay <= max(1.0, ceilings[-1])


def test_throttle_waits_are_jittered():
    """Two runs throttled at the same moment do not retry in lockstep."""
    policy = RetryPolicy()
    waits = {policy.throttle_wait(5, random.Random(seed)) for seed in range(20)}
    assert len(waits) > 10


def test_retry_after_is_honoured():
    """A Retry-After longer than the back-off is waited out."""
    error = ThrottledError("slow down", http_status=429, retry_after=42.0)
    assert RetryPolicy().decide(error, 0, 1, random.Random(0)).delay >= 42.0
