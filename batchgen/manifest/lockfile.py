"""`manifest.lock.json`: the jobs a manifest resolved to, so a dataset build can be re-created.

The file is JSON with one job per line (readable diffs): batchgen's version, the run name, and
for every job, sorted by job id, its id, row id and the exact request (images by sha256).
`run --locked` refuses a manifest that no longer resolves to exactly these jobs.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from importlib.metadata import version
from pathlib import Path

from batchgen.errors import LockMismatch
from batchgen.jobs import JobSpec

LOCK_NAME = "manifest.lock.json"
SHOWN_DIFFERENCES = 10


def write_lock(path: Path, run_name: str, jobs: Iterable[tuple[str, str, str]]) -> int:
    """Write the lock from (job_id, row_id, request_json) sorted by job id; returns the count."""
    tmp = path.with_name(path.name + ".tmp")
    count = 0
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(
            f'{{"batchgen": {json.dumps(version("batchgen"))}, '
            f'"name": {json.dumps(run_name)}, "jobs": [\n'
        )
        for job_id, row_id, request in jobs:
            sep = ",\n" if count else ""
            f.write(
                f'{sep}{{"job_id": "{job_id}", "row_id": {json.dumps(row_id)}, '
                f'"request": {request}}}'
            )
            count += 1
        f.write("\n]}\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return count


def read_locked_jobs(path: Path) -> dict[str, str]:
    """job_id → row_id of a lock file."""
    if not path.is_file():
        raise LockMismatch(f"--locked: no lock file at {path}; run once without --locked")
    with open(path, encoding="utf-8") as f:
        doc = json.load(f)
    return {job["job_id"]: job["row_id"] for job in doc["jobs"]}


class LockCheck:
    """Compares a manifest's jobs, as they stream by, with a lock file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.locked = read_locked_jobs(path)
        self.unexpected: list[str] = []
        self.seen = 0

    def see(self, spec: JobSpec) -> None:
        if self.locked.get(spec.job_id) == spec.row_id:
            self.seen += 1
        elif len(self.unexpected) < SHOWN_DIFFERENCES:
            self.unexpected.append(f"{spec.row_id} ({spec.job_id})")

    def verify(self) -> None:
        """Raise LockMismatch naming the differences, if any."""
        missing = len(self.locked) - self.seen
        if not self.unexpected and missing == 0:
            return
        parts = []
        if self.unexpected:
            parts.append("not in the lock: " + ", ".join(self.unexpected))
        if missing:
            parts.append(f"{missing} locked job(s) no longer produced by the manifest")
        raise LockMismatch(
            f"--locked: the manifest does not match {self.path}: " + "; ".join(parts)
        )
