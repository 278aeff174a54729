"""What a run's state has cost and may still cost, in dollars, for `status` and `report`:
spent (done jobs, and failures the provider charged) and committed (jobs the provider holds
or may hold, at their high price). See budget.py for how each is counted."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from batchgen.pipeline import ledger_of
from batchgen.settings import ProviderName, Settings
from batchgen.store import Store


@dataclass(frozen=True, slots=True)
class Money:
    """Spent and committed dollars of one state, billed by `provider`."""

    spent: float
    committed: float
    provider: ProviderName

    def as_json(self) -> dict[str, Any]:
        return {
            "spent_usd": round(self.spent, 2),
            "committed_usd": round(self.committed, 2),
            "provider": self.provider,
        }

    def line(self) -> str:
        return (
            f"money: ${self.spent:,.2f} spent, ${self.committed:,.2f} committed to tasks in "
            f"flight or unknown (on {self.provider})"
        )


def provider_of(store: Store) -> ProviderName:
    """The provider the state's jobs were run on (cometapi for a state that does not say)."""
    return "kling" if store.get_meta("provider") == "kling" else "cometapi"


def money_of(store: Store) -> Money:
    """The state's money at the package's price table and the state's provider."""
    provider = provider_of(store)
    ledger = ledger_of(store, Settings(provider=provider))
    return Money(ledger.spent, ledger.committed, provider)
