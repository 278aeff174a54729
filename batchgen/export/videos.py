"""Each video checked before an export takes it: a regular file inside the run folder, reached
through no symbolic link, of the size and sha256 its index line records. The check opens the
file once and the export reads that open file, so what is hashed is what is exported.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from batchgen.errors import VideoMismatch

CHUNK = 1 << 20


def open_checked(run_dir: Path, relative: str, sha256: object, size: object) -> BinaryIO:
    """The video at `relative` (a path inside `run_dir`), opened and positioned at its start
    once its bytes hash to `sha256`; VideoMismatch naming why not."""
    video = open_inside(run_dir, relative)
    try:
        found = os.fstat(video.fileno()).st_size
        if size is not None and found != size:
            raise VideoMismatch(f"{relative}: {found} bytes, its index line says {size}")
        digest = _sha256(video)
        if digest != sha256:
            raise VideoMismatch(f"{relative}: sha256 {digest}, its index line says {sha256}")
        video.seek(0)
    except BaseException:
        video.close()
        raise
    return video


def open_inside(run_dir: Path, relative: str) -> BinaryIO:
    """`relative` opened for reading, refusing a symbolic link on the way or at the end, and
    anything but a regular file; VideoMismatch (missing: FileNotFoundError)."""
    parts = PurePosixPath(relative).parts
    for depth in range(1, len(parts)):
        if (run_dir.joinpath(*parts[:depth])).is_symlink():
            raise VideoMismatch(f"{relative}: {'/'.join(parts[:depth])} is a symbolic link")
    try:
        fd = os.open(run_dir / relative, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        if (run_dir / relative).is_symlink():
            raise VideoMismatch(f"{relative} is a symbolic link, not a video") from None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise VideoMismatch(f"{relative} is not a regular file")
    return os.fdopen(fd, "rb")


def _sha256(video: BinaryIO) -> str:
    digest = hashlib.sha256()
    while block := video.read(CHUNK):
        digest.update(block)
    return digest.hexdigest()
