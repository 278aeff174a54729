"""`--format webdataset`: tar shards `000000.tar`, `000001.tar`, ... of `shard_size` samples.

Each sample is the members sharing a key (the job id, which has no dots): `<key>.mp4`, the
video; `<key>.image.jpg` (or `.png`), its input image as sent, and where given
`<key>.image_tail.jpg`, `<key>.static_mask.png`, `<key>.dynamic_mask_0.png`...; then
`<key>.json`, its index line with `video`, `image`... naming the members beside it. Samples are
in job-id order and every member has a fixed mtime, owner and mode, so exporting the same run
twice gives byte-identical shards. Plain (uncompressed) POSIX tar, written with `tarfile`.
"""

from __future__ import annotations

import io
import json
import os
import re
import tarfile
from collections.abc import Iterable
from itertools import chain, islice
from pathlib import Path
from typing import Any

from batchgen.export.base import Sample, Writer, sync
from batchgen.export.inputs import DYNAMIC_MASKS, suffix_of

SHARD_NAME = "{:06d}.tar"
SHARD_PATTERN = re.compile(r"\d{6,}\.tar")
MTIME = 0
MODE = 0o644


class WebDatasetWriter(Writer):
    name = "webdataset"

    def write(self, samples: Iterable[Sample]) -> list[str]:
        shards: list[str] = []
        remaining = iter(samples)
        while (first := next(remaining, None)) is not None:
            name = SHARD_NAME.format(len(shards))
            shard = chain([first], islice(remaining, self.shard_size - 1))
            write_shard(self.staging / name, shard)
            shards.append(name)
        return shards

    def owns(self, relative: str) -> bool:
        return SHARD_PATTERN.fullmatch(relative) is not None


def write_shard(path: Path, samples: Iterable[Sample]) -> None:
    """One tar file holding `samples`, synced to disk."""
    with open(path, "wb") as f:
        with tarfile.open(fileobj=f, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for sample in samples:
                add_sample(tar, sample)
        sync(f)


def add_sample(tar: tarfile.TarFile, sample: Sample) -> None:
    """`<key>.mp4`, its input images, then `<key>.json`: the index line naming those members."""
    member = f"{sample.key}{sample.video.suffix.lower() or '.mp4'}"
    video = sample.file
    assert video is not None, "the exporter opens and checks every video it hands over"
    tar.addfile(member_info(member, os.fstat(video.fileno()).st_size), video)
    description: dict[str, Any] = {**sample.entry, "video": member}
    masks = []
    for name, path in sample.inputs.files.items():
        image = f"{sample.key}.{name}{suffix_of(path)}"
        add_file(tar, image, path)
        if name.startswith("dynamic_mask_"):
            masks.append(image)
        else:
            description[name] = image
    if masks:
        description[DYNAMIC_MASKS] = masks
    data = json.dumps(description, sort_keys=True, ensure_ascii=False).encode()
    tar.addfile(member_info(f"{sample.key}.json", len(data)), io.BytesIO(data))


def add_file(tar: tarfile.TarFile, member: str, path: Path) -> None:
    with open(path, "rb") as f:
        tar.addfile(member_info(member, os.fstat(f.fileno()).st_size), f)


def member_info(name: str, size: int) -> tarfile.TarInfo:
    """A regular file member that carries nothing of the machine or the time it was made."""
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = MTIME
    info.mode = MODE
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info
