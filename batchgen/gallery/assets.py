"""The gallery's pictures, under `<run>/gallery/`: a poster frame for each video (its middle
frame) and a thumbnail for each input image, JPEGs at most THUMB px on the long side.

Each file is named after what it shows (the video's sha256, the image's ref), so a picture is
made once and a gallery built again only makes the missing ones. An input thumbnail is only
made from a local file whose bytes still hash to the ref the job sent. Pictures are made in a
pool of threads (PyAV and Pillow release the GIL while decoding).
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import av
from PIL import Image

from batchgen.manifest.images import MAX_BYTES, digest_ref, is_url

ASSETS_DIR = "gallery"
THUMB = 320
JPEG_QUALITY = 80
NAME_HEX = 24

SourceOf = Callable[[str], str | None]  # image ref -> local file holding it, if known
Job = tuple[Callable[[Path, Path], bool], Path, Path]  # (maker, source, relative destination)


def poster_name(sha256: str) -> str:
    return f"{ASSETS_DIR}/posters/{sha256[:NAME_HEX]}.jpg"


def thumbnail_name(ref: str) -> str:
    return f"{ASSETS_DIR}/inputs/{hashlib.sha256(ref.encode()).hexdigest()[:NAME_HEX]}.jpg"


def make_pictures(run_dir: Path, jobs: Iterable[Job], workers: int | None = None) -> set[str]:
    """Make every picture of `jobs` that is not there yet; the relative names that exist."""
    todo = list(jobs)
    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 2) as pool:
        made = pool.map(lambda job: _ensure(run_dir, *job), todo)
        return {str(name) for (_, _, name), ok in zip(todo, made, strict=True) if ok}


def poster_job(run_dir: Path, video: str, sha256: str) -> Job:
    return make_poster, run_dir / video, Path(poster_name(sha256))


def thumbnail_job(ref: str, source: str) -> Job:
    return _thumbnail_checked(ref), Path(source), Path(thumbnail_name(ref))


def local_source(ref: str, source_of: SourceOf) -> str | None:
    """The local file to make `ref`'s thumbnail from, or None (unknown, or a URL)."""
    source = source_of(ref)
    return None if source is None or is_url(source) else source


def make_poster(video: Path, dest: Path) -> bool:
    """Save the middle frame of `video` (the last one that decodes, if fewer do) at `dest`."""
    try:
        with av.open(str(video)) as container:
            stream = container.streams.video[0]
            frame = _middle_frame(_decoded(container, stream), (stream.frames or 0) // 2)
            if frame is None:
                return False
            _save(frame.to_image(), dest)
    except (av.error.FFmpegError, IndexError, OSError):
        return False
    return True


def _thumbnail_checked(ref: str) -> Callable[[Path, Path], bool]:
    def make(source: Path, dest: Path) -> bool:
        try:
            if source.stat().st_size > MAX_BYTES:
                return False
            data = source.read_bytes()
            if ref.startswith("sha256:") and digest_ref(data) != ref:
                return False
            with Image.open(io.BytesIO(data)) as image:
                image.draft("RGB", (THUMB, THUMB))
                _save(image.convert("RGB"), dest)
        except (OSError, Image.DecompressionBombError):
            return False
        return True

    return make


def _ensure(run_dir: Path, maker: Callable[[Path, Path], bool], source: Path, name: Path) -> bool:
    dest = run_dir / name
    if dest.is_file():
        return True
    dest.parent.mkdir(parents=True, exist_ok=True)
    return maker(source, dest)


def _decoded(container: Any, stream: Any) -> Iterator[Any]:
    for packet in container.demux(stream):
        try:
            frames = packet.decode()
        except av.error.InvalidDataError:
            continue
        yield from frames


def _middle_frame(frames: Iterator[Any], middle: int) -> Any:
    chosen = None
    for index, frame in enumerate(frames):
        chosen = frame
        if index >= middle:
            break
    return chosen


def _save(image: Image.Image, dest: Path) -> None:
    image.thumbnail((THUMB, THUMB))
    part = dest.with_name(dest.name + ".part")
    image.save(part, "JPEG", quality=JPEG_QUALITY)
    os.replace(part, dest)
