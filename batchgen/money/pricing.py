"""What a request and a batch cost, and the `--max-cost` check. Pure (the table is an argument).

A request is priced by its key: (model, tier, duration), where the tier is its mode ("-" for
models without one) with `+sound` for `sound: on` or `+voice` for a voice_list
(`price_table`). Its price has three bounds, because the provider decides part of the bill:

- low: billed for the seconds asked (the price page's figure);
- expected: where Kling bills per second, billed for the real length of the video, which runs
  a little over what was asked (`overrun_seconds`, 0.1 s: a 5 s request gave 5.1 s, E16);
- high: where Kling bills per second, the real length rounded up to the next whole second.

A per-clip or per-request price is the same in all three. Failed tasks are not charged (§10,
E17), so every bound assumes every job succeeds: the real bill can only be lower by the price
of the jobs that fail.

Dollars: CometAPI's dollars per request where the table has them (the default provider's
price, and a fixed one), else Kling's units x `unit_usd` ($0.14, E24); `Price.basis` says which.
An unknown price stays unknown (None), never 0: an estimate counts the jobs it could not price.

For the run-time budget: `price_of(request, table)` prices one request, `usd_of_units(units)`
turns units (e.g. a task's `final_unit_deduction`) into dollars.

`check_max_cost` refuses a batch whose *high* estimate is above the limit, or that has a job of
unknown price: the limit is a promise not to spend more, whatever the provider decides.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from batchgen.errors import CostLimitExceeded, Problem
from batchgen.jobs import JobSpec
from batchgen.manifest.capabilities import effective, sound_on
from batchgen.money.price_table import PriceTable, load_prices, package_table

__all__ = [
    "UNIT_USD",
    "CostEstimate",
    "Key",
    "Price",
    "PriceRange",
    "check_max_cost",
    "cost_of",
    "count_jobs",
    "estimate_cost",
    "job_key",
    "key_order",
    "load_prices",
    "price_of",
    "price_range",
    "usd_of_units",
]

UNIT_USD = 0.14  # E24: 1 unit = $0.14 (the table's `unit_usd` is the one used)
Key = tuple[str, str, str]  # model, tier, duration
Bound = Literal["low", "expected", "high"]
Basis = Literal["cometapi", "units", "unknown"]
MODE_ORDER = ("-", "std", "pro", "4k")


@dataclass(frozen=True, slots=True)
class Price:
    """The price of one request: dollars and Kling units, None when unknown; `basis` says
    where the dollars come from (CometAPI's price, or units x unit_usd)."""

    usd: float | None
    units: float | None
    basis: Basis = "unknown"


@dataclass(frozen=True, slots=True)
class PriceRange:
    """The low, expected and high price of one request (see the module docstring)."""

    low: Price
    expected: Price
    high: Price


def usd_of_units(units: float, unit_usd: float = UNIT_USD) -> float:
    """Kling units in dollars, at `unit_usd` a unit ($0.14 by default, E24)."""
    return units * unit_usd


def tier_of(request: Mapping[str, Any]) -> str:
    """The tier a request is billed at: its mode, `+voice` with a voice_list, `+sound` with
    sound on."""
    _, mode, _ = effective(request)
    if request.get("voice_list"):
        return f"{mode}+voice"
    return f"{mode}+sound" if sound_on(request) else mode


def job_key(request: Mapping[str, Any]) -> Key:
    """The (model, tier, duration) a request is priced by, API defaults applied."""
    model, _, duration = effective(request)
    return model, tier_of(request), duration


def key_order(key: Key) -> tuple[str, int, str, int]:
    """Sorts keys by model, mode (std, pro, 4k), tier, then duration as a number."""
    model, tier, duration = key
    mode = tier.split("+")[0]
    rank = MODE_ORDER.index(mode) if mode in MODE_ORDER else len(MODE_ORDER)
    return model, rank, tier, int(duration) if duration.isdigit() else 0


def price_of(
    request: Mapping[str, Any], table: PriceTable | None = None, bound: Bound = "expected"
) -> Price:
    """The price of one request (the package table by default); see the module docstring for
    the bounds. A budget that must never be overrun reserves `bound="high"`."""
    prices = price_range(job_key(request), table or package_table())
    return {"low": prices.low, "expected": prices.expected, "high": prices.high}[bound]


def price_range(key: Key, table: PriceTable) -> PriceRange:
    """The three bounds of the price of one request of this key."""
    model, tier, duration = key
    seconds = float(duration) if duration.isdigit() else 0.0
    lengths = (seconds, seconds + (table.overrun.value or 0.0), seconds + 1)
    units = [_amount(table, model, "units", tier, duration, length) for length in lengths]
    usd = [_amount(table, model, "usd", tier, duration, length) for length in lengths]
    unit_usd = table.unit_usd.value or UNIT_USD
    prices = [_price(dollars, unit, unit_usd) for dollars, unit in zip(usd, units, strict=True)]
    return PriceRange(*prices)


def _amount(
    table: PriceTable, model: str, kind: str, tier: str, duration: str, length: float
) -> float | None:
    figure, per_second = table.figure(model, kind, tier, duration)
    if figure is None or figure.value is None:
        return None
    return round(figure.value * length if per_second else figure.value, 6)


def _price(usd: float | None, units: float | None, unit_usd: float) -> Price:
    if usd is not None:
        return Price(usd, units, "cometapi")
    if units is not None:
        return Price(round(usd_of_units(units, unit_usd), 6), units, "units")
    return Price(None, None)


def count_jobs(items: Iterable[JobSpec | Problem]) -> Counter[Key]:
    """How many jobs of each (model, tier, duration); Problems are ignored."""
    return Counter(job_key(item.request) for item in items if isinstance(item, JobSpec))


@dataclass(frozen=True, slots=True)
class CostEstimate:
    """The price of a batch: totals over the jobs with a known price, and how many had none.
    `usd` and `units` are the expected totals; `usd_low` and `usd_high` the bounds."""

    jobs: int
    usd: float
    units: float
    usd_low: float
    usd_high: float
    units_low: float
    units_high: float
    unknown_usd: int
    unknown_units: int
    unpriced: tuple[str, ...]  # "model/tier/duration" of the jobs without a USD price
    taken: str
    unit_usd: float

    @property
    def complete(self) -> bool:
        return self.unknown_usd == 0

    def usd_text(self) -> str:
        text = f"low ${self.usd_low:,.2f} · expected ${self.usd:,.2f} · high ${self.usd_high:,.2f}"
        if self.unknown_usd:
            text += f" + {self.unknown_usd} job(s) at unknown price ({', '.join(self.unpriced)})"
        return text


def cost_of(counts: Mapping[Key, int], prices: PriceTable) -> CostEstimate:
    """The estimate for `counts` jobs per (model, tier, duration)."""
    usd = [0.0, 0.0, 0.0]
    units = [0.0, 0.0, 0.0]
    unknown_usd = unknown_units = 0
    unpriced = []
    for key in sorted(counts, key=key_order):
        count = counts[key]
        bounds = price_range(key, prices)
        for i, price in enumerate((bounds.low, bounds.expected, bounds.high)):
            usd[i] += (price.usd or 0.0) * count
            units[i] += (price.units or 0.0) * count
        if bounds.expected.usd is None:
            unknown_usd += count
            unpriced.append("/".join(key))
        unknown_units += count if bounds.expected.units is None else 0
    return CostEstimate(
        jobs=sum(counts.values()),
        usd=round(usd[1], 6),
        units=round(units[1], 6),
        usd_low=round(usd[0], 6),
        usd_high=round(usd[2], 6),
        units_low=round(units[0], 6),
        units_high=round(units[2], 6),
        unknown_usd=unknown_usd,
        unknown_units=unknown_units,
        unpriced=tuple(unpriced),
        taken=prices.taken,
        unit_usd=prices.unit_usd.value or UNIT_USD,
    )


def estimate_cost(
    items: Iterable[JobSpec | Problem], prices: PriceTable | None = None
) -> CostEstimate:
    """The estimate for these jobs (Problems are ignored); the package table by default."""
    return cost_of(count_jobs(items), prices or load_prices())


def check_max_cost(estimate: CostEstimate, max_cost: float | None) -> None:
    """Raise CostLimitExceeded if the high estimate is above `max_cost`, or if some jobs have
    no known price (then the limit cannot be kept). No limit: nothing to check."""
    if max_cost is None:
        return
    if estimate.unknown_usd:
        raise CostLimitExceeded(
            f"--max-cost ${max_cost:,.2f} cannot be checked: {estimate.unknown_usd} job(s) have "
            f"no known price ({', '.join(estimate.unpriced)}); give a price file or drop the limit"
        )
    if estimate.usd_high > max_cost:
        raise CostLimitExceeded(
            f"the high estimate ${estimate.usd_high:,.2f} for the {estimate.jobs} job(s) to send "
            f"(expected ${estimate.usd:,.2f}) is above --max-cost ${max_cost:,.2f} (prices "
            f"taken {estimate.taken}; jobs already done are not counted; `batchgen plan` shows "
            "how they add up)"
        )
