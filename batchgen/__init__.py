"""batchgen: bulk image-to-video generation on the Kling API, resumable and reproducible.

The names below load on first use, so that `import batchgen` (and the command's first moment,
when it must already answer SIGTERM) stays light.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from batchgen.errors import BatchgenError, ManifestInvalid, Problem
    from batchgen.jobs import JobSpec
    from batchgen.pipeline import run
    from batchgen.settings import Settings
    from batchgen.status import JobStatus

__all__ = [
    "BatchgenError",
    "JobSpec",
    "JobStatus",
    "ManifestInvalid",
    "Problem",
    "Settings",
    "run",
]

_HOMES = {
    "BatchgenError": "batchgen.errors",
    "ManifestInvalid": "batchgen.errors",
    "Problem": "batchgen.errors",
    "JobSpec": "batchgen.jobs",
    "JobStatus": "batchgen.status",
    "Settings": "batchgen.settings",
    "run": "batchgen.pipeline",
}


def __getattr__(name: str) -> object:
    if name not in _HOMES:
        raise AttributeError(f"module 'batchgen' has no attribute {name!r}")
    return getattr(import_module(_HOMES[name]), name)
