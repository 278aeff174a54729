"""`batchgen export`: a run folder's finished videos as a dataset, one writer per format.

    hf          metadata.parquet + linked videos + a dataset card, for `load_dataset("videofolder")`
    csv         index.csv, one flat row per video
    webdataset  000000.tar, 000001.tar, ...: `<job id>.mp4` + `<job id>.json` per sample

The default output folder is RUN/export/<format>/; `-o` names another, never the run folder,
and a folder holding other files than an earlier export's only with `--force` (which then
deletes and replaces none of them). The modules, in the order an export runs:

    entries.py     the finished jobs, from the run's state (file or PostgreSQL) or index.jsonl
    target.py      where an export may write, what an earlier export left there, its record
    videos.py      each video opened once and checked against its size and sha256
    columns.py     the typed, flat columns of an entry: the one schema of every field's type
    base.py        the one interface every format implements, and the sample it is fed
    card.py        the dataset card of an hf export: provenance, columns, how to load it
    croissant.py   the Croissant 1.1 description of an hf export, with PROV-O provenance
    hf.py          `--format hf`
    csv_table.py   `--format csv`
    webdataset.py  `--format webdataset`
    inputs.py      the files of each sample's input images, as the run sent them
    exporter.py    `export_run`: stream the index into one writer, stage, publish
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

from batchgen.errors import IndexInvalid, MissingVideo, UnknownFormat, VideoMismatch

if TYPE_CHECKING:
    from batchgen.export.exporter import FORMATS, ExportResult, export_run

__all__ = [
    "FORMATS",
    "ExportResult",
    "IndexInvalid",
    "MissingVideo",
    "UnknownFormat",
    "VideoMismatch",
    "export_run",
]


def __getattr__(name: str) -> object:
    """The exporter loads on first use (it brings pyarrow), so that the index writer can use
    columns.py, the one schema, without it."""
    if name in ("FORMATS", "ExportResult", "export_run"):
        return getattr(import_module("batchgen.export.exporter"), name)
    raise AttributeError(f"module 'batchgen.export' has no attribute {name!r}")
