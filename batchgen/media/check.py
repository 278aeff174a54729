"""What a run asks of each download before the job is `done`: probe the file and judge it, in
one call (`check_video`; a worker process runs it, workers.py). The download stage records what
it found in the state.

A file whose first bytes are no video's (an HTML page served with status 200, a JSON error)
never gets here: the download refuses it before it replaces anything (download.NotAVideo).
Anything with a video signature is a video, flagged or not: frames that do not decode are a
finding, not a refusal.
"""

from __future__ import annotations

from pathlib import Path

from batchgen.media.facts import Decode
from batchgen.media.probe import probe_video
from batchgen.media.qa import Expected, VideoCheck, findings


def check_video(path: Path, expected: Expected, decode: Decode = "I/P") -> VideoCheck:
    """Probe the video at `path` (decoding the frames `decode` names) and judge it against
    `expected`."""
    probe = probe_video(path, decode=decode)
    return VideoCheck(probe, tuple(findings(probe, expected)))
