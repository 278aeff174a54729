"""The one call a run makes after each download, before the job is `done`: probe the file and
judge it (in a worker thread), and record both in the state.

A file whose first bytes are no video's (an HTML page served with status 200, a JSON error)
never gets here: the download refuses it before it replaces anything (download.NotAVideo).
Anything with a video signature is a video, flagged or not: frames that do not decode are a
finding, not a refusal.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio

from batchgen.media.probe import Probe, probe_video
from batchgen.media.qa import Expected, Finding, expected_of, findings
from batchgen.store import JobRecord, Store


@dataclass(frozen=True, slots=True)
class VideoCheck:
    """A video's probe and its QA findings (empty when clean)."""

    probe: Probe
    findings: tuple[Finding, ...]

    def as_json(self) -> dict[str, Any]:
        """{"probe": ..., "qa": [...]}, as the index and the sidecars write it."""
        return {"probe": self.probe.as_json(), "qa": [f.as_json() for f in self.findings]}


def check_video(path: Path, expected: Expected) -> VideoCheck:
    """Probe the video at `path` and judge it against `expected`."""
    probe = probe_video(path)
    return VideoCheck(probe, tuple(findings(probe, expected)))


async def check_download(store: Store, job: JobRecord, path: Path, sha256: str) -> VideoCheck:
    """Check the video just downloaded for `job` at `path` in a worker thread and record the
    result in the state (under `sha256`); the caller then writes the sidecar and marks the
    job done."""
    expected = expected_of(job.request, store.image_size)
    check = await anyio.to_thread.run_sync(check_video, path, expected)
    findings_json = [finding.as_json() for finding in check.findings]
    store.record_check(job.job_id, sha256, check.probe.as_json(), findings_json)
    return check
