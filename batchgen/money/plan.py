"""The plan of a batch before it runs: how many jobs, of which kind, what they cost, how long.

Each line is one (model, tier, duration): its jobs, the price of one job it assumed (in
dollars, and where from: CometAPI's price per request, or Kling's units x $0.14), and the low,
expected and high totals (see `pricing` for what each bound assumes).

Wall time is a simple model: jobs run in waves of `concurrency`, each wave taking
`generation_seconds` (an assumption; kling-api.md §8 has no official latency figure).

A manifest run before is planned against its state (`status_of`): the table, the cost and the
wall time are those of the jobs still to send (new or pending); the jobs already done are
counted apart with what they cost, and those in flight, failed or unknown are named (they are
not sent again by `run`).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

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


TO_SEND = "to send"  # what `status_of` says of a job the next run sends (new or pending)
NOT_SENT = {"failed": "failed (`batchgen retry` sends them)", "unknown": "unknown"}


@dataclass(frozen=True, slots=True)
class PlanSummary:
    """A batch's plan; `render()` is the text shown to users. `breakdown`, `cost` and
    `wall_seconds` are of the jobs to send; `already` counts the others by status, and
    `done_cost` is what the done ones cost."""

    jobs: int
    problems: int
    breakdown: tuple[PlanLine, ...]
    cost: CostEstimate
    overrun_seconds: float
    concurrency: int
    generation_seconds: float
    wall_seconds: float
    to_send: int = 0
    already: dict[str, int] = field(default_factory=dict)
    done_cost: CostEstimate | None = None

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
        lines = [self._head(), COLUMNS, *(_line_text(line) for line in self.breakdown)]
        lines.append(
            f"estimated cost{self._of_sent()}: {self.cost.usd_text()} "
            f"(prices taken {self.cost.taken})"
        )
        lines += _assumptions(self.cost, self.overrun_seconds)
        unknown = f" + {self.cost.unknown_units} job(s) unknown" if self.cost.unknown_units else ""
        units = self.cost
        lines.append(
            f"Kling units: low {units.units_low:g} · expected {units.units:g} · "
            f"high {units.units_high:g}{unknown}"
        )
        lines.append(
            f"wall time{self._of_sent()}: ~{duration_text(self.wall_seconds)} at concurrency "
            f"{self.concurrency}, assuming {self.generation_seconds:g} s per generation"
        )
        if self.done_cost is not None:
            lines.append(
                f"already done: {self.already['done']} job(s), expected ${self.done_cost.usd:,.2f} "
                "at the price table (paid; not counted above)"
            )
        return "\n".join(lines)

    def _head(self) -> str:
        problems = f", {self.problems} problem(s)" if self.problems else ""
        if not self.already:
            return f"{self.jobs} job(s){problems}"
        others = ", ".join(f"{n} {NOT_SENT.get(s, s)}" for s, n in self.already.items())
        return f"{self.jobs} job(s){problems}: {self.to_send} to send, {others}"

    def _of_sent(self) -> str:
        return f" of the {self.to_send} job(s) to send" if self.already else ""


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
    status_of: Callable[[str], str] | None = None,
) -> PlanSummary:
    """The plan of these jobs (consumes the iterable; Problems are counted, not planned).
    `status_of(job_id)` says where a job of an earlier run is (TO_SEND for new or pending)."""
    prices = prices or load_prices()
    counts: dict[Key, int] = {}
    done: Counter[Key] = Counter()
    already: Counter[str] = Counter()
    problems = 0
    for item in items:
        if not isinstance(item, JobSpec):
            problems += 1
            continue
        key = job_key(item.request)
        status = status_of(item.job_id) if status_of is not None else TO_SEND
        if status == TO_SEND:
            counts[key] = counts.get(key, 0) + 1
            continue
        already[status] += 1
        if status == "done":
            done[key] += 1
    jobs = sum(counts.values())
    return PlanSummary(
        jobs=jobs + already.total(),
        to_send=jobs,
        already=dict(already.most_common()),
        done_cost=cost_of(done, prices) if already.get("done") else None,
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
