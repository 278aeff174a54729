"""What a video file is, read with PyAV: container, codec, size, rate, frames, length, audio, and
statistics of a bounded sample of its frames (the `Probe` of facts.py). Facts only; qa.py judges
them.

Every packet of the video stream is read and counted, but only the frames other frames are
predicted from are decoded: keyframes and P-frames. B-frames (bidirectionally predicted; in
H.264 as encoders write it no I or P frame refers to one) are skipped by the decoder, which
costs a third to a half of a full decode. What that no longer checks, and why it is enough:

- an error inside a B-frame alone is not seen. Damage to a file (a cut, a garbled range, bad
  bytes from the network) spans a run of bytes, and I/P frames are interleaved with the
  B-frames all through the file, so it reaches decoded frames too; when any frame fails to
  decode, the whole file is decoded again, every frame, to say how many do not (`every_frame`);
- black and frozen pictures are judged on at most SAMPLES frames, evenly spaced in time, as
  before: they are now taken among the I/P frames (a P-frame every few frames), which cover
  the clip as evenly; each is converted to a SAMPLE_SIZE grey thumbnail.

A frame that needs its references cannot be decoded alone, so a frame late in a clip with a
single keyframe still costs the decode of every I/P frame before it: the saving is the B-frames.

`decode="keyframes"` (a run's `--qa keyframes`) decodes the keyframes alone, each of which
decodes without any other: a small share of the work where a clip has few of them. It still
reads every packet (a cut or garbled container is still found) and the file's facts, but judges
black frames on the keyframes only, cannot call a clip with one keyframe frozen (one sample), and
does not see damage inside the other frames. The probe says which it did (`Probe.decode`).
Meant for a worker process (workers.py); one decoding thread per probe, one probe per core.
"""

from __future__ import annotations

import math
import threading
from pathlib import Path
from typing import Any

import av
from av.video.reformatter import VideoReformatter
from PIL import Image, ImageChops, ImageStat

from batchgen.media.facts import Decode, FrameStats, Probe
from batchgen.media.sniff import container_of, read_head

SAMPLES = 16
SAMPLE_SIZE = 64  # px, each side of a sampled frame's thumbnail
BLACK_LEVEL = 24  # luma (0..255) at or under which a pixel counts as black
BRIGHT_SHARE = 0.02  # a frame is black when fewer than this share of its pixels are brighter


# What the decoder skips for each `decode`: nothing, B-frames, or every frame but a keyframe.
_SKIP: dict[Decode, str] = {"all": "DEFAULT", "I/P": "BIDIR", "keyframes": "NONKEY"}


def probe_video(path: Path, *, decode: Decode = "I/P") -> Probe:
    """Open, read and decode the video at `path`: its I/P frames, its keyframes alone, or all
    of its frames (as it also does when any frame fails to decode). Never raises for what the
    file holds: a file PyAV cannot open gives a Probe with `error` set and no codec."""
    probe = _open(path, decode)
    if probe.error is not None and probe.decoded + probe.skipped > 0 and decode != "all":
        return _open(path, "all")
    return probe


def _open(path: Path, decode: Decode) -> Probe:
    container_name = container_of(read_head(str(path)))
    try:
        with av.open(str(path)) as container:
            return _probe(container, container_name, decode)
    except av.error.FFmpegError as exc:
        return Probe(container=container_name, error=f"cannot be opened: {exc}", decode=decode)


def _probe(container: Any, container_name: str | None, decode: Decode) -> Probe:
    name = container_name or str(container.format.name).split(",")[0]
    audio = container.streams.audio[0] if container.streams.audio else None
    facts: dict[str, Any] = {
        "container": name,
        "has_audio": audio is not None,
        "audio_codec": None if audio is None else audio.codec_context.name,
        "decode": decode,
    }
    if not container.streams.video:
        return Probe(**facts, error="no video stream")
    stream = container.streams.video[0]
    fps = float(stream.average_rate or stream.guessed_rate or 0) or None
    facts.update(
        codec=stream.codec_context.name,
        width=stream.codec_context.width or None,
        height=stream.codec_context.height or None,
        fps=fps,
        duration_s=_duration(container, stream),
    )
    _decode_on_one_thread(stream, decode)
    decoding = _Decoding(_sample_step(stream, fps, facts["duration_s"]), fps)
    decoding.run(container, stream)
    return Probe(
        **facts,
        frames=decoding.packets,
        decoded=decoding.decoded,
        skipped=0 if decode == "all" else decoding.skipped(),
        stats=decoding.stats(),
        error=decoding.error,
    )


