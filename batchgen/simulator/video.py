"""Real, playable MP4s: H.264 (yuv420p), one second of a slow zoom into the input image,
at most 256 px on the long side, encoded in a few tens of milliseconds.

`VideoFile` adds optional padding as a top-level `free` box (players skip it), and streams any
byte range in chunks without copying the padding.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import av
from PIL import Image, ImageDraw

BOX = 256  # the long side of the video, px
FPS = 12
FRAMES = 12
ZOOM = 0.15  # the last frame shows the middle 1 / (1 + ZOOM) of the picture
CHUNK = 1 << 20
_ZEROS = bytes(CHUNK)
_MAX_SMALL_BOX = 0xFFFFFFFF
_frame_of: Callable[[Image.Image], av.VideoFrame] = av.VideoFrame.from_image  # untyped in av


def picture(data: bytes | None, label: str) -> Image.Image:
    """The image in `data`, or a pattern frame showing `label` when it cannot be read."""
    if data is not None:
        try:
            with Image.open(io.BytesIO(data)) as image:
                image.draft("RGB", (BOX * 2, BOX * 2))
                return image.convert("RGB")
        except (OSError, ValueError, Image.DecompressionBombError):
            pass
    return pattern(label)


def pattern(label: str) -> Image.Image:
    """A test-card frame for images the simulator does not have (e.g. URLs off this machine)."""
    image = Image.new("RGB", (480, 320), (30, 60, 90))
    draw = ImageDraw.Draw(image)
    for x in range(0, 480, 40):
        draw.rectangle((x, 250, x + 19, 319), fill=(200, 40 + x // 3, 60))
    draw.text((20, 20), label[:48], fill=(240, 240, 240))
    return image


def render_mp4(image: Image.Image) -> bytes:
    """An H.264 MP4 of FRAMES frames at FPS zooming slowly into `image`."""
    width, height = frame_size(image.width, image.height)
    base = image.convert("RGB").resize((round(width * (1 + ZOOM)), round(height * (1 + ZOOM))))
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "30"}
        for i in range(FRAMES):
            frame = _frame_of(_zoomed(base, i / (FRAMES - 1), (width, height)))
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return buffer.getvalue()


def frame_size(width: int, height: int) -> tuple[int, int]:
    """The video's size for a picture of `width` x `height`: even, long side BOX."""
    scale = BOX / max(width, height, 1)
    return _even(width * scale), _even(height * scale)


def _even(value: float) -> int:
    return max(16, round(value / 2) * 2)


def _zoomed(base: Image.Image, progress: float, size: tuple[int, int]) -> Image.Image:
    keep = 1 / (1 + ZOOM * progress)
    w, h = base.size
    left, top = w * (1 - keep) / 2, h * (1 - keep) / 2
    return base.resize(size, box=(left, top, w - left, h - top))


@dataclass(frozen=True)
class VideoFile:
    """An MP4 (with its padding box header) followed by `zeros` bytes of padding."""

    head: bytes
    zeros: int = 0

    @property
    def size(self) -> int:
        return len(self.head) + self.zeros

    def chunks(self, start: int, stop: int) -> Iterator[bytes]:
        """Bytes [start, stop) in chunks of at most CHUNK; padding is never copied whole."""
        position = start
        while position < min(stop, len(self.head)):
            end = min(stop, len(self.head), position + CHUNK)
            yield self.head[position:end]
            position = end
        while position < stop:
            count = min(CHUNK, stop - position)
            yield _ZEROS if count == CHUNK else _ZEROS[:count]
            position += count


def padded(mp4: bytes, total: int | None) -> VideoFile:
    """`mp4` grown to about `total` bytes by a trailing `free` box (as is if already larger)."""
    room = (total or 0) - len(mp4)
    if room < 16:
        return VideoFile(mp4)
    if room <= _MAX_SMALL_BOX:
        return VideoFile(mp4 + struct.pack(">I4s", room, b"free"), room - 8)
    return VideoFile(mp4 + struct.pack(">I4sQ", 1, b"free", room), room - 16)
