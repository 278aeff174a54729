"""The one interface every export format implements, and the sample it is fed.

The exporter streams the index in job order and hands the finished jobs to a `Writer` as
`Sample`s. The writer puts its files under a staging folder and lists them in the order they
should be moved into the output folder (the file a loader opens first comes last, so it never
names a file not yet in place). `owns` tells which files of an earlier export of the format may
be removed when this one no longer writes them. A format that puts the videos themselves into
the export (`copies_videos`) is given each one already open and checked against its sha256
(videos.py): it reads that file, never the path again.
"""

from __future__ import annotations

import os
import re
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, BinaryIO, ClassVar

from batchgen.export.card import Provenance
from batchgen.export.columns import Columns
from batchgen.export.inputs import NO_INPUTS, SampleInputs

_UNSAFE_KEY = re.compile(r"[^A-Za-z0-9_-]")


@dataclass(frozen=True, slots=True)
class Sample:
    """One finished job to export."""

    key: str  # unique in the export, no dots: safe as a webdataset key or a file stem
    entry: dict[str, Any]  # the index line
    row: dict[str, Any]  # the entry as flat columns (see columns.py)
    video: Path  # the video file in the run folder
    inputs: SampleInputs = NO_INPUTS  # the files of its input images
    file: BinaryIO | None = None  # the video, open and checked, where the format copies videos

    @property
    def row_id(self) -> str:
        return str(self.entry["row_id"])


def sample_key(job_id: str) -> str:
    """A webdataset-safe key for a job: its id, with anything but [A-Za-z0-9_-] as `_`."""
    return _UNSAFE_KEY.sub("_", job_id)


class Writer(ABC):
    """One output format, writing one export into `staging` (`<out>/.staging`)."""

    name: ClassVar[str]
    copies_videos: ClassVar[bool] = True

    def __init__(self, staging: Path, columns: Columns, shard_size: int) -> None:
        self.staging = staging
        self.columns = columns
        self.shard_size = shard_size

    @property
    def out_dir(self) -> Path:
        """The folder the staged files are published into."""
        return self.staging.parent

    @abstractmethod
    def write(self, samples: Iterable[Sample]) -> list[str]:
        """Write every sample, consuming `samples` once; the paths written (relative to
        staging), in publishing order. Every file is closed and synced on return."""

    def describe(self, provenance: Provenance) -> list[str]:
        """Write what describes the finished export (a dataset card) into staging; the paths
        written, published after those of `write`. None by default."""
        return []

    @abstractmethod
    def owns(self, relative: str) -> bool:
        """Whether a file at `relative` that an earlier export wrote is one this format
        writes (and so may remove when this export does not write it again)."""


def sync(f: IO[Any]) -> None:
    """Flush and fsync `f` before it is closed, so a later rename publishes complete bytes."""
    f.flush()
    os.fsync(f.fileno())
