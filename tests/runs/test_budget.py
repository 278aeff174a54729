"""--budget holds while the run goes: nothing is submitted past it, what is paid for finishes,
exit 3, and the same command with a larger budget goes on without paying twice."""

from __future__ import annotations

import json

import pytest

from tests.conftest import run_cli, simulator, write_manifest


@pytest.mark.parametrize(("profile", "slots"), [("cometapi", 4), ("kling", 4), ("cometapi", 16)])
def test_a_budget_worth_ten_jobs_submits_ten_then_resumes_with_more(
    tmp_path, capsys, profile, slots, database
):
    """20 jobs, a budget for 10: at most 10 creates, exit 3 naming the budget; a larger
    budget finishes the rest, each job paid once. With 16 slots the first creates leave
    together, more of them than the budget allows."""
    manifest = write_manifest(tmp_path, 20)
    out = tmp_path / "out"
    price = 1.32 if profile == "cometapi" else 10 * 0.14
    with simulator(profile=profile, slots=slots) as sim:
        args = ("run", manifest, "-o", out, "-c", str(slots))
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
