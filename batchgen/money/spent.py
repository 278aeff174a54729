"""What a run's state has cost and may still cost, in dollars, for `--budget`, `status` and
`report`: spent (done jobs, and failures the provider charged) and committed (jobs the provider
holds or may hold, at their high price). See budget.py for how each is counted."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from batchgen.money.budget import Tally, check_priced, groups
from batchgen.money.price_table import PriceTable
from batchgen.money.pricing import load_prices

PricedRow = tuple[str, dict[str, Any], int, float, int]  # as Store.spending.priced_groups gives


@dataclass(frozen=True, slots=True)
class Money:
    """Spent and committed dollars of one state, billed by `provider`."""

    spent: float
    committed: float
    provider: str

    def as_json(self) -> dict[str, Any]:
        return {
            "spent_usd": round(self.spent, 2),
            "committed_usd": round(self.committed, 2),
            "provider": self.provider,
        }

    def line(self) -> str:
        return (
            f"money (the bill so far): ${self.spent:,.2f} spent, ${self.committed:,.2f} "
            f"committed to tasks in flight or unknown (on {self.provider})"
        )


def tally_of(
    priced: Iterable[PricedRow], table: PriceTable, provider: str, *, check: bool = False
) -> Tally:
    """Spent and committed money of a state's priced groups, at `table`'s prices, billed by
    `provider`; with `check`, UsageError if a job that may be paid for has no known price."""
    rows = groups(priced)
    if check:
        check_priced(rows, table)
    tally = Tally(table, bills_in_units=provider == "kling")
    tally.load(rows)
    return tally


def money_of(priced: Iterable[PricedRow], provider: str) -> Money:
    """A state's money at the package's price table, billed by `provider`."""
    tally = tally_of(priced, load_prices(), provider)
    return Money(tally.spent, tally.committed, provider)