def _decode_on_one_thread(stream: Any, decode: Decode) -> None:
    """One decoding thread (the worker processes use the other cores), skipping the frames
    `decode` does not ask for."""
    context = stream.codec_context
    context.thread_type, context.thread_count = "NONE", 1
    context.skip_frame = _SKIP[decode]


def _duration(container: Any, stream: Any) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        return round(float(stream.duration * stream.time_base), 3)
    if container.duration is not None:
        return round(float(container.duration) / av.time_base, 3)
    return None


def _sample_step(stream: Any, fps: float | None, duration: float | None) -> int:
    """Every how many frames of the clip to take a sample, so that about SAMPLES are taken."""
    expected = stream.frames or (round(fps * duration) if fps and duration else 0)
    return max(1, math.ceil(expected / SAMPLES))


class _Decoding:
    """One pass over a video stream: counts packets and decoded frames, keeps thumbnails of the
    first decoded frame at or past every `step`-th frame of the clip (at most SAMPLES), and
    remembers the first error."""

    def __init__(self, step: int, fps: float | None) -> None:
        self.step = step
        self.fps = fps
        self.packets = 0
        self.decoded = 0
        self.bad_packets = 0
        self.samples: list[Image.Image] = []
        self.error: str | None = None
        self._next_sample = 0  # the index in the clip of the frame the next sample is due at
        self._start: float | None = None
        self._reformatter = _reformatter()

    def run(self, container: Any, stream: Any) -> None:
        try:
            for packet in container.demux(stream):
                self.packets += packet.size > 0
                for frame in self._decode(packet):
                    self._count(frame)
        except av.error.FFmpegError as exc:
            self.error = f"reading stopped after {self.packets} frames: {exc}"
        if self.bad_packets and self.error is None:
            self.error = f"{self.bad_packets} of {self.packets} frames do not decode"

    def skipped(self) -> int:
        return max(0, self.packets - self.decoded - self.bad_packets)

    def _decode(self, packet: Any) -> list[Any]:
        try:
            return list(packet.decode())
        except av.error.InvalidDataError:
            self.bad_packets += 1
            return []

    def _count(self, frame: Any) -> None:
        index = self._index(frame)
        if index >= self._next_sample and len(self.samples) < SAMPLES:
            self.samples.append(_thumbnail(frame, self._reformatter))
            self._next_sample = (index // self.step + 1) * self.step
        self.decoded += 1

    def _index(self, frame: Any) -> int:
        """The frame's place in the clip, from its time (B-frames skipped leave gaps in the
        count of decoded frames), else from that count."""
        time: float | None = frame.time
        if time is None or not self.fps:
            return self.decoded
        if self._start is None:
            self._start = time
        return round((time - self._start) * self.fps)

    def stats(self) -> FrameStats:
        if not self.samples:
            return FrameStats()
        first = self.samples[0]
        change = max(_mean(ImageChops.difference(first, s)) for s in self.samples)
        black = sum(_is_black(s) for s in self.samples)
        return FrameStats(len(self.samples), black, round(change, 3))


_SCALERS = threading.local()


def _reformatter() -> VideoReformatter:
    """This thread's scaler, kept from probe to probe: it keeps the scaling context of the last
    frame size it saw, which costs more to set up than a thumbnail does to make (a third of
    the probe of a small clip on keyframes). One a thread: a context is not shared."""
    scaler: VideoReformatter | None = getattr(_SCALERS, "scaler", None)
    if scaler is None:
        scaler = _SCALERS.scaler = VideoReformatter()
    return scaler


def _thumbnail(frame: Any, reformatter: Any) -> Image.Image:
    """A SAMPLE_SIZE square grey picture of `frame`, each pixel the average of its area."""
    grey = reformatter.reformat(frame, SAMPLE_SIZE, SAMPLE_SIZE, "gray", interpolation="AREA")
    plane = grey.planes[0]
    size = (SAMPLE_SIZE, SAMPLE_SIZE)
    return Image.frombuffer("L", size, bytes(plane), "raw", "L", plane.line_size, 1)


def _mean(image: Image.Image) -> float:
    return float(ImageStat.Stat(image).mean[0])


def _is_black(image: Image.Image) -> bool:
    histogram = image.histogram()
    return sum(histogram[BLACK_LEVEL + 1 :]) < BRIGHT_SHARE * sum(histogram)
