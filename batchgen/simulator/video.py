"""Real, playable MP4s: H.264 (yuv420p) at FPS frames a second, at most BOX px on the long side,
as long as asked, showing the input picture under the prompt's camera move (motion.py), with
a silent AAC track when sound was asked, and with the defect the task was given (footage.py).

`VideoFile` adds optional padding as a top-level `free` box (players skip it), and streams any
byte range in chunks without copying the padding.
"""

from __future__ import annotations

import io
import itertools
import struct
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import av
from PIL import Image, ImageDraw

from batchgen.simulator.footage import DEFAULT_SECONDS, Defect
from batchgen.simulator.motion import Size, frames

BOX = 256  # the long side of the video, px
FPS = 8  # low, to keep encoding fast: a 5 s video is 40 frames, ~30 ms
AUDIO_RATE = 8000
AUDIO_FRAME = 1024  # samples per AAC frame
SHORT_SHARE = 0.4  # a `short` video lasts this share of what was asked
CORRUPT_FROM = 0.3  # an `undecodable` video's frame data is garbage from this share on
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


def render_mp4(
    image: Image.Image,
    *,
    seconds: float = DEFAULT_SECONDS,
    motion: int = 0,
    tail: Image.Image | None = None,
    sound: bool = False,
    defect: Defect | None = None,
) -> bytes:
    """An H.264 MP4 of `seconds` showing `image` under `motion`, fading into `tail`, with a
    silent audio track if `sound`, and with `defect`."""
    size = frame_size(image.width, image.height)
    if defect is Defect.ASPECT:
        size = size[::-1] if size[0] != size[1] else (size[0], _even(size[0] * 9 / 16))
    share = SHORT_SHARE if defect is Defect.SHORT else 1.0
    count = max(2, round(seconds * share * FPS))
    pictures = frames(image, size, count, motion, tail)
    if defect is Defect.BLACK:
        pictures = (Image.new("RGB", size) for _ in range(count))
    elif defect is Defect.FROZEN:
        pictures = itertools.repeat(next(pictures), count)
    audio = sound and defect is not Defect.MUTE
    mp4 = encode(pictures, size, count / FPS if audio else None)
    return garble(mp4) if defect is Defect.UNDECODABLE else mp4


def encode(pictures: Iterable[Image.Image], size: Size, audio_seconds: float | None) -> bytes:
    """An MP4 of `pictures` at FPS, with `audio_seconds` of silent AAC when not None."""
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "30"}
        audio = None if audio_seconds is None else container.add_stream("aac", rate=AUDIO_RATE)
        if audio is not None and audio_seconds is not None:
            audio.layout = "mono"
            _mux_silence(container, audio, audio_seconds)
        for image in pictures:
            container.mux(stream.encode(_frame_of(image)))
        container.mux(stream.encode(None))
    return buffer.getvalue()


def _mux_silence(container: Any, stream: Any, seconds: float) -> None:
    silence = bytes(4 * AUDIO_FRAME)
    for start in range(0, round(seconds * AUDIO_RATE), AUDIO_FRAME):
        frame = av.AudioFrame(format="fltp", layout="mono", samples=AUDIO_FRAME)
        frame.sample_rate, frame.pts = AUDIO_RATE, start
        frame.planes[0].update(silence)
        container.mux(stream.encode(frame))
    container.mux(stream.encode(None))


def garble(mp4: bytes) -> bytes:
    """`mp4` with its media data scrambled from CORRUPT_FROM on: the container still opens and
    the first frames decode, the others do not."""
    start, end = _mdat_payload(mp4)
    cut = start + int((end - start) * CORRUPT_FROM)
    scrambled = bytes((b * 7 + 13) & 0xFF for b in mp4[cut:end])
    return mp4[:cut] + scrambled + mp4[end:]


def _mdat_payload(mp4: bytes) -> tuple[int, int]:
    position = 0
    while position + 8 <= len(mp4):
        size, kind = struct.unpack_from(">I4s", mp4, position)
        header = 8
        if size == 1:
            size, header = struct.unpack_from(">Q", mp4, position + 8)[0], 16
        elif size == 0:
            size = len(mp4) - position
        if kind == b"mdat":
            return position + header, position + size
        position += max(size, header)
    raise ValueError("no mdat box")


def frame_size(width: int, height: int) -> Size:
    """The video's size for a picture of `width` x `height`: even, long side BOX."""
    scale = BOX / max(width, height, 1)
    return _even(width * scale), _even(height * scale)


def _even(value: float) -> int:
    return max(16, round(value / 2) * 2)


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


def stamped(mp4: bytes, task_id: str) -> bytes:
    """`mp4` with a trailing `free` box naming `task_id`: as with a real provider, no two
    generations give the same bytes, even of one request (players skip `free` boxes)."""
    note = f"batchgen simulator task {task_id}".encode()[:1000]
    return mp4 + struct.pack(">I4s", 8 + len(note), b"free") + note


def padded(mp4: bytes, total: int | None) -> VideoFile:
    """`mp4` grown to about `total` bytes by a trailing `free` box (as is if already larger)."""
    room = (total or 0) - len(mp4)
    if room < 16:
        return VideoFile(mp4)
    if room <= _MAX_SMALL_BOX:
        return VideoFile(mp4 + struct.pack(">I4s", room, b"free"), room - 8)
    return VideoFile(mp4 + struct.pack(">I4sQ", 1, b"free", room), room - 16)
