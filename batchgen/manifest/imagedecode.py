"""Full decoding of image content: what an image is, proved by decoding every block of it.

Reading the header alone lets through a PNG or JPEG cut short, which the provider would accept
and then fail (kling-api.md E17). `describe` decodes the whole stream: a PNG in full; a JPEG
in libjpeg's 1/8-scale mode, which still reads every block (a cut file is still found) with 64
times less memory. An image of more than `MAX_PIXELS` is refused without decoding (a small
file can hold a huge, memory-hungry image).

`ContentDecoder` runs `describe` in a shared thread pool (Pillow releases the GIL while it
decodes) at most once per content: its callers key each image by the SHA-256 of its bytes, and
a second caller of the same content waits for the first answer. The pixels being decoded at
once are bounded by a budget, so many large images do not fill the memory together.
"""

from __future__ import annotations

import io
import os
import threading
import warnings
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from batchgen.errors import ImageUnreadable

MAX_PIXELS = Image.MAX_IMAGE_PIXELS or 89_478_485
PIXEL_BUDGET = 64_000_000
JPEG_SCALE = 8
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


@dataclass(frozen=True, slots=True)
class Decoded:
    """An image that decoded in full."""

    format: str
    width: int
    height: int


def describe(data: bytes, budget: PixelBudget | None = None) -> Decoded:
    """The image's format and size, after decoding all of it; raises ImageUnreadable."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as picture:
                found = Decoded(str(picture.format), picture.width, picture.height)
                _decode(picture, budget or PixelBudget(PIXEL_BUDGET))
    except ImageUnreadable:
        raise
    except (Image.DecompressionBombError, MemoryError):
        raise ImageUnreadable(f"more than {MAX_PIXELS:,} pixels: refused unread") from None
    except (
        Exception
    ) as exc:  # Pillow's plugins raise many kinds (OSError, SyntaxError, ValueError...)
        raise ImageUnreadable(f"not a readable image ({_reason(exc)})") from None
    return found


def _decode(picture: Image.Image, budget: PixelBudget) -> None:
    pixels = picture.width * picture.height
    if pixels > MAX_PIXELS:
        raise ImageUnreadable(
            f"{picture.width}x{picture.height} is more than {MAX_PIXELS:,} pixels"
        )
    if picture.format in ("JPEG", "MPO"):
        picture.draft(picture.mode, (picture.width // JPEG_SCALE, picture.height // JPEG_SCALE))
        pixels = picture.width * picture.height
    with budget.taken(pixels):
        picture.load()


def _reason(exc: Exception) -> str:
    text = str(exc).split("\n")[0][:200]
    if "truncated" in text:
        return "the file is cut short"
    if isinstance(exc, UnidentifiedImageError):
        return "not a format Pillow knows"  # its message names an in-memory object
    return text or type(exc).__name__


class PixelBudget:
    """At most `total` pixels decoding at once; a larger image waits to decode alone."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.used = 0
        self._free = threading.Condition()

    def taken(self, pixels: int) -> _Taken:
        return _Taken(self, min(pixels, self.total))

    def acquire(self, pixels: int) -> None:
        with self._free:
            self._free.wait_for(lambda: self.used + pixels <= self.total)
            self.used += pixels

    def release(self, pixels: int) -> None:
        with self._free:
            self.used -= pixels
            self._free.notify_all()


class _Taken:
    def __init__(self, budget: PixelBudget, pixels: int) -> None:
        self.budget = budget
        self.pixels = pixels

    def __enter__(self) -> None:
        self.budget.acquire(self.pixels)

    def __exit__(self, *_: object) -> None:
        self.budget.release(self.pixels)


def shared_pool() -> ThreadPoolExecutor:
    """The process's decoding threads, started on first use."""
    global _pool
    with _pool_lock:
        if _pool is None:
            workers = min(8, os.cpu_count() or 1)
            _pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="batchgen-image")
        return _pool


class ContentDecoder:
    """`describe` once per content digest, safe to call from many threads."""

    def __init__(self, budget: int = PIXEL_BUDGET) -> None:
        self.budget = PixelBudget(budget)
        self.decodes = 0
        self._lock = threading.Lock()
        self._answers: dict[str, Future[Decoded]] = {}

    def decode(self, digest: str, data: bytes) -> Decoded:
        """The answer for this content, decoding it only if no caller has; raises
        ImageUnreadable."""
        with self._lock:
            answer = self._answers.get(digest)
            mine = answer is None
            if answer is None:
                answer = self._answers[digest] = Future()
                self.decodes += 1
        if mine:
            try:
                answer.set_result(describe(data, self.budget))
            except BaseException as exc:  # waiters must never hang on an unset answer
                answer.set_exception(exc)
        return answer.result()
