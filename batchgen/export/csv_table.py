"""`--format csv`: one flat table, `index.csv`, one row per finished job.

Columns are those of columns.py, in that order, under a header row. `video` is the path of the
video relative to the run folder, as in index.jsonl; lists and objects are JSON strings and
missing values are empty cells.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable

from batchgen.export.base import Sample, Writer, sync

TABLE_NAME = "index.csv"


class CsvWriter(Writer):
    name = "csv"

    def write(self, samples: Iterable[Sample]) -> list[str]:
        names = self.columns.names
        with open(self.staging / TABLE_NAME, "w", encoding="utf-8", newline="") as f:
            table = csv.writer(f)
            table.writerow(names)
            for sample in samples:
                table.writerow([sample.row[name] for name in names])
            sync(f)
        return [TABLE_NAME]

    def owns(self, relative: str) -> bool:
        return relative == TABLE_NAME
