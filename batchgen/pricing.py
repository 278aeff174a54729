"""What a batch will cost: the price table, the estimate, and the `max_cost` check.

The table ships in the package (`batchgen/data/prices.json`, from kling-api.md §10, with the
date it was taken and its sources): per model, mode ("-" for models that take none) and
duration, CometAPI's USD per request and Kling's units, each possibly unknown. A user file of
the same shape is laid over it: its cells replace the package's, its date and sources too.

An unknown price is never counted as 0: the estimate says how many jobs it could not price,
and `check_max_cost` refuses a batch it cannot fully price.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from batchgen.capabilities import effective
from batchgen.errors import CostLimitExceeded, Problem, UsageError
from batchgen.jobs import JobSpec

Key = tuple[str, str, str]  # model, mode, duration


class Price(BaseModel):
    """One cell: USD per request through CometAPI, Kling units; None when unknown."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    usd: float | None = Field(None, ge=0)
    units: float | None = Field(None, ge=0)


UNKNOWN = Price()


class PriceTable(BaseModel):
    """prices[model][mode][duration] -> Price, with where and when it was taken."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    taken: str
    currency: str = "USD"
    unit_usd: float | None = None
    sources: list[str] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)
    prices: dict[str, dict[str, dict[str, Price]]] = Field(default_factory=dict)

    def price(self, key: Key) -> Price:
        model, mode, duration = key
        return self.prices.get(model, {}).get(mode, {}).get(duration, UNKNOWN)


def _read_table(text: str, where: str) -> PriceTable:
    try:
        return PriceTable.model_validate(json.loads(text))
    except (json.JSONDecodeError, ValidationError) as exc:
        raise UsageError(f"{where}: not a price table: {exc}") from None


def load_prices(path: Path | None = None) -> PriceTable:
    """The package's table, with the user's file at `path` laid over it."""
    package = resources.files("batchgen").joinpath("data/prices.json").read_text("utf-8")
    table = _read_table(package, "batchgen/data/prices.json")
    if path is None:
        return table
    try:
        text = path.read_text("utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read price file {path}: {exc.strerror}") from None
    return overlay(table, _read_table(text, str(path)))


def overlay(base: PriceTable, user: PriceTable) -> PriceTable:
    """`base` with every cell of `user` replacing its own; dates and sources from `user`."""
    prices: dict[str, Any] = {
        m: {k: dict(d) for k, d in modes.items()} for m, modes in base.prices.items()
    }
    for model, modes in user.prices.items():
        for mode, durations in modes.items():
            prices.setdefault(model, {}).setdefault(mode, {}).update(durations)
    return user.model_copy(update={"prices": prices})


def job_key(request: Mapping[str, Any]) -> Key:
    """The (model, mode, duration) a request is priced by, API defaults applied."""
    return effective(request)


def key_order(key: Key) -> tuple[str, str, int]:
    """Sorts keys by model, mode, then duration as a number."""
    model, mode, duration = key
    return model, mode, int(duration) if duration.isdigit() else 0


def count_jobs(items: Iterable[JobSpec | Problem]) -> Counter[Key]:
    """How many jobs of each (model, mode, duration); Problems are ignored."""
    return Counter(job_key(item.request) for item in items if isinstance(item, JobSpec))


@dataclass(frozen=True, slots=True)
class CostEstimate:
    """The price of a batch: totals over the jobs with a known price, and how many had none."""

    jobs: int
    usd: float
    units: float
    unknown_usd: int
    unknown_units: int
    unpriced: tuple[str, ...]  # "model/mode/duration" of the jobs without a USD price
    taken: str

    @property
    def complete(self) -> bool:
        return self.unknown_usd == 0

    def usd_text(self) -> str:
        text = f"${self.usd:,.2f}"
        if self.unknown_usd:
            text += f" + {self.unknown_usd} job(s) at unknown price ({', '.join(self.unpriced)})"
        return text


def cost_of(counts: Mapping[Key, int], prices: PriceTable) -> CostEstimate:
    """The estimate for `counts` jobs per (model, mode, duration)."""
    usd = units = 0.0
    unknown_usd = unknown_units = 0
    unpriced = []
    for key in sorted(counts, key=key_order):
        count = counts[key]
        price = prices.price(key)
        if price.usd is None:
            unknown_usd += count
            unpriced.append("/".join(key))
        else:
            usd += price.usd * count
        if price.units is None:
            unknown_units += count
        else:
            units += price.units * count
    return CostEstimate(
        jobs=sum(counts.values()),
        usd=round(usd, 6),
        units=round(units, 6),
        unknown_usd=unknown_usd,
        unknown_units=unknown_units,
        unpriced=tuple(unpriced),
        taken=prices.taken,
    )


def estimate_cost(
    items: Iterable[JobSpec | Problem], prices: PriceTable | None = None
) -> CostEstimate:
    """The estimate for these jobs (Problems are ignored); the package table by default."""
    return cost_of(count_jobs(items), prices or load_prices())


def check_max_cost(estimate: CostEstimate, max_cost: float | None) -> None:
    """Raise CostLimitExceeded if the estimate is above `max_cost`, or if some jobs have no
    known price (then the limit cannot be kept). No limit: nothing to check."""
    if max_cost is None:
        return
    if estimate.unknown_usd:
        raise CostLimitExceeded(
            f"--max-cost ${max_cost:,.2f} cannot be checked: {estimate.unknown_usd} job(s) have "
            f"no known price ({', '.join(estimate.unpriced)}); give a price file or drop the limit"
        )
    if estimate.usd > max_cost:
        raise CostLimitExceeded(
            f"estimated cost ${estimate.usd:,.2f} for {estimate.jobs} job(s) is above "
            f"--max-cost ${max_cost:,.2f} (prices taken {estimate.taken})"
        )
