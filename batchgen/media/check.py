"""The one call a run makes after each download, before the job is `done`: probe the file and
judge it (in a worker thread), record both in the state, and refuse a file that is no video.

A file is no video when PyAV finds no video stream in it and its first bytes match no video
signature (an HTML page served with status 200, a JSON error, ...). `check_download` then
raises NotAVideo after moving the file to `<name>.rejected` (kept for inspection, never
deleted while the job has no video): the job must stay `downloading`, with the error's message
as its reason, and be downloaded again (from a fresh URL). Anything with a video stream is a
video, flagged or not.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio

from batchgen.errors import ProviderError
from batchgen.media.probe import Probe, probe_video
from batchgen.media.qa import Expected, Finding, expected_of, findings
from batchgen.media.sniff import container_of, describe_other, read_head
from batchgen.store import JobRecord, Store

REJECTED_SUFFIX = ".rejected"


class NotAVideo(ProviderError):
    """The video URL answered with a file that is not a video (e.g. an HTML page with 200)."""


@dataclass(frozen=True, slots=True)
class VideoCheck:
    """A video's probe and its QA findings (empty when clean)."""

    probe: Probe
    findings: tuple[Finding, ...]

    def as_json(self) -> dict[str, Any]:
        """{"probe": ..., "qa": [...]}, as the index and the sidecars write it."""
        return {"probe": self.probe.as_json(), "qa": [f.as_json() for f in self.findings]}


def check_video(path: Path, expected: Expected) -> VideoCheck:
    """Probe the video at `path` and judge it against `expected`. Raises NotAVideo (having
    moved the file to `<name>.rejected`) when it is no video at all; a video removes the
    `.rejected` file an earlier download of it left."""
    probe = probe_video(path)
    rejected = path.with_name(path.name + REJECTED_SUFFIX)
    if not probe.is_video and container_of(read_head(str(path))) is None:
        raise _rejected(path, rejected)
    rejected.unlink(missing_ok=True)
    return VideoCheck(probe, tuple(findings(probe, expected)))


async def check_download(store: Store, job: JobRecord, path: Path, sha256: str) -> VideoCheck:
    """Check the video just downloaded for `job` at `path` in a worker thread and record the
    result in the state (under `sha256`); the caller then writes the sidecar and marks the
    job done. Raises NotAVideo: see the module docstring."""
    expected = expected_of(job.request, store.image_size)
    check = await anyio.to_thread.run_sync(check_video, path, expected)
    findings_json = [finding.as_json() for finding in check.findings]
    store.record_check(job.job_id, sha256, check.probe.as_json(), findings_json)
    return check


def _rejected(path: Path, kept: Path) -> NotAVideo:
    what = describe_other(read_head(str(path)), path.stat().st_size)
    os.replace(path, kept)
    shown = f"{kept.parent.name}/{kept.name}"
    return NotAVideo(f"the video URL answered with {what}, not a video (kept as {shown})")
