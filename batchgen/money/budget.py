"""Money, while a run goes: what is spent, what is committed, and whether the next job fits
within `--budget`. Pure: prices come from the table, states from the run's transitions.

    spent       done jobs, at what the provider charged (`final_unit_deduction` × the unit
                price, on Kling's own API) or else at the table's expected price; and failures
                the provider reports charging
    committed   jobs the provider holds or may hold (submitting, submitted, running,
                downloading, unknown), at the table's high price: what they may still cost

A job is submitted only while spent + committed + its own high price stays within the budget.
CometAPI bills in its own dollars, so there a task's units are not used for money.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from batchgen.errors import UsageError
from batchgen.money.price_table import PriceTable
from batchgen.money.pricing import job_key, price_of, usd_of_units
from batchgen.status import JobStatus

COMMITTED = frozenset(
    {
        JobStatus.SUBMITTING,
        JobStatus.SUBMITTED,
        JobStatus.RUNNING,
        JobStatus.DOWNLOADING,
        JobStatus.UNKNOWN,
    }
)


@dataclass(frozen=True, slots=True)
class PricedGroup:
    """Jobs of one status and one set of pricing fields, and the units charged for them."""

    status: JobStatus
    request: Mapping[str, Any]
    jobs: int
    units: float  # sum of final_unit_deduction over those that reported one
    units_reported: int


def groups(rows: Iterable[tuple[str, dict[str, Any], int, float, int]]) -> list[PricedGroup]:
    """PricedGroups from the rows of `Store.spending.priced_groups`."""
    return [
        PricedGroup(JobStatus(status), request, jobs, units, reported)
        for status, request, jobs, units, reported in rows
    ]


class Tally:
    """Spent and committed dollars of one state, kept up to date from job transitions."""

    def __init__(self, table: PriceTable, *, bills_in_units: bool) -> None:
        """`bills_in_units`: the provider's `final_unit_deduction` is what the user pays (Kling's
        own API); otherwise (CometAPI) the table's dollars are."""
        self.table = table
        self.use_units = bills_in_units
        self.spent = 0.0
        self.committed = 0.0

    def load(self, groups: Iterable[PricedGroup]) -> None:
        """Start from what the state holds."""
        for group in groups:
            if group.status in COMMITTED:
                self.committed += group.jobs * self.reserve(group.request)
            elif group.status == JobStatus.DONE and self.use_units:
                unreported = group.jobs - group.units_reported
                self.spent += self._units_usd(group.units)
                self.spent += unreported * self._expected(group.request)
            elif group.status == JobStatus.DONE:
                self.spent += group.jobs * self._expected(group.request)
            elif group.status == JobStatus.FAILED and self.use_units:
                self.spent += self._units_usd(group.units)

    def moved(
        self, request: Mapping[str, Any], units: str | None, old: JobStatus, new: JobStatus
    ) -> None:
        """A job went from `old` to `new` (`units`: what the provider charged, if it said)."""
        if old in COMMITTED:
            self.committed -= self.reserve(request)
        if new in COMMITTED:
            self.committed += self.reserve(request)
        if new == JobStatus.DONE:
            self.spent += self.cost(request, units)
        elif new == JobStatus.FAILED and self.use_units and units:
            self.spent += self._units_usd(_number(units))
        elif old == JobStatus.DONE:
            self.spent -= self.cost(request, units)

    def cost(self, request: Mapping[str, Any], units: str | None) -> float:
        """What a done job cost."""
        if self.use_units and units is not None:
            return self._units_usd(_number(units))
        return self._expected(request)

    def reserve(self, request: Mapping[str, Any]) -> float:
        """What a job may cost at most (0 where the price is unknown: `check_priced` first)."""
        return price_of(request, self.table, "high").usd or 0.0

    def _expected(self, request: Mapping[str, Any]) -> float:
        return price_of(request, self.table, "expected").usd or 0.0

    def _units_usd(self, units: float) -> float:
        return usd_of_units(units, self.table.unit_usd.value or 0.0)


class Budget:
    """A limit on spent + committed dollars; `fits` decides each submission."""

    def __init__(self, limit_usd: float, tally: Tally) -> None:
        self.limit = limit_usd
        self.tally = tally

    @property
    def left(self) -> float:
        return self.limit - self.tally.spent - self.tally.committed

    def fits(self, request: Mapping[str, Any], committed: float = 0.0) -> bool:
        """Whether a job fits, with `committed` more dollars promised to creates that leave
        with it (not yet in the tally)."""
        return self.tally.reserve(request) + committed <= self.left + 1e-9

    def stop_message(self) -> str:
        tally = self.tally
        return (
            f"budget ${self.limit:,.2f} reached: ${tally.spent:,.2f} spent, "
            f"${tally.committed:,.2f} committed to tasks in flight, ${max(0.0, self.left):,.2f} "
            "left, not enough for the next job; nothing more is submitted. Run the same command "
            "with a larger --budget to go on"
        )


def check_priced(groups: Iterable[PricedGroup], table: PriceTable) -> None:
    """UsageError if a job that may still be submitted or paid has no known price: a budget
    could not be kept."""
    unpriced = sorted(
        {
            "/".join(job_key(g.request))
            for g in groups
            if g.status in (*COMMITTED, JobStatus.PENDING)
            and price_of(g.request, table, "high").usd is None
        }
    )
    if unpriced:
        raise UsageError(
            f"--budget cannot be kept: no known price for {', '.join(unpriced)}; give one "
            "with --prices"
        )


def _number(units: str) -> float:
    try:
        return float(units)
    except ValueError:
        return 0.0
