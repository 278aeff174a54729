"""`--format hf`: a folder the Hugging Face `datasets` "videofolder" builder loads as it is.

    <out>/
        metadata.jsonl          one line per video: file_name + the columns of columns.py
        videos/<row id>.mp4     hard links to the run's videos (copies across file systems)

    load_dataset("videofolder", data_dir="<out>")

`file_name` is the path of the video relative to the folder holding metadata.jsonl, as the
datasets docs require ("it must be the relative path from the directory containing the
metadata to the video file", docs/source/video_dataset.mdx). The videos are linked into the
export rather than named as `../../videos/x.mp4`: released versions of the folder builder only
read media files found under `data_dir` and match metadata to them by that relative path, and a
folder uploaded to the Hub must hold its files. A hard link costs no space; since batchgen only
ever replaces a video by renaming a new file over it, the export keeps the bytes it was made
from. The loader turns `file_name` into the `video` column, so the run-relative `video`
column is left out, and a column the loader would take for a file reference (`*_file_name`,
`*_file_names`) gets a trailing `_`.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable
from pathlib import Path, PurePosixPath
from typing import Any

from batchgen.export.base import Sample, Writer, sync
from batchgen.export.entries import IndexInvalid

METADATA_NAME = "metadata.jsonl"
VIDEOS = "videos"
VIDEO_SUFFIXES = frozenset({".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v"})


class HfWriter(Writer):
    name = "hf"

    def write(self, samples: Iterable[Sample]) -> list[str]:
        (self.staging / VIDEOS).mkdir(parents=True, exist_ok=True)
        videos: list[str] = []
        with open(self.staging / METADATA_NAME, "w", encoding="utf-8") as metadata:
            for sample in samples:
                file_name = self._link(sample)
                line = metadata_line(file_name, sample.row)
                metadata.write(json.dumps(line, ensure_ascii=False) + "\n")
                videos.append(file_name)
            sync(metadata)
        return [*videos, METADATA_NAME]

    def owns(self, relative: str) -> bool:
        if relative == METADATA_NAME:
            return True
        path = PurePosixPath(relative)
        return path.parent.as_posix() == VIDEOS and path.suffix.lower() in VIDEO_SUFFIXES

    def _link(self, sample: Sample) -> str:
        file_name = f"{VIDEOS}/{sample.video.name}"
        dest = self.staging / file_name
        if dest.exists():
            raise IndexInvalid(f"two rows have a video named {sample.video.name!r}")
        link_or_copy(sample.video, dest)
        return file_name


def metadata_line(file_name: str, row: dict[str, Any]) -> dict[str, Any]:
    """The metadata.jsonl line of a video: `file_name` first, then the row's columns."""
    line: dict[str, Any] = {"file_name": file_name}
    line.update((loader_safe(name), value) for name, value in row.items() if name != "video")
    return line


def loader_safe(column: str) -> str:
    """A column name the folder builder will not read as a reference to a media file."""
    return column + "_" if column.endswith(("_file_name", "_file_names")) else column


def link_or_copy(source: Path, dest: Path) -> None:
    """Hard-link `source` at `dest`, or copy it where links are not possible."""
    try:
        os.link(source, dest)
    except OSError:
        shutil.copyfile(source, dest)
