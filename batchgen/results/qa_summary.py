"""What the checks found across a run, for `status` and `report`: how many done videos were
checked, how many are flagged, the count of each finding, and the first flagged rows."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from batchgen.state.store import Store
from batchgen.status import JobStatus


@dataclass(frozen=True, slots=True)
class QaSummary:
    """Checked and flagged done videos; `findings` counts each code, most frequent first;
    `first_flagged` holds (row id, job id, findings) in manifest order."""

    checked: int
    flagged: int
    findings: dict[str, int]
    first_flagged: list[tuple[str, str, list[dict[str, Any]]]] = field(default_factory=list)
    unchecked: int = 0  # done videos without a check (a run with --qa off)

    def as_json(self) -> dict[str, Any]:
        return {
            "checked": self.checked,
            "flagged": self.flagged,
            "findings": self.findings,
            "unchecked": self.unchecked,
        }

    def headline(self) -> str:
        """One line: "12 videos checked, 3 flagged (black_frames 2, frozen 1)", and how many
        done videos are not checked, if any."""
        counts = ", ".join(f"{code} {n}" for code, n in self.findings.items())
        unchecked = f"; {self.unchecked} done videos not checked" if self.unchecked else ""
        return (
            f"{self.checked} videos checked, {self.flagged} flagged"
            + (f" ({counts})" if counts else "")
            + unchecked
        )

    def lines(self) -> list[str]:
        """The headline, then one line per listed flagged row with its findings."""
        listed = [
            f"flagged {row} ({job}): " + "; ".join(f"{f['code']}: {f['message']}" for f in found)
            for row, job, found in self.first_flagged
        ]
        more = self.flagged - len(self.first_flagged)
        return [f"QA: {self.headline()}", *listed] + ([f"... and {more} more"] if more > 0 else [])


def summarize(store: Store, listed: int = 0, done: int | None = None) -> QaSummary:
    """The QA summary of the run in `store`, listing the first `listed` flagged rows; `done`:
    the manifest's done jobs, where the caller has counted them."""
    checked, flagged, findings = store.checks.counts()
    first = store.checks.flagged(listed, (checked, flagged)) if listed else []
    if done is None:
        done = store.counts()[JobStatus.DONE]
    return QaSummary(checked, flagged, findings, first, max(0, done - checked))
