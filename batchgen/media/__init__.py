"""Is each downloaded video the one that was asked for?

sniff    what a file's first bytes say it is
facts    what a video file is, as values (`Probe`): no decoder
probe    those facts read with PyAV (`probe_video`)
qa       findings from those facts and the request (`findings`, `VideoCheck`; pure)
check    a video probed and judged in one call (`check_video`)
workers  that call in worker processes, one per core, off the event loop (`CheckWorkers`)
spawning how those processes are started: safe against a parent killed as it starts them
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from batchgen import lazy_names

if TYPE_CHECKING:
    from batchgen.media.check import check_video
    from batchgen.media.facts import FrameStats, Probe
    from batchgen.media.probe import probe_video
    from batchgen.media.qa import Expected, Finding, VideoCheck, expected_of, findings
    from batchgen.media.workers import CheckWorkers

__all__ = [
    "CheckWorkers",
    "Expected",
    "Finding",
    "FrameStats",
    "Probe",
    "VideoCheck",
    "check_video",
    "expected_of",
    "findings",
    "probe_video",
]

# Each name's module: imported when the name is first asked for, so that `media.sniff` (which a
# download's check of its first bytes needs) does not bring PyAV and Pillow into `report`,
# `export` or `verify` (about 0.1 s of their start).
__getattr__ = lazy_names(
    __name__,
    {
        "CheckWorkers": "batchgen.media.workers",
        "Expected": "batchgen.media.qa",
        "Finding": "batchgen.media.qa",
        "FrameStats": "batchgen.media.facts",
        "Probe": "batchgen.media.facts",
        "VideoCheck": "batchgen.media.qa",
        "check_video": "batchgen.media.check",
        "expected_of": "batchgen.media.qa",
        "findings": "batchgen.media.qa",
        "probe_video": "batchgen.media.probe",
    },
)
