"""Prices and the plan: the price table and its overlays, one request's price, low / expected /
high estimates, the max_cost check, wall time."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from batchgen.errors import CostLimitExceeded, Problem, UsageError
from batchgen.jobs import JobSpec, make_job
from batchgen.manifest.capabilities import CAPABILITIES
from batchgen.manifest.resolve import resolve_manifest
from batchgen.money.plan import build_plan, duration_text
from batchgen.money.price_table import PER_SECOND, load_prices, tiers_of
from batchgen.money.pricing import (
    UNIT_USD,
    check_max_cost,
    estimate_cost,
    price_of,
    price_range,
    usd_of_units,
)
from tests.conftest import run_cli

EXAMPLES = Path(__file__).resolve().parents[2] / "manifests"
EXAMPLE_MANIFESTS = sorted(p.name for p in EXAMPLES.iterdir() if p.suffix in (".yaml", ".csv"))


def job(
    model: str, mode: str | None = None, duration: str = "5", n: int = 0, **extra: Any
) -> JobSpec:
    request = {"model_name": model, "duration": duration, "prompt": f"p{n}", **extra}
    if mode:
        request["mode"] = mode
    return make_job(request, f"r{n}")


def write_prices(folder: Path, document: Any) -> Path:
    path = folder / "prices.json"
    path.write_text(document if isinstance(document, str) else json.dumps(document))
    return path


def test_kling_v3_pro_8_s_with_sound_is_priced_from_the_price_page() -> None:
    """kling-v3 pro with audio is 1.2 units a second (E24): 8 s is 9.6 units, $1.344 at $0.14."""
    prices = price_range(("kling-v3", "pro+sound", "8"), load_prices())
    assert prices.low.units == pytest.approx(9.6) and prices.low.usd == pytest.approx(1.344)
    assert prices.low.basis == "units"
    assert prices.expected.units == pytest.approx(1.2 * 8.1)  # real length: 0.1 s over (E16)
    assert prices.high.units == pytest.approx(1.2 * 9) and prices.high.usd == pytest.approx(1.512)


def test_price_of_one_request_for_the_run_time_budget() -> None:
    """price_of prices one request (expected by default, any bound on demand); usd_of_units
    turns units into dollars."""
    request = {"model_name": "kling-v3", "mode": "pro", "duration": "8", "sound": "on"}
    assert price_of(request).usd == pytest.approx(1.2 * 8.1 * 0.14)
    assert price_of(request, bound="high").units == pytest.approx(10.8)
    assert price_of({"image": "x"}).usd == 0.13  # kling-v1 std 5 s, the API's defaults
    assert usd_of_units(10) == pytest.approx(1.4) and UNIT_USD == 0.14
    assert usd_of_units(10, unit_usd=0.2) == pytest.approx(2.0)


def test_cometapi_price_per_request_is_used_where_known() -> None:
    """kling-v2-5-turbo pro has a CometAPI price ($0.33), fixed; std only Kling units."""
    pro = price_range(("kling-v2-5-turbo", "pro", "5"), load_prices())
    assert (pro.low.usd, pro.expected.usd, pro.high.usd) == (0.33, 0.33, 0.33)
    assert pro.expected.basis == "cometapi" and pro.expected.units == pytest.approx(2.55)
    std = price_range(("kling-v2-5-turbo", "std", "5"), load_prices())
    assert std.expected.basis == "units" and std.low.usd == pytest.approx(1.5 * 0.14)


@pytest.mark.parametrize("model", sorted(CAPABILITIES))
def test_every_model_in_the_catalogue_has_a_price_in_units_and_dollars(model: str) -> None:
    """Every mode (or no mode) of every model, silent, at every duration: units and dollars."""
    capability = CAPABILITIES[model]
    for tier in capability.modes or ("-",):
        for duration in capability.durations:
            prices = price_range((model, tier, duration), load_prices())
            assert prices.low.units is not None and prices.low.usd is not None, (tier, duration)


def test_every_figure_names_a_dated_source() -> None:
    """The shipped table says where each figure comes from and when it was taken."""
    table = load_prices()
    assert table.taken == "2026-11-25" and table.unit_usd.value == 0.14
    used = {figure.source for figure in table.figures.values()}
    used |= {table.unit_usd.source, table.overrun.source}
    for source in used:
        assert table.sources[source].taken and table.sources[source].what, source


def test_a_truly_unknown_price_is_unknown_not_zero() -> None:
    """kling-v3 with a voice list has no published price: unknown, counted, never $0."""
    unknown = job("kling-v3", "pro", "8", sound="on", voice_list=[{"voice_id": "v"}])
    summary = build_plan([unknown, job("kling-v1", "std", n=2)], concurrency=2)
    assert summary.cost_usd == pytest.approx(0.13) and summary.unknown_price_jobs == 1
    (v3,) = [line for line in summary.breakdown if line.model == "kling-v3"]
    assert v3.tier == "pro+voice" and v3.usd is None and v3.units is None
    text = summary.render()
    assert "1 job(s) at unknown price (kling-v3/pro+voice/8)" in text and "?" in text


@pytest.mark.parametrize("name", EXAMPLE_MANIFESTS)
def test_every_example_manifest_is_priced(name: str) -> None:
    """Planning each example in manifests/ prices every job: no unknown dollars or units."""
    summary = build_plan(resolve_manifest(EXAMPLES / name).iter_jobs())
    assert summary.jobs > 0 and summary.problems == 0
    assert summary.cost.unknown_usd == 0 and summary.cost.unknown_units == 0


def test_plan_shows_low_expected_and_high_and_the_price_assumed() -> None:
    """Per-second jobs spread low / expected / high; per-request ones do not; each line says the
    dollars of one job and where they come from."""
    jobs = [job("kling-v3", "pro", "8", sound="on"), job("kling-v2-master", n=1)]
    summary = build_plan(jobs)
    cost = summary.cost
    assert cost.usd_low == pytest.approx(1.344 + 1.32)
    assert cost.usd == pytest.approx(1.2 * 8.1 * 0.14 + 1.32)
    assert cost.usd_high == pytest.approx(1.512 + 1.32)
    master, v3 = summary.breakdown
    assert (master.usd_each, master.basis) == (1.32, "cometapi")
    assert v3.basis == "units" and v3.usd_each == pytest.approx(1.2 * 8.1 * 0.14)
    text = summary.render()
    assert "low $2.66 · expected $2.68 · high $2.83" in text
    assert "1.320C" in text and "1.361K" in text and "K = Kling units x $0.14" in text
    assert "--max-cost is checked against the high estimate" in text


def test_max_cost_is_checked_against_the_high_estimate() -> None:
    """A limit between the expected and the high estimate is refused; at the high one it passes."""
    estimate = estimate_cost([job("kling-v3", "pro", "8", n=i, sound="on") for i in range(10)])
    assert estimate.usd == pytest.approx(13.608) and estimate.usd_high == pytest.approx(15.12)
    check_max_cost(estimate, None)
    check_max_cost(estimate, 15.12)
    with pytest.raises(CostLimitExceeded, match=r"high estimate \$15.12.*expected \$13.61"):
        check_max_cost(estimate, 14.0)


def test_max_cost_refuses_jobs_without_a_price() -> None:
    """With unpriced jobs a cost limit cannot be kept, so it is refused, naming them."""
    estimate = estimate_cost([job("kling-v3", "pro", sound="on", voice_list=[{"voice_id": "v"}])])
    with pytest.raises(CostLimitExceeded, match="kling-v3/pro\\+voice/5"):
        check_max_cost(estimate, 1000.0)


def test_a_price_file_overlays_one_cell_and_keeps_the_rest(tmp_path: Path) -> None:
    """A file with one figure replaces that figure only; it is attributed to the file."""
    path = write_prices(tmp_path, {"models": {"kling-v1": {"usd": {"std": {"5": 0.1}}}}})
    table = load_prices(path)
    assert table.figure("kling-v1", "usd", "std", "5")[0].value == 0.1  # type: ignore[union-attr]
    assert table.figure("kling-v1", "usd", "std", "5")[0].source == str(path)  # type: ignore[union-attr]
    assert table.figure("kling-v1", "usd", "pro", "5")[0].value == 0.46  # type: ignore[union-attr]
    assert table.taken == "2026-11-25" and table.unit_usd.value == 0.14


def test_a_price_file_overlays_one_model_the_date_or_the_unit_price(tmp_path: Path) -> None:
    """A model's tier given per second replaces its clip prices; the date and unit price too."""
    user = {"taken": "2027-01-01", "unit_usd": 0.2, "models": {"kling-v1": {"units": {"std": 0.3}}}}
    table = load_prices(write_prices(tmp_path, user))
    assert table.taken == "2027-01-01" and table.unit_usd.value == 0.2
    assert table.figure("kling-v1", "units", "std", "10") == (
        table.figures[("kling-v1", "units", "std", PER_SECOND)],
        True,
    )
    assert price_range(("kling-v1", "std", "10"), table).low.units == pytest.approx(3.0)
    assert price_range(("kling-v3", "pro", "5"), table).low.usd == pytest.approx(0.8 * 5 * 0.2)


