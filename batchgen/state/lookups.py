"""The evidence of every look-up by external id made for a job whose create may have been
accepted: when, in which form (path, query, list), and what came back. Shown beside an
unknown job in `status`, `failed.jsonl` and `retry --unknown`."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from batchgen.state.db import Database

SHOWN = 6  # the latest look-ups kept beside a job where it is shown


@dataclass(frozen=True, slots=True)
class Sighting:
    """One look-up: `form` is "path", "query" or "list"; `answer` says what came back."""

    at: float
    form: str
    answer: str

    def as_json(self) -> dict[str, Any]:
        return {"at": round(self.at, 3), "form": self.form, "answer": self.answer}

    def line(self) -> str:
        return f"{self.form}: {self.answer}"


class Lookups:
    """The `lookups` table of one state."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def record(self, job_id: str, sightings: Iterable[Sighting]) -> None:
        self._db.write_many(
            "INSERT INTO lookups (job_id, at, form, answer) VALUES (?, ?, ?, ?)",
            [(job_id, s.at, s.form, s.answer) for s in sightings],
        )

    def of(self, job_id: str, limit: int = SHOWN) -> list[Sighting]:
        """The job's latest look-ups, oldest first."""
        rows = self._db.all(
            "SELECT at, form, answer FROM lookups WHERE job_id = ? ORDER BY at DESC, rowid DESC "
            "LIMIT ?",
            (job_id, limit),
        )
        return [Sighting(float(at), str(form), str(answer)) for at, form, answer in rows[::-1]]

    def count(self, job_id: str) -> int:
        row = self._db.one("SELECT count(*) FROM lookups WHERE job_id = ?", (job_id,))
        return 0 if row is None else int(row[0])
