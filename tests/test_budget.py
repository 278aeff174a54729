"""--budget holds while the run goes: nothing is submitted past it, what is paid for finishes,
exit 3, and the same command with a larger budget goes on without paying twice."""

from __future__ import annotations

import json

import pytest

from batchgen.budget import Budget, Ledger, PricedGroup
from batchgen.price_table import load_prices
from batchgen.status import JobStatus as S
from tests.conftest import run_cli, simulator, write_manifest

MASTER = {"model_name": "kling-v2-master", "duration": "5"}  # CometAPI: $1.32 a request
V3_PRO_8_SOUND = {"model_name": "kling-v3", "mode": "pro", "duration": "8", "sound": "on"}


@pytest.mark.parametrize("profile", ["cometapi", "kling"])
def test_a_budget_worth_ten_jobs_submits_ten_then_resumes_with_more(tmp_path, capsys, profile):
    """20 jobs, a budget for 10: at most 10 creates, exit 3 naming the budget; a larger
    budget finishes the rest, each job paid once."""
    manifest = write_manifest(tmp_path, 20)
    out = tmp_path / "out"
    price = 1.32 if profile == "cometapi" else 10 * 0.14
    with simulator(profile=profile, slots=4) as sim:
        args = ("run", manifest, "-o", out, "-c", "4")
        budget = f"{10 * price:.2f}"
        code = run_cli(*args, "--budget", budget, base_url=sim.base_url, profile=profile)
        err = capsys.readouterr().err
        assert code == 3, err
        assert sim.stats()["creates_accepted"] == 10
        assert f"budget ${float(budget):,.2f} reached" in err and "left" in err
        code = run_cli(*args, "--budget", "1000", base_url=sim.base_url, profile=profile)
        assert code == 0
        accepted = sim.stats()["submissions_per_external_id"]
    assert len(accepted) == 20 and set(accepted.values()) == {1}


def test_a_job_without_a_price_cannot_run_under_a_budget(tmp_path, capsys):
    """A budget cannot be kept for a job of unknown price: exit 2 before anything is sent."""
    manifest = write_manifest(tmp_path, 2)
    prices = tmp_path / "prices.json"
    unknown = {"-": {"5": None}}
    prices.write_text(
        json.dumps({"models": {"kling-v2-master": {"units": unknown, "usd": unknown}}})
    )
    with simulator() as sim:
        args = ("run", manifest, "-o", tmp_path / "out", "--budget", "100", "--prices", prices)
        code = run_cli(*args, base_url=sim.base_url)
        assert sim.stats()["creates_received"] == 0
    assert code == 2
    assert "no known price for kling-v2-master/-/5" in capsys.readouterr().err


def ledger(bills_in_units: bool) -> Ledger:
    return Ledger(load_prices(), bills_in_units=bills_in_units)


def test_committed_money_follows_each_job_and_done_jobs_are_spent():
    """Submitted: its high price committed; done: its cost spent; failed: nothing left."""
    book = ledger(bills_in_units=False)
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
    book = ledger(bills_in_units=True)
    book.moved(V3_PRO_8_SOUND, "9.72", S.DOWNLOADING, S.DONE)
    book.moved(V3_PRO_8_SOUND, "1", S.RUNNING, S.FAILED)
    assert book.spent == pytest.approx((9.72 + 1) * 0.14)


def test_a_kling_v3_pro_8_s_sound_row_is_reserved_at_its_high_price():
    """kling-v3 pro with sound bills per second: 8 s reserves 9 s × 1.2 units × $0.14."""
    assert ledger(bills_in_units=True).reserve(V3_PRO_8_SOUND) == pytest.approx(9 * 1.2 * 0.14)


def test_a_resumed_state_starts_from_what_it_holds():
    """Loading the state's groups counts done jobs as spent and unknown ones as committed."""
    book = ledger(bills_in_units=False)
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
