"""Money in the state: its jobs grouped by the fields they are priced by and what the provider
said each cost (money/ turns these into dollars). A job that took a task another state paid
for (`reused_from`) costs this state nothing."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from batchgen.state.db import Database
from batchgen.state.records import pricing_fields

PricedGroup = tuple[str, dict[str, Any], int, float, int]


class Spending:
    """Aggregates over the `jobs` table's price_key and unit_deduction."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def priced_groups(self) -> Iterator[PricedGroup]:
        """(status, pricing fields, jobs, units charged, jobs that reported units) for every
        combination of status and the fields a job is priced by, over the whole state; as
        the triggers keep them counted (migrations.py)."""
        query = (
            "SELECT status, nullif(price_key, ''), sum(jobs), sum(units), sum(reported) "
            "FROM job_counts WHERE paid = 1 GROUP BY 1, 2 HAVING sum(jobs) > 0"
        )
        for status, key, jobs, units, reported in self._db.all(query):
            yield str(status), pricing_fields(key), int(jobs), float(units), int(reported)

    def done_pricing_fields(self) -> Iterator[tuple[dict[str, Any], int]]:
        """The fields a done job is priced by, each combination with its number of done jobs
        of the manifest."""
        cursor = self._db.rows(
            "SELECT price_key, count(*) FROM jobs WHERE status = 'done' AND seq >= 0 "
            "AND reused_from IS NULL GROUP BY 1"
        )
        return ((pricing_fields(key), int(n)) for key, n in cursor)

    def to_send_pricing_fields(self) -> Iterator[tuple[dict[str, Any], int]]:
        """The fields a job the next run sends (pending, of the manifest) is priced by, each
        combination with its number of such jobs."""
        cursor = self._db.rows(
            "SELECT price_key, count(*) FROM jobs WHERE status = 'pending' AND seq >= 0 GROUP BY 1"
        )
        return ((pricing_fields(key), int(n)) for key, n in cursor)

    def units_charged(self) -> float:
        """Sum of the provider's final_unit_deduction over every paid task of the state (done
        jobs, the earlier videos of edited rows included, and failures that were charged)."""
        row = self._db.one(
            f"SELECT {self._units()} FROM jobs WHERE unit_deduction IS NOT NULL "
            "AND reused_from IS NULL"
        )
        assert row is not None
        return float(row[0])

    def _units(self) -> str:
        """SQL summing the units the provider reported (0.0 when none did)."""
        return f"coalesce(sum({self._db.number('unit_deduction')}), 0.0)"

    def cash_reported(self) -> dict[str, float]:
        """Cash the provider reported for the state's tasks, summed per currency."""
        totals: dict[str, float] = {}
        for (text,) in self._db.rows(
            "SELECT cash_deduction FROM jobs "
            "WHERE cash_deduction IS NOT NULL AND reused_from IS NULL"
        ):
            for part in str(text).split("; "):
                currency, _, amount = part.rpartition(" ")
                try:
                    totals[currency] = totals.get(currency, 0.0) + float(amount)
                except ValueError:
                    continue
        return totals
