"""`--format webdataset`: tar shards `000000.tar`, `000001.tar`, ... of `shard_size` samples.

Each sample is two members sharing a key (the job id, which has no dots): `<key>.mp4`, the
video, and `<key>.json`, its index line with `video` naming the member beside it. Samples are
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

from batchgen.export.base import Sample, Writer, sync

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
    """`<key>.mp4` then `<key>.json`: the video, and its index line naming that member."""
    member = f"{sample.key}{sample.video.suffix.lower() or '.mp4'}"
    video = sample.file
    assert video is not None, "the exporter opens and checks every video it hands over"
    tar.addfile(member_info(member, os.fstat(video.fileno()).st_size), video)
    description = {**sample.entry, "video": member}
    data = json.dumps(description, sort_keys=True, ensure_ascii=False).encode()
    tar.addfile(member_info(f"{sample.key}.json", len(data)), io.BytesIO(data))


def member_info(name: str, size: int) -> tarfile.TarInfo:
    """A regular file member that carries nothing of the machine or the time it was made."""
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = MTIME
    info.mode = MODE
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info
