"""The plan of a batch before it runs: how many jobs, of which kind, what they cost, how long.

Wall time is a simple model: jobs run in waves of `concurrency`, each wave taking
`generation_seconds` (an assumption; kling-api.md §8 has no official latency figure).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from batchgen.errors import Problem
from batchgen.jobs import JobSpec
from batchgen.pricing import (
    CostEstimate,
    Key,
    PriceTable,
    cost_of,
    job_key,
    key_order,
    load_prices,
)

HEADINGS = f"  {'model':<18} {'mode':<4} {'duration':>8} {'jobs':>7} {'USD':>10} {'units':>9}"


@dataclass(frozen=True, slots=True)
class PlanLine:
    """The jobs of one (model, mode, duration), with their total price (None: unknown)."""

    model: str
    mode: str
    duration: str
    jobs: int
    usd: float | None
    units: float | None


@dataclass(frozen=True, slots=True)
class PlanSummary:
    """A batch's plan; `render()` is the text shown to users."""

    jobs: int
    problems: int
    breakdown: tuple[PlanLine, ...]
    cost: CostEstimate
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
        lines = [f"{self.jobs} job(s)" + (f", {self.problems} problem(s)" if self.problems else "")]
        lines.append(
            f"  {'model':<18} {'mode':<4} {'duration':>8} {'jobs':>7} {'USD':>10} {'units':>9}"
        )
        lines += [_line_text(line) for line in self.breakdown]
        lines.append(f"estimated cost: {self.cost.usd_text()} (prices taken {self.cost.taken})")
        unknown = f" + {self.cost.unknown_units} job(s) unknown" if self.cost.unknown_units else ""
        lines.append(f"Kling units: {self.cost.units:g}{unknown}")
        lines.append(
            f"wall time: ~{duration_text(self.wall_seconds)} at concurrency {self.concurrency}, "
            f"assuming {self.generation_seconds:g} s per generation"
        )
        return "\n".join(lines)


def _line_text(line: PlanLine) -> str:
    usd = "?" if line.usd is None else f"{line.usd:,.2f}"
    units = "?" if line.units is None else f"{line.units:g}"
    duration = f"{line.duration} s"
    return f"  {line.model:<18} {line.mode:<4} {duration:>8} {line.jobs:>7} {usd:>10} {units:>9}"


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
        concurrency=concurrency,
        generation_seconds=generation_seconds,
        wall_seconds=wall_seconds(jobs, concurrency, generation_seconds),
    )


def _plan_line(key: Key, count: int, prices: PriceTable) -> PlanLine:
    price = prices.price(key)
    usd = None if price.usd is None else round(price.usd * count, 6)
    units = None if price.units is None else round(price.units * count, 6)
    return PlanLine(*key, jobs=count, usd=usd, units=units)
