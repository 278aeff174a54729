"""Is a downloaded video the one that was asked for? Pure: findings from a Probe and what the
request asked (`Expected`), each a short code and a message a person can act on; a video's
probe with its findings is a `VideoCheck`.

    undecodable    the file cannot be opened, or some of its frames do not decode
    duration_off   its length is more than DURATION_TOLERANCE_S from the seconds asked
    aspect_off     its shape is more than ASPECT_TOLERANCE from the input image's
    black_frames   some sampled frames are black
    frozen         no sampled frame differs from the first by FROZEN_CHANGE (unless all black
                   or undecodable)
    no_audio       `sound: on` was asked and the file has no audio stream

A finding never hides or deletes a video: it is recorded beside it (index, sidecar, state) for
`status`, `report`, the gallery and `export --exclude-flagged`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from batchgen.media.facts import Decode, Probe

# How a run checks its videos (`--qa`): `full` decodes the I/P frames, `keyframes` the
# keyframes alone (probe.py says what that no longer sees), `off` neither probes nor judges
# them (their `probe` and `qa` stay None: unchecked).
QaDepth = Literal["full", "keyframes", "off"]
QA_DEPTHS: tuple[QaDepth, ...] = ("full", "keyframes", "off")
DECODE_OF: dict[QaDepth, Decode] = {"full": "I/P", "keyframes": "keyframes"}

# Providers deliver a little more than asked (Kling's "5" comes back as 5.1 s, kling-api.md
# E16); half a second is the rule, far above that and far below a cut clip.
DURATION_TOLERANCE_S = 0.5
# Relative. Even-pixel sizes and the providers' standard resolutions move the shape by 1-2 %;
# a crop to another standard ratio (16:9 vs 4:3 is 33 %) is far beyond.
ASPECT_TOLERANCE = 0.05
# Mean luma difference (0..255) of 64 px thumbnails from the first sampled frame. A still
# picture re-encoded moves by up to ~1.3 (the encoder refining a coarse first frame), grain on
# a still scene by ~0.3; the simulator's gentlest camera move is ~16, a visible move several.
FROZEN_CHANGE = 2.5
DEFAULT_SECONDS = 5.0  # the API's default `duration`

ImageSize = Callable[[str], tuple[int, int] | None]


@dataclass(frozen=True, slots=True)
class Expected:
    """What a request asked of its video; None where it is not known."""

    duration_s: float | None = None
    aspect: float | None = None  # width / height of the input image
    sound: bool = False


@dataclass(frozen=True, slots=True)
class Finding:
    """One way a video is not what was asked: a short code and a human message."""

    code: str
    message: str

    def as_json(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


def expected_of(request: Mapping[str, Any], image_size: ImageSize) -> Expected:
    """What `request` asks for; `image_size(ref)` gives an input image's (width, height)."""
    ref = request.get("image") or request.get("image_tail")
    size = image_size(ref) if isinstance(ref, str) else None
    return Expected(
        duration_s=_seconds(request.get("duration")),
        aspect=size[0] / size[1] if size and size[1] else None,
        sound=str(request.get("sound", "")).lower() in ("on", "true"),
    )


def findings(probe: Probe, expected: Expected) -> list[Finding]:
    """Every finding about `probe` given `expected`, in the order of the module docstring;
    empty when the video is clean."""
    checks = (_undecodable, _duration, _aspect, _black, _frozen, _audio)
    return [finding for check in checks if (finding := check(probe, expected)) is not None]


def _undecodable(probe: Probe, expected: Expected) -> Finding | None:
    if probe.error is None and probe.decoded > 0:
        return None
    return Finding("undecodable", probe.error or "no frame decodes")


def _duration(probe: Probe, expected: Expected) -> Finding | None:
    asked, got = expected.duration_s, probe.duration_s
    if asked is None or got is None or abs(got - asked) <= DURATION_TOLERANCE_S:
        return None
    return Finding("duration_off", f"{got:.2f} s long, {asked:g} s asked")


def _aspect(probe: Probe, expected: Expected) -> Finding | None:
    if expected.aspect is None or not probe.width or not probe.height:
        return None
    ratio = probe.width / probe.height
    if abs(math.log(ratio / expected.aspect)) <= math.log1p(ASPECT_TOLERANCE):
        return None
    return Finding(
        "aspect_off",
        f"{probe.width}x{probe.height} (aspect {ratio:.3f}), input image aspect "
        f"{expected.aspect:.3f}",
    )


def _black(probe: Probe, expected: Expected) -> Finding | None:
    stats = probe.stats
    if not stats.black:
        return None
    return Finding("black_frames", f"{stats.black} of {stats.sampled} sampled frames are black")


def _frozen(probe: Probe, expected: Expected) -> Finding | None:
    stats = probe.stats
    if stats.change is None or stats.sampled < 2 or stats.change >= FROZEN_CHANGE:
        return None
    if stats.black == stats.sampled or probe.error is not None:
        return None  # black_frames says it all; the frames that decode may not span the clip
    return Finding(
        "frozen",
        f"next to no change between frames (largest mean difference {stats.change:.2f} of 255 "
        f"over {stats.sampled} sampled frames)",
    )


def _audio(probe: Probe, expected: Expected) -> Finding | None:
    if not expected.sound or probe.has_audio:
        return None
    return Finding("no_audio", "sound: on was asked, the file has no audio stream")


def _seconds(duration: Any) -> float | None:
    if duration is None:
        return DEFAULT_SECONDS
    try:
        return float(str(duration))
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class VideoCheck:
    """A video's probe and its QA findings (empty when clean)."""

    probe: Probe
    findings: tuple[Finding, ...]

    def as_json(self) -> dict[str, Any]:
        """{"probe": ..., "qa": [...]}, as the index and the sidecars write it."""
        return {"probe": self.probe.as_json(), "qa": self.findings_json()}

    def findings_json(self) -> list[dict[str, Any]]:
        return [finding.as_json() for finding in self.findings]
