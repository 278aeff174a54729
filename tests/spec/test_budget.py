"""--budget holds while the run goes: nothing is submitted past it, what is paid for finishes,
exit 3, and the same command with a larger budget goes on without paying twice."""

from __future__ import annotations

import pytest

from batchgen.money.budget import Budget, PricedGroup, Tally
from batchgen.money.price_table import load_prices
from batchgen.status import JobStatus as S

MASTER = {"model_name": "kling-v2-master", "duration": "5"}  # CometAPI: $1.32 a request
V3_PRO_8_SOUND = {"model_name": "kling-v3", "mode": "pro", "duration": "8", "sound": "on"}


def tally(bills_in_units: bool) -> Tally:
    return Tally(load_prices(), bills_in_units=bills_in_units)


def test_committed_money_follows_each_job_and_done_jobs_are_spent():
    """Submitted: its high price committed; done: its cost spent; failed: nothing left."""
    book = tally(bills_in_units=False)
    book.moved(MASTER, None, S.PENDING, S.SUBMITTING)
    assert book.committed == pytest.approx(1.32) and book.spent == 0
    book.moved(MASTER, None, S.SUBMITTING, S.SUBMITTED)
    book.moved(MASTER, None, S.SUBMITTED, S.DOWNLOADING)
    book.moved(MASTER, "10", S.DOWNLOADING, S.DONE)
    assert book.committed == pytest.approx(0) and book.spent == pytest.approx(1.32)
    book.moved(MASTER, None, S.PENDING, S.SUBMITTING)
    book.moved(MASTER, None, S.SUBMITTING, S.FAILED)
    assert book.committed == pytest.approx(0) and book.spent == pytest.approx(1.32)


def test_on_klings_own_api_the_units_charged_are_what_is_spent():
    """With Kling's own API, a done task costs its final_unit_deduction × the unit price, and
    a failure the provider says it charged is spent too."""
    book = tally(bills_in_units=True)
    book.moved(V3_PRO_8_SOUND, "9.72", S.DOWNLOADING, S.DONE)
    book.moved(V3_PRO_8_SOUND, "1", S.RUNNING, S.FAILED)
    assert book.spent == pytest.approx((9.72 + 1) * 0.14)


def test_a_kling_v3_pro_8_s_sound_row_is_reserved_at_its_high_price():
    """kling-v3 pro with sound bills per second: 8 s reserves 9 s × 1.2 units × $0.14."""
    assert tally(bills_in_units=True).reserve(V3_PRO_8_SOUND) == pytest.approx(9 * 1.2 * 0.14)


def test_a_resumed_state_starts_from_what_it_holds():
    """Loading the state's groups counts done jobs as spent and unknown ones as committed."""
    book = tally(bills_in_units=False)
    book.load(
        [
            PricedGroup(S.DONE, MASTER, 3, 30.0, 3),
            PricedGroup(S.UNKNOWN, MASTER, 1, 0.0, 0),
            PricedGroup(S.PENDING, MASTER, 5, 0.0, 0),
        ]
    )
    budget = Budget(10.0, book)
    assert book.spent == pytest.approx(3 * 1.32) and book.committed == pytest.approx(1.32)
    assert budget.left == pytest.approx(10 - 4 * 1.32) and budget.fits(MASTER)
