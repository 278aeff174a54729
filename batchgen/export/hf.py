"""`--format hf`: a folder the Hugging Face `datasets` "videofolder" builder loads as it is.

    <out>/
        metadata.parquet        one row per video: file_name + the typed columns of columns.py
        videos/<row id>.mp4     hard links to the run's videos (copies across file systems)
        videos/<row id>.image.jpg   its input image as sent (and .image_tail, .static_mask,
                                .dynamic_mask_0...), hard links too
        README.md               the dataset card: provenance, columns, how to load (card.py)
        croissant.json          the same dataset described in Croissant 1.1 (croissant.py)

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

The folder builder resolves only the video column's paths, so the input images (`image`,
`image_tail`, `static_mask`) are Image columns holding their bytes (and the path of the file
beside the video), declared as such in the Parquet schema's `huggingface` metadata:
`ds[0]["image"]` is the input image, and the Hub's viewer shows it. Row groups are bounded in
bytes as well as in rows, so memory stays bounded with the images inline.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

import pyarrow as pa
import pyarrow.parquet as pq

from batchgen.download import file_sha256
from batchgen.errors import IndexInvalid
from batchgen.export.base import Sample, Writer, sync
from batchgen.export.card import REPRODUCIBILITY, Provenance, render_card
from batchgen.export.columns import Columns, Kind
from batchgen.export.croissant import CROISSANT_NAME, CroissantRecord, croissant
from batchgen.export.inputs import DYNAMIC_MASKS, suffix_of

METADATA_NAME = "metadata.parquet"
CARD_NAME = "README.md"
VIDEOS = "videos"
VIDEO_SUFFIXES = frozenset({".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v"})
INPUT_SUFFIXES = frozenset({".jpg", ".png", ".img"})
ROW_GROUP = 10_000  # rows per Parquet row group: memory stays bounded on large runs
ROW_GROUP_BYTES = 64 * 1024 * 1024  # ... and image bytes per row group
IMAGE_TYPE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])  # datasets' Image
ARROW_TYPES = {
    Kind.STRING: pa.string(),
    Kind.INT: pa.int64(),
    Kind.FLOAT: pa.float64(),
    Kind.BOOL: pa.bool_(),
    Kind.STRINGS: pa.list_(pa.string()),
    Kind.IMAGE: IMAGE_TYPE,
}


class HfWriter(Writer):
    name = "hf"

    def __init__(self, staging: Path, columns: Columns, shard_size: int) -> None:
        super().__init__(staging, columns, shard_size)
        self.record = CroissantRecord()
        self._hashes: dict[Path, str] = {}  # input image -> sha256, each hashed once

    def write(self, samples: Iterable[Sample]) -> list[str]:
        (self.staging / VIDEOS).mkdir(parents=True, exist_ok=True)
        schema = self.schema()
        videos: list[str] = []
        with open(self.staging / METADATA_NAME, "wb") as f:
            with pq.ParquetWriter(f, schema) as table:
                for batch in _batches(self._lines(samples, videos)):
                    table.write_table(pa.Table.from_pylist(batch, schema=schema))
            sync(f)
        self.record.add_file(METADATA_NAME, file_sha256(self.staging / METADATA_NAME))
        return [*videos, METADATA_NAME]

    def describe(self, provenance: Provenance) -> list[str]:
        """README.md (the card), then croissant.json, which names the card's sha256 too."""
        kinds = {"file_name": Kind.STRING}
        kinds |= {loader_safe(name): kind for name, kind in self._kinds().items()}
        self._write_text(CARD_NAME, render_card(provenance, kinds))
        self.record.add_file(CARD_NAME, file_sha256(self.staging / CARD_NAME))
        about = f"{provenance.exported} videos made with Kling image-to-video.\n{REPRODUCIBILITY}"
        document = croissant(provenance.run, about, kinds, self.record, provenance.provider)
        self._write_text(CROISSANT_NAME, json.dumps(document, indent=2, ensure_ascii=False))
        return [CARD_NAME, CROISSANT_NAME]

    def _write_text(self, name: str, text: str) -> None:
        with open(self.staging / name, "w", encoding="utf-8") as f:
            f.write(text)
            sync(f)

    def schema(self) -> pa.Schema:
        """file_name, then every column but `video`, each with its Arrow type; the image
        columns declared as `datasets` Image features."""
        kinds = self._kinds()
        fields = [pa.field("file_name", pa.string(), nullable=False)]
        fields += [pa.field(loader_safe(name), ARROW_TYPES[kind]) for name, kind in kinds.items()]
        images = {name: {"_type": "Image"} for name, kind in kinds.items() if kind is Kind.IMAGE}
        features = json.dumps({"info": {"features": images}})
        return pa.schema(fields, metadata={"huggingface": features})

    def owns(self, relative: str) -> bool:
        if relative in (METADATA_NAME, CARD_NAME, CROISSANT_NAME):
            return True
        path = PurePosixPath(relative)
        suffixes = VIDEO_SUFFIXES | INPUT_SUFFIXES
        return path.parent.as_posix() == VIDEOS and path.suffix.lower() in suffixes

    def _kinds(self) -> dict[str, Kind]:
        return {name: kind for name, kind in self.columns.kinds.items() if name != "video"}

    def _lines(self, samples: Iterable[Sample], files: list[str]) -> Iterator[dict[str, Any]]:
        for sample in samples:
            assert sample.file is not None, "the exporter opens and checks every video"
            file_name = self._link(sample.video, sample.video.name, sample.file)
            self.record.add_file(file_name, str(sample.entry.get("sha256") or ""))
            self.record.add_task(file_name, sample.entry)
            row = dict(sample.row)
            masks = []
            for name, path in sample.inputs.files.items():
                linked = self._link(path, f"{sample.video.stem}.{name}{suffix_of(path)}")
                self.record.add_file(linked, self._sha256(path))
                files.append(linked)
                if name.startswith("dynamic_mask_"):
                    masks.append(linked)
                elif name in row:
                    row[name] = {"bytes": path.read_bytes(), "path": linked}
            row[DYNAMIC_MASKS] = masks or None
            files.append(file_name)
            yield metadata_line(file_name, row)

    def _sha256(self, path: Path) -> str:
        if path not in self._hashes:
            self._hashes[path] = file_sha256(path)
        return self._hashes[path]

    def _link(self, source: Path, name: str, opened: BinaryIO | None = None) -> str:
        """`source` as `videos/<name>` in the staging folder; `opened`: the file the exporter
        checked against its sha256 (a video), linked only where it is still that file."""
        file_name = f"{VIDEOS}/{name}"
        dest = self.staging / file_name
        if dest.exists():
            raise IndexInvalid(f"two rows have a file named {name!r}")
        if opened is not None:
            link_or_copy(source, opened, dest)
        else:
            with open(source, "rb") as kept:
                link_or_copy(source, kept, dest)
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


def _batches(lines: Iterator[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    """The lines in row groups of at most ROW_GROUP rows and about ROW_GROUP_BYTES of images."""
    batch: list[dict[str, Any]] = []
    held = 0
    for line in lines:
        batch.append(line)
        held += sum(len(v["bytes"]) for v in line.values() if isinstance(v, dict) and "bytes" in v)
        if len(batch) >= ROW_GROUP or held >= ROW_GROUP_BYTES:
            yield batch
            batch, held = [], 0
    if batch:
        yield batch
