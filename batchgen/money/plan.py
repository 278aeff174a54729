"""The plan of a batch before it runs: how many jobs, of which kind, what they cost, how long.

Each line is one (model, tier, duration): its jobs, the price of one job it assumed (in
dollars, and where from: CometAPI's price per request, or Kling's units x $0.14), and the low,
expected and high totals (see `pricing` for what each bound assumes).

Wall time is a simple model: jobs run in waves of `concurrency`, each wave taking
`generation_seconds` (an assumption; kling-api.md §8 has no official latency figure).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from batchgen.errors import Problem
from batchgen.jobs import JobSpec
from batchgen.money.price_table import PriceTable
from batchgen.money.pricing import (
    CostEstimate,
    Key,
    cost_of,
    job_key,
    key_order,
    load_prices,
    price_range,
)

BASIS = {"cometapi": "C", "units": "K", "unknown": "?"}
COLUMNS = (
    f"  {'model':<18} {'tier':<10} {'seconds':>7} {'jobs':>7} {'$ each':>8}   "
    f"{'low $':>9} {'expected $':>10} {'high $':>9} {'units':>9}"
)


@dataclass(frozen=True, slots=True)
class PlanLine:
    """The jobs of one (model, tier, duration): the price of one job and the totals (None:
    unknown). `basis`: "cometapi" (CometAPI's dollars per request) or "units" (Kling units x
    unit_usd)."""

    model: str
    tier: str
    duration: str
    jobs: int
    usd_each: float | None
    basis: str
    usd_low: float | None
    usd: float | None
    usd_high: float | None
    units: float | None


@dataclass(frozen=True, slots=True)
class PlanSummary:
    """A batch's plan; `render()` is the text shown to users."""

    jobs: int
    problems: int
    breakdown: tuple[PlanLine, ...]
    cost: CostEstimate
    overrun_seconds: float
    concurrency: int
    generation_seconds: float
    wall_seconds: float

    @property
    def cost_usd(self) -> float:
        return self.cost.usd

    @property
    def units(self) -> float:
        return self.cost.units

    @property
    def unknown_price_jobs(self) -> int:
        return self.cost.unknown_usd

    def render(self) -> str:
        head = f"{self.jobs} job(s)" + (f", {self.problems} problem(s)" if self.problems else "")
        lines = [head, COLUMNS, *(_line_text(line) for line in self.breakdown)]
        lines.append(f"estimated cost: {self.cost.usd_text()} (prices taken {self.cost.taken})")
        lines += _assumptions(self.cost, self.overrun_seconds)
        unknown = f" + {self.cost.unknown_units} job(s) unknown" if self.cost.unknown_units else ""
        units = self.cost
        lines.append(
            f"Kling units: low {units.units_low:g} · expected {units.units:g} · "
            f"high {units.units_high:g}{unknown}"
        )
        lines.append(
            f"wall time: ~{duration_text(self.wall_seconds)} at concurrency {self.concurrency}, "
            f"assuming {self.generation_seconds:g} s per generation"
        )
        return "\n".join(lines)


def _assumptions(cost: CostEstimate, overrun: float) -> list[str]:
    return [
        f"  $ each: C = CometAPI's dollars per request; K = Kling units x ${cost.unit_usd:g}",
        "  low: billed for the seconds asked; expected: billed per second of the real length",
        f"  (asked + {overrun:g} s); high: the real length rounded up (asked + 1 s); prices per",
        "  request or per clip are fixed. Failed tasks are not charged: the bill is lower by",
        "  the jobs that fail. --max-cost is checked against the high estimate.",
    ]


def _money(value: float | None, width: int) -> str:
    return f"{'?' if value is None else f'{value:,.2f}':>{width}}"


def _line_text(line: PlanLine) -> str:
    each = "?" if line.usd_each is None else f"{line.usd_each:.3f}{BASIS[line.basis]}"
    units = "?" if line.units is None else f"{line.units:g}"
    return (
        f"  {line.model:<18} {line.tier:<10} {line.duration + ' s':>7} {line.jobs:>7} "
        f"{each:>8}   {_money(line.usd_low, 9)} {_money(line.usd, 10)} "
        f"{_money(line.usd_high, 9)} {units:>9}"
    )


def duration_text(seconds: float) -> str:
    """Seconds as "1 h 05 min", "12 min" or "40 s"."""
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60:02d} min"


def wall_seconds(jobs: int, concurrency: int, generation_seconds: float) -> float:
    """Waves of `concurrency` jobs, each taking `generation_seconds`."""
    return math.ceil(jobs / max(concurrency, 1)) * generation_seconds


def build_plan(
    items: Iterable[JobSpec | Problem],
    concurrency: int = 4,
    generation_seconds: float = 120.0,
    prices: PriceTable | None = None,
) -> PlanSummary:
    """The plan of these jobs (consumes the iterable; Problems are counted, not planned)."""
    prices = prices or load_prices()
    counts: dict[Key, int] = {}
    problems = 0
    for item in items:
        if isinstance(item, JobSpec):
            key = job_key(item.request)
            counts[key] = counts.get(key, 0) + 1
        else:
            problems += 1
    jobs = sum(counts.values())
    return PlanSummary(
        jobs=jobs,
        problems=problems,
        breakdown=tuple(
            _plan_line(key, counts[key], prices) for key in sorted(counts, key=key_order)
        ),
        cost=cost_of(counts, prices),
        overrun_seconds=prices.overrun.value or 0.0,
        concurrency=concurrency,
        generation_seconds=generation_seconds,
        wall_seconds=wall_seconds(jobs, concurrency, generation_seconds),
    )


def _total(each: float | None, count: int) -> float | None:
    return None if each is None else round(each * count, 6)


def _plan_line(key: Key, count: int, prices: PriceTable) -> PlanLine:
    bounds = price_range(key, prices)
    expected = bounds.expected
    return PlanLine(
        *key,
        jobs=count,
        usd_each=expected.usd,
        basis=expected.basis,
        usd_low=_total(bounds.low.usd, count),
        usd=_total(expected.usd, count),
        usd_high=_total(bounds.high.usd, count),
        units=_total(expected.units, count),
    )