def test_a_price_file_can_price_what_the_package_does_not_know(tmp_path: Path) -> None:
    """Pricing kling-v3 voice control makes a --max-cost run of such jobs possible."""
    user = {"models": {"kling-v3": {"units": {"pro+voice": 1.5}}}}
    table = load_prices(write_prices(tmp_path, user))
    voiced = job("kling-v3", "pro", sound="on", voice_list=[{"voice_id": "v"}])
    check_max_cost(estimate_cost([voiced], table), 1.26)  # 1.5 u/s x 6 s x $0.14


MALFORMED = [
    ("not json", "prices.json: not JSON"),
    ("[1, 2]", "prices.json: expected an object of prices"),
    (
        {"models": {"kling-v3": {"units": {"pro": {"5": "a lot"}}}}},
        "prices.json: models.kling-v3.units.pro.5: expected a number",
    ),
    (
        {"models": {"kling-v3": {"units": {"pro": [1]}}}},
        "prices.json: models.kling-v3.units.pro: expected a number (per second), or {duration",
    ),
    (
        {"models": {"kling-v3": {"units": {"ultra": 1}}}},
        "prices.json: models.kling-v3.units.ultra: not a tier of kling-v3",
    ),
    (
        {"models": {"kling-v1": {"units": {"std": {"7": 1}}}}},
        "prices.json: models.kling-v1.units.std.7: kling-v1 takes 5, 10 seconds",
    ),
    ({"models": {"kling-v9": {}}}, "prices.json: models.kling-v9: not a model batchgen knows"),
    ({"models": {"kling-v1": {"euros": {}}}}, "prices.json: models.kling-v1.euros: unknown key"),
    (
        {"models": {"kling-v1": {"usd": {"from": "blog", "std": 1}}}},
        "prices.json: models.kling-v1.usd.from: not a source of this table",
    ),
    ({"unit_usd": 0}, "prices.json: unit_usd: expected a number above 0"),
    ({"unit_usd": True}, "prices.json: unit_usd: expected a number"),
    (
        {"models": {"kling-v1": {"usd": {"std": {"5": -1}}}}},
        "prices.json: models.kling-v1.usd.std.5: expected a number of 0 or more",
    ),
    ({"colour": "red"}, "prices.json: colour: unknown key"),
    ({"sources": {"mine": {"taken": "2027"}}}, 'prices.json: sources.mine: expected {"what"'),
]


