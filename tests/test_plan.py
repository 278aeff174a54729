"""The plan: job counts, breakdown, estimated cost and wall time; prices; the max_cost check."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from batchgen.errors import CostLimitExceeded, Problem, UsageError
from batchgen.jobs import JobSpec, make_job
from batchgen.plan import PlanLine, build_plan, duration_text
from batchgen.pricing import check_max_cost, estimate_cost, load_prices
from batchgen.resolve import resolve_manifest

EXAMPLES = Path(__file__).resolve().parent.parent / "manifests"


def job(model: str, mode: str | None = None, duration: str = "5", n: int = 0) -> JobSpec:
    request = {"model_name": model, "duration": duration, "prompt": f"p{n}"}
    if mode:
        request["mode"] = mode
    return make_job(request, f"r{n}")


def test_demo_plan_numbers() -> None:
    """The demo: 6 kling-v2-master jobs, $9.24 and 70 units, 2 waves of 120 s at concurrency 4."""
    summary = build_plan(resolve_manifest(EXAMPLES / "demo.yaml").iter_jobs(), concurrency=4)
    assert summary.jobs == 6 and summary.problems == 0
    assert summary.breakdown == (
        PlanLine("kling-v2-master", "-", "5", 5, 6.6, 50.0),
        PlanLine("kling-v2-master", "-", "10", 1, 2.64, 20.0),
    )
    assert summary.cost_usd == pytest.approx(9.24) and summary.units == 70
    assert summary.unknown_price_jobs == 0
    assert summary.wall_seconds == 240.0


def test_matrix_plan_breaks_down_by_mode_and_duration() -> None:
    """The matrix example: 18 kling-v2-1 jobs split over std/pro and 5/10 s."""
    summary = build_plan(resolve_manifest(EXAMPLES / "matrix.yaml").iter_jobs())
    counts = {(line.mode, line.duration): line.jobs for line in summary.breakdown}
    assert counts == {("std", "5"): 4, ("std", "10"): 4, ("pro", "5"): 5, ("pro", "10"): 5}
    assert summary.cost_usd == pytest.approx(4 * 0.26 + 4 * 0.53 + 5 * 0.46 + 5 * 0.92)


def test_unknown_prices_are_unknown_not_zero() -> None:
    """kling-v3 jobs are counted as unpriced; the total covers only priced jobs."""
    jobs = [
        job("kling-v3", "pro", "8", 1),
        job("kling-v3", "std", "5", 2),
        job("kling-v1", "std", n=3),
    ]
    summary = build_plan(jobs, concurrency=2, generation_seconds=60)
    assert summary.cost_usd == pytest.approx(0.13) and summary.unknown_price_jobs == 2
    assert summary.cost.unknown_units == 2 and not summary.cost.complete
    v3 = [line for line in summary.breakdown if line.model == "kling-v3"]
    assert all(line.usd is None and line.units is None for line in v3)
    text = summary.render()
    assert "2 job(s) at unknown price" in text and "kling-v3/pro/8" in text and "?" in text


def test_unset_model_mode_and_duration_use_api_defaults() -> None:
    """A request without model, mode or duration is priced as kling-v1 std 5 s."""
    estimate = estimate_cost([make_job({"image": "https://x/a.jpg"}, "r")])
    assert estimate.usd == pytest.approx(0.13) and estimate.units == 1


def test_problems_are_counted_not_planned() -> None:
    """Problems in the stream are counted in the plan, not priced."""
    summary = build_plan([job("kling-v1", "std"), Problem("r", 3, "prompt", "too long")])
    assert summary.jobs == 1 and summary.problems == 1 and "1 problem(s)" in summary.render()


def test_wall_time_is_waves_of_concurrency() -> None:
    """Wall time is ceil(jobs / concurrency) generations."""
    jobs = [job("kling-v1", "std", n=i) for i in range(9)]
    assert build_plan(jobs, concurrency=4, generation_seconds=100).wall_seconds == 300
    assert duration_text(300) == "5 min" and duration_text(3900) == "1 h 05 min"


def test_render_shows_cost_units_and_time() -> None:
    """The human plan names the price date, the totals and the assumptions."""
    text = build_plan([job("kling-v2-master")], concurrency=4).render()
    assert "$1.32" in text and "2026-11-24" in text and "Kling units: 10" in text
    assert "concurrency 4" in text and "120 s per generation" in text


def test_max_cost_is_enforced() -> None:
    """An estimate above max_cost raises CostLimitExceeded; at or below it passes."""
    estimate = estimate_cost([job("kling-v2-master", n=i) for i in range(10)])
    assert estimate.usd == pytest.approx(13.2)
    check_max_cost(estimate, None)
    check_max_cost(estimate, 13.2)
    with pytest.raises(CostLimitExceeded, match=r"\$13.20"):
        check_max_cost(estimate, 13.0)


def test_max_cost_refuses_jobs_without_a_price() -> None:
    """With unpriced jobs a cost limit cannot be kept, so it is refused, naming them."""
    estimate = estimate_cost([job("kling-v3", "pro")])
    with pytest.raises(CostLimitExceeded, match="kling-v3/pro/5"):
        check_max_cost(estimate, 1000.0)


def test_package_price_table_is_dated_and_sourced() -> None:
    """The shipped table says when it was taken and where from."""
    table = load_prices()
    assert table.taken == "2026-11-24" and table.sources
    assert table.price(("kling-v1", "pro", "10")).usd == 0.92
    assert table.price(("kling-v3", "pro", "5")).usd is None


def test_user_price_file_overrides_cells(tmp_path: Path) -> None:
    """A user price file replaces the cells it has and keeps the others."""
    path = tmp_path / "prices.json"
    user = {
        "taken": "2027-01-01",
        "prices": {
            "kling-v3": {"pro": {"5": {"usd": 0.9}}},
            "kling-v1": {"std": {"5": {"usd": 0.1, "units": 1}}},
        },
    }
    path.write_text(json.dumps(user))
    table = load_prices(path)
    assert table.taken == "2027-01-01"
    assert table.price(("kling-v3", "pro", "5")).usd == 0.9
    assert table.price(("kling-v1", "std", "5")).usd == 0.1
    assert table.price(("kling-v1", "pro", "5")).usd == 0.46
    check_max_cost(estimate_cost([job("kling-v3", "pro")], table), 1.0)


@pytest.mark.parametrize(
    "text", ["not json", '{"prices": {}}', '{"taken": "x", "prices": {"m": 1}}']
)
def test_bad_price_file_is_a_usage_error(tmp_path: Path, text: str) -> None:
    """A price file that is not JSON of the table's shape raises UsageError naming it."""
    path = tmp_path / "prices.json"
    path.write_text(text)
    with pytest.raises(UsageError, match=r"prices\.json"):
        load_prices(path)
