"""batchgen: bulk image-to-video generation on the Kling API, resumable and reproducible."""

from batchgen.errors import BatchgenError, ManifestInvalid, Problem
from batchgen.jobs import JobSpec
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


def __getattr__(name: str) -> object:
    """`batchgen.run` loads the runner only when asked for (keeps `import batchgen` light)."""
    if name == "run":
        from batchgen.pipeline import run

        return run
    raise AttributeError(name)
