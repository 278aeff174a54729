"""`export_run`: stream a run's index into one format's writer, then publish the result.

Two passes over the run's finished jobs (entries.py: its state where there is one, in its file
or its PostgreSQL database, else index.jsonl), each one entry at a time: the first finds the
columns and any missing video, the second writes. Where the format copies the videos, each is
checked against its recorded size and sha256 as it is read (videos.py): one that is not the
paid video, or is reached through a symbolic link, stops the export (exit 1) or, with
`skip_missing`, is left out like a missing one. Everything is written under `<out>/.staging/`
and moved into place only when complete, so a failed export leaves the previous one as it was.

The output folder is claimed first (target.py): a folder this export creates, or one holding
only an earlier export's files, never the run folder; with `force`, one holding other files
too, which are never deleted or replaced. Files of the earlier export that this one did not
write (shards past the new last one, videos of rows no longer exported) are then removed.

A missing video stops the export before anything is written, naming the rows (exit 1), because
a dataset silently short of rows is worse than none; `skip_missing=True` exports the others and
lists the skipped rows in the result. `exclude_flagged=True` leaves out the videos with QA
findings (media/qa.py), listed in the result too; unchecked videos are kept.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from batchgen.errors import MissingVideo, UnknownFormat, UsageError, VideoMismatch
from batchgen.export.base import Sample, Writer, sample_key
from batchgen.export.card import Provenance
from batchgen.export.columns import Columns, ColumnScan, qa_codes
from batchgen.export.csv_table import CsvWriter
from batchgen.export.entries import IndexLine, finished_entries, open_run_state
from batchgen.export.hf import HfWriter
from batchgen.export.inputs import InputFiles
from batchgen.export.target import EXPORT_DIR, Target, claim, refuse_collisions
from batchgen.export.videos import open_checked, open_inside
from batchgen.export.webdataset import WebDatasetWriter
from batchgen.progress import counted

FORMATS: dict[str, type[Writer]] = {w.name: w for w in (HfWriter, CsvWriter, WebDatasetWriter)}


@dataclass(frozen=True, slots=True)
class ExportResult:
    """What an export wrote: `files` are every published file, `skipped` the missing rows."""

    format: str
    out_dir: Path
    count: int
    files: tuple[Path, ...]
    skipped: tuple[str, ...] = ()
    excluded: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (row id, QA codes) left out
    without_inputs: int = 0  # samples with an input image that has no file (a URL sent)


@dataclass(frozen=True, slots=True)
class _Scan:
    columns: Columns
    missing: list[IndexLine]
    excluded: list[IndexLine]


def export_run(
    run_dir: Path,
    fmt: str,
    out_dir: Path | None = None,
    *,
    shard_size: int = 1000,
    skip_missing: bool = False,
    exclude_flagged: bool = False,
    state: Path | None = None,
    database: str | None = None,
    force: bool = False,
) -> ExportResult:
    """Export the finished videos of `run_dir` (as its state lists them: the file `state`,
    default RUN/state.sqlite, or the run's schema in the PostgreSQL `database`; else as its
    index.jsonl does) as `fmt` into `out_dir` (default RUN/export/<fmt>/), replacing an
    earlier export there; without the videos QA flagged if `exclude_flagged`; beside files no
    export wrote if `force`. Raises UnknownFormat, UsageError (bad shard size, a destination
    refused), IndexInvalid, StateError (no such run in `database`), or MissingVideo and
    VideoMismatch unless `skip_missing`."""
    where = _StateOf(run_dir, state, database)
    writer_class = writer_for(fmt)
    if shard_size < 1:
        raise UsageError(f"shard size must be at least 1, not {shard_size}")
    out = out_dir if out_dir is not None else run_dir / EXPORT_DIR / fmt
    scan = _scan(where, exclude_flagged)
    if scan.missing and not skip_missing:
        raise MissingVideo([(line.row_id, line.video) for line in scan.missing])
    target = claim(out, run_dir, force=force)
    provenance = Provenance.of_run(run_dir)
    provenance.provider = _provider(where)
    provenance.skipped_missing, provenance.excluded_flagged = len(scan.missing), len(scan.excluded)
    left_out = {line.job_id for line in (*scan.missing, *scan.excluded)}
    feed = _Feed(where, scan.columns, left_out, provenance, skip_missing)
    writer = writer_class(target.staging, scan.columns, shard_size)
    try:
        with feed.inputs:
            written = feed.into(writer)
        written += writer.describe(provenance)
        refuse_collisions(target, written)
    except BaseException:
        shutil.rmtree(target.staging, ignore_errors=True)
        raise
    files = _publish(target, written, writer, run_dir.name)
    skipped = tuple(line.row_id for line in scan.missing) + tuple(feed.mismatched)
    excluded = tuple((line.row_id, tuple(qa_codes(line.entry) or ())) for line in scan.excluded)
    return ExportResult(
        fmt, out, provenance.exported, files, skipped, excluded, provenance.without_inputs
    )


@dataclass(frozen=True, slots=True)
class _StateOf:
    """Where the run in `run_dir` keeps its state (see entries.open_run_state)."""

    run_dir: Path
    state: Path | None
    database: str | None

    def entries(self) -> Iterator[IndexLine]:
        return finished_entries(self.run_dir, self.state, self.database)


def _provider(where: _StateOf) -> str | None:
    """The provider the run's state names, if there is a state."""
    store = open_run_state(where.run_dir, where.state, where.database)
    if store is None:
        return None
    with store:
        return store.get_meta("provider")


