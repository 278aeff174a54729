"""Is each downloaded video the one that was asked for?

sniff    what a file's first bytes say it is
probe    the facts of a video file, read with PyAV (`probe_video`)
qa       findings from those facts and the request (`findings`, pure)
check    a video probed and judged in one call (`check_video`)
workers  that call in worker processes, one per core, off the event loop (`CheckWorkers`)
spawning how those processes are started: safe against a parent killed as it starts them
"""

from batchgen.media.check import VideoCheck, check_video
from batchgen.media.probe import FrameStats, Probe, probe_video
from batchgen.media.qa import Expected, Finding, expected_of, findings
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
