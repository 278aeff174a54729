"""`--format csv`: one flat table, `index.csv`, one row per finished job.

Columns are those of columns.py, in that order, under a header row. `video` is the path of the
video relative to the folder holding index.csv (so a reader opens `csv_dir / row["video"]`;
the export and the run folder move together); `image`, `image_tail`, `static_mask` are the
paths of the input images the same way (inputs.py: as the run kept them), `dynamic_masks` a
JSON list of such paths. Lists and objects are JSON strings, missing values are empty cells,
numbers are written as numbers. A text cell that a spreadsheet would take for a formula (it
starts with `=`, `+`, `-`, `@`, a tab or a carriage return) is written with a leading `'`, the
OWASP rule against CSV injection: a prompt of `=HYPERLINK(...)` stays text when the file is
opened in a spreadsheet.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from batchgen.export.base import Sample, Writer, sync
from batchgen.export.inputs import DYNAMIC_MASKS
from batchgen.jobs import canonical_json

TABLE_NAME = "index.csv"
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


class CsvWriter(Writer):
    name = "csv"
    copies_videos = False

    def write(self, samples: Iterable[Sample]) -> list[str]:
        names = self.columns.names
        table_dir = os.path.abspath(self.out_dir)
        with open(self.staging / TABLE_NAME, "w", encoding="utf-8", newline="") as f:
            table = csv.writer(f)
            table.writerow(names)
            for sample in samples:
                row = {**sample.row, "video": _relative(sample.video, table_dir)}
                for name, path in sample.inputs.files.items():
                    if name in row:
                        row[name] = _relative(path, table_dir)
                masks = sample.inputs.dynamic_masks
                row[DYNAMIC_MASKS] = [_relative(p, table_dir) for p in masks] if masks else None
                table.writerow([_cell(row[name]) for name in names])
            sync(f)
        return [TABLE_NAME]

    def owns(self, relative: str) -> bool:
        return relative == TABLE_NAME


def _relative(path: Path, folder: str) -> str:
    return os.path.relpath(os.path.abspath(path), folder)


def _cell(value: Any) -> Any:
    if isinstance(value, list | dict):
        return canonical_json(value)
    return neutralised(value) if isinstance(value, str) else value


def neutralised(text: str) -> str:
    """`text`, prefixed with `'` where a spreadsheet would evaluate it as a formula."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text
