"""`--format hf`: a folder the Hugging Face `datasets` "videofolder" builder loads as it is.

    <out>/
        metadata.parquet        one row per video: file_name + the typed columns of columns.py
        videos/<row id>.mp4     hard links to the run's videos (copies across file systems)
        README.md               the dataset card: provenance, columns, how to load (card.py)

    load_dataset("videofolder", data_dir="<out>")

The metadata is Parquet with an explicit schema, so every column has its real type even when
no row has a value in it (JSON lines leave the loader to guess: all-empty columns come back as
`null`). `file_name` is the path of the video relative to the folder holding the metadata, as
the datasets docs require ("it must be the relative path from the directory containing the
metadata to the video file", docs/source/video_dataset.mdx). The videos are linked into the
export rather than named as `../../videos/x.mp4`: released versions of the folder builder only
read media files found under `data_dir` and match metadata to them by that relative path, and a
folder uploaded to the Hub must hold its files. A hard link costs no space; since batchgen only
ever replaces a video by renaming a new file over it, the export keeps the bytes it was made
from. The loader turns `file_name` into the `video` column, so the run-relative `video`
column is left out, and a column the loader would take for a file reference (`*_file_name`,
`*_file_names`) gets a trailing `_`. A link is made to the very file the exporter checked
against its sha256 (the same inode), else the checked file is copied.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterable, Iterator
from itertools import islice
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

import pyarrow as pa
import pyarrow.parquet as pq

from batchgen.errors import IndexInvalid
from batchgen.export.base import Sample, Writer, sync
from batchgen.export.card import Provenance, render_card
from batchgen.export.columns import Kind

METADATA_NAME = "metadata.parquet"
CARD_NAME = "README.md"
VIDEOS = "videos"
VIDEO_SUFFIXES = frozenset({".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v"})
ROW_GROUP = 10_000  # rows per Parquet row group: memory stays bounded on large runs
ARROW_TYPES = {
    Kind.STRING: pa.string(),
    Kind.INT: pa.int64(),
    Kind.FLOAT: pa.float64(),
    Kind.BOOL: pa.bool_(),
    Kind.STRINGS: pa.list_(pa.string()),
}


class HfWriter(Writer):
    name = "hf"

    def write(self, samples: Iterable[Sample]) -> list[str]:
        (self.staging / VIDEOS).mkdir(parents=True, exist_ok=True)
        schema = self.schema()
        videos: list[str] = []
        with open(self.staging / METADATA_NAME, "wb") as f:
            with pq.ParquetWriter(f, schema) as table:
                for batch in _batches(self._lines(samples, videos), ROW_GROUP):
                    table.write_table(pa.Table.from_pylist(batch, schema=schema))
            sync(f)
        return [*videos, METADATA_NAME]

    def describe(self, provenance: Provenance) -> list[str]:
        kinds = {loader_safe(name): kind for name, kind in self._kinds().items()}
        card = render_card(provenance, {"file_name": Kind.STRING, **kinds})
        with open(self.staging / CARD_NAME, "w", encoding="utf-8") as f:
            f.write(card)
            sync(f)
        return [CARD_NAME]

    def schema(self) -> pa.Schema:
        """file_name, then every column but `video`, each with its Arrow type."""
        fields = [pa.field("file_name", pa.string(), nullable=False)]
        fields += [
            pa.field(loader_safe(name), ARROW_TYPES[kind]) for name, kind in self._kinds().items()
        ]
        return pa.schema(fields)

    def owns(self, relative: str) -> bool:
        if relative in (METADATA_NAME, CARD_NAME):
            return True
        path = PurePosixPath(relative)
        return path.parent.as_posix() == VIDEOS and path.suffix.lower() in VIDEO_SUFFIXES

    def _kinds(self) -> dict[str, Kind]:
        return {name: kind for name, kind in self.columns.kinds.items() if name != "video"}

    def _lines(self, samples: Iterable[Sample], videos: list[str]) -> Iterator[dict[str, Any]]:
        for sample in samples:
            file_name = self._link(sample)
            videos.append(file_name)
            yield metadata_line(file_name, sample.row)

    def _link(self, sample: Sample) -> str:
        file_name = f"{VIDEOS}/{sample.video.name}"
        dest = self.staging / file_name
        if dest.exists():
            raise IndexInvalid(f"two rows have a video named {sample.video.name!r}")
        assert sample.file is not None, "the exporter opens and checks every video it hands over"
        link_or_copy(sample.video, sample.file, dest)
        return file_name


def metadata_line(file_name: str, row: dict[str, Any]) -> dict[str, Any]:
    """The metadata row of a video: `file_name` first, then the row's columns."""
    line: dict[str, Any] = {"file_name": file_name}
    line.update((loader_safe(name), value) for name, value in row.items() if name != "video")
    return line


def loader_safe(column: str) -> str:
    """A column name the folder builder will not read as a reference to a media file."""
    return column + "_" if column.endswith(("_file_name", "_file_names")) else column


def link_or_copy(source: Path, opened: BinaryIO, dest: Path) -> None:
    """Hard-link `source` at `dest` where it is still the file `opened` (same inode), else
    copy the bytes of `opened` there."""
    with contextlib.suppress(OSError):
        os.link(source, dest, follow_symlinks=False)
        if os.stat(dest, follow_symlinks=False).st_ino == os.fstat(opened.fileno()).st_ino:
            return
        dest.unlink()
    opened.seek(0)
    with open(dest, "wb") as copy:
        shutil.copyfileobj(opened, copy)
        sync(copy)


def _batches(lines: Iterator[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    while batch := list(islice(lines, size)):
        yield batch
