"""A run's finished jobs, one entry at a time: from its state where there is one, else from
index.jsonl, each entry checked and kept with its line number.

The state is current at every moment (a job is `done` once its video is in place), while
index.jsonl is rewritten from it when a run ends: an export made during a run, or after one was
killed, reads `finished_entries` and so has every paid video. On a run kept in PostgreSQL
(`database`) the state is the run's schema there, which every worker writes: the entries are
every worker's finished jobs, whatever the index in this run folder holds. Both sources
stream, so memory does not grow with the number of finished jobs.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from batchgen.errors import IndexInvalid
from batchgen.output import INDEX_NAME, index_entry
from batchgen.state.connect import STATE_NAME
from batchgen.state.store import Store

REQUIRED_KEYS = ("job_id", "row_id", "video")


@dataclass(frozen=True, slots=True)
class IndexLine:
    """One entry of index.jsonl; `video` is a path relative to the run folder."""

    line: int
    entry: dict[str, Any]

    @property
    def job_id(self) -> str:
        return str(self.entry["job_id"])

    @property
    def row_id(self) -> str:
        return str(self.entry["row_id"])

    @property
    def video(self) -> str:
        return str(self.entry["video"])


def index_path(run_dir: Path) -> Path:
    return run_dir / INDEX_NAME


def open_run_state(
    run_dir: Path, state: Path | None = None, database: str | None = None
) -> Store | None:
    """The state of the run in `run_dir`, or None when it has none: on `database`, the run's
    schema there (a StateError if it has none); else the file `state` (default
    RUN/state.sqlite) when it exists."""
    if database is not None:
        return Store.open(run_dir / STATE_NAME, database, create=False)
    path = state if state is not None else run_dir / STATE_NAME
    return Store.open(path) if path.is_file() else None


def finished_entries(
    run_dir: Path, state: Path | None = None, database: str | None = None
) -> Iterator[IndexLine]:
    """The index entries of `run_dir`'s finished jobs in job-id order: from its state (see
    `open_run_state`) when there is one, numbered from 1, else from index.jsonl."""
    store = open_run_state(run_dir, state, database)
    if store is None:
        yield from read_lines(run_dir)
        return
    with store:
        for number, (job, check) in enumerate(store.checks.done_with_checks(), start=1):
            entry = index_entry(job, None if check is None else check.as_json())
            yield IndexLine(number, entry)


def read_lines(run_dir: Path) -> Iterator[IndexLine]:
    """The entries of `run_dir`'s index in file order. Raises IndexInvalid naming the line."""
    path = index_path(run_dir)
    if not path.is_file():
        raise IndexInvalid(f"no {INDEX_NAME} in {run_dir}: is this a run folder?")
    with open(path, encoding="utf-8") as f:
        for number, text in enumerate(f, start=1):
            if text.strip():
                yield parse_line(text, number, path)


def parse_line(text: str, number: int, path: Path) -> IndexLine:
    """Check one line: a JSON object with the required keys and a video inside the run."""
    where = f"{path} line {number}"
    try:
        entry = json.loads(text)
    except json.JSONDecodeError as exc:
        raise IndexInvalid(f"{where}: not JSON ({exc.msg})") from None
    if not isinstance(entry, dict):
        raise IndexInvalid(f"{where}: not a JSON object")
    absent = [key for key in REQUIRED_KEYS if not entry.get(key)]
    if absent:
        raise IndexInvalid(f"{where}: no {', '.join(absent)}")
    if not is_inside(str(entry["video"])):
        raise IndexInvalid(f"{where}: video {entry['video']!r} is not a path inside the run")
    return IndexLine(number, entry)


def is_inside(relative: str) -> bool:
    """Whether a posix path stays inside the folder it is relative to."""
    path = PurePosixPath(relative)
    return not path.is_absolute() and ".." not in path.parts and "\\" not in relative