@pytest.mark.parametrize(("document", "message"), MALFORMED)
def test_a_malformed_price_file_is_named_by_file_and_key(
    tmp_path: Path, document: Any, message: str
) -> None:
    """The UsageError names the file and the key, never a pydantic dump."""
    with pytest.raises(UsageError) as caught:
        load_prices(write_prices(tmp_path, document))
    assert message in str(caught.value) and "pydantic" not in str(caught.value)


def test_a_malformed_price_file_exits_2_from_plan(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`plan --prices` with a broken file says which key is wrong and exits 2."""
    prices = write_prices(tmp_path, {"models": {"kling-v3": {"units": {"pro": {"5": "x"}}}}})
    assert run_cli("plan", EXAMPLES / "demo.yaml", "--prices", prices) == 2
    err = capsys.readouterr().err
    assert "prices.json: models.kling-v3.units.pro.5: expected a number" in err
    assert "Traceback" not in err


def test_plan_reads_a_partial_price_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`plan --prices` with one figure changes that line's price and the total."""
    prices = write_prices(tmp_path, {"models": {"kling-v2-master": {"usd": {"-": {"5": 1.0}}}}})
    assert run_cli("plan", EXAMPLES / "demo.yaml", "--prices", prices) == 0
    assert "expected $7.64" in capsys.readouterr().out  # 5 x $1.00 + 1 x $2.64


def test_problems_are_counted_not_planned() -> None:
    """Problems in the stream are counted in the plan, not priced."""
    summary = build_plan([job("kling-v1", "std"), Problem("r", 3, "prompt", "too long")])
    assert summary.jobs == 1 and summary.problems == 1 and "1 problem(s)" in summary.render()


def test_wall_time_is_waves_of_concurrency() -> None:
    """Wall time is ceil(jobs / concurrency) generations."""
    jobs = [job("kling-v1", "std", n=i) for i in range(9)]
    assert build_plan(jobs, concurrency=4, generation_seconds=100).wall_seconds == 300
    assert duration_text(300) == "5 min" and duration_text(3900) == "1 h 05 min"


KEYS = st.sampled_from(
    [
        (model, tier, duration)
        for model, capability in CAPABILITIES.items()
        for tier in tiers_of(model)
        for duration in capability.durations
    ]
)


@given(KEYS)
def test_low_never_exceeds_expected_nor_expected_high(key: tuple[str, str, str]) -> None:
    """For every key of the catalogue, known bounds are ordered low <= expected <= high."""
    prices = price_range(key, load_prices())
    bounds = (prices.low, prices.expected, prices.high)
    for kind in ("usd", "units"):
        values = [getattr(price, kind) for price in bounds]
        assert all(v is None for v in values) or values == sorted(values), (kind, values)