def writer_for(fmt: str) -> type[Writer]:
    if fmt not in FORMATS:
        raise UnknownFormat(f"unknown export format {fmt!r}; choose from {', '.join(FORMATS)}")
    return FORMATS[fmt]


def _scan(where: _StateOf, exclude_flagged: bool) -> _Scan:
    columns = ColumnScan()
    missing, excluded = [], []
    for line in where.entries():
        if exclude_flagged and qa_codes(line.entry):
            excluded.append(line)
            continue
        columns.add(line.entry)
        if not (where.run_dir / line.video).is_file():
            missing.append(line)
    return _Scan(columns.columns(), missing, excluded)


class _Feed:
    """The samples of the second pass, counted into `provenance`, naming the row whose video
    has gone; each video opened and checked where the writer copies videos (a mismatch is
    left out with `skip_mismatched`, else raised)."""

    def __init__(
        self,
        where: _StateOf,
        columns: Columns,
        skip: set[str],
        provenance: Provenance,
        skip_mismatched: bool = False,
    ) -> None:
        self.run_dir = where.run_dir
        self.where = where
        self.columns = columns
        self.skip = skip
        self.provenance = provenance
        self.inputs = InputFiles(where.run_dir, where.state, where.database)
        self.skip_mismatched = skip_mismatched
        self.mismatched: list[str] = []
        self.current: Sample | None = None
        self.copies = True

    def into(self, writer: Writer) -> list[str]:
        self.copies = writer.copies_videos
        try:
            return writer.write(self._samples())
        except FileNotFoundError as exc:
            row = self.current.row_id if self.current else "?"
            raise MissingVideo([(row, str(exc.filename))]) from None

    def _samples(self) -> Iterator[Sample]:
        for line in counted(self.where.entries(), "exporting"):
            if line.job_id in self.skip:
                continue
            try:
                opened = self._open(line)
            except VideoMismatch:
                if not self.skip_mismatched:
                    raise
                self.mismatched.append(line.row_id)
                self.provenance.skipped_missing += 1
                continue
            with opened or contextlib.nullcontext():
                row = self.columns.row(line.entry)
                video = self.run_dir / line.video
                inputs = self.inputs.of(line.entry.get("request") or {})
                key = sample_key(line.job_id)
                self.current = Sample(key, line.entry, row, video, inputs, opened)
                self.provenance.add(line.entry, inputs)
                yield self.current

    def _open(self, line: IndexLine) -> BinaryIO | None:
        """The checked video where the writer copies videos; else only refuse a link."""
        entry = line.entry
        if self.copies:
            return open_checked(self.run_dir, line.video, entry.get("sha256"), entry.get("bytes"))
        open_inside(self.run_dir, line.video).close()
        return None


def _publish(target: Target, written: list[str], writer: Writer, run: str) -> tuple[Path, ...]:
    """Move the staged files into the folder in order, remove what the earlier export left
    and this one did not write, and record what the folder now holds of exports."""
    out = target.out
    for relative in written:
        dest = out / relative
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(target.staging / relative, dest)
    kept = target.remove_stale(written, writer.owns)
    shutil.rmtree(target.staging)
    target.record(writer.name, run, {*written, *kept})
    return tuple(out / relative for relative in written)
