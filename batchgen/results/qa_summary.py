"""What the checks found across a run, for `status` and `report`: how many done videos were
checked, how many are flagged, the count of each finding, and the first flagged rows."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from batchgen.state.store import Store


@dataclass(frozen=True, slots=True)
class QaSummary:
    """Checked and flagged done videos; `findings` counts each code, most frequent first;
    `first_flagged` holds (row id, job id, findings) in manifest order."""

    checked: int
    flagged: int
    findings: dict[str, int]
    first_flagged: list[tuple[str, str, list[dict[str, Any]]]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {"checked": self.checked, "flagged": self.flagged, "findings": self.findings}

    def headline(self) -> str:
        """One line: "12 videos checked, 3 flagged (black_frames 2, frozen 1)"."""
        counts = ", ".join(f"{code} {n}" for code, n in self.findings.items())
        return f"{self.checked} videos checked, {self.flagged} flagged" + (
            f" ({counts})" if counts else ""
        )

    def lines(self) -> list[str]:
        """The headline, then one line per listed flagged row with its findings."""
        listed = [
            f"flagged {row} ({job}): " + "; ".join(f"{f['code']}: {f['message']}" for f in found)
            for row, job, found in self.first_flagged
        ]
        more = self.flagged - len(self.first_flagged)
        return [f"QA: {self.headline()}", *listed] + ([f"... and {more} more"] if more > 0 else [])


def summarize(store: Store, listed: int = 0) -> QaSummary:
    """The QA summary of the run in `store`, listing the first `listed` flagged rows."""
    checked, flagged, findings = store.checks.counts()
    first = store.checks.flagged(listed, (checked, flagged)) if listed else []
    return QaSummary(checked, flagged, findings, first)
