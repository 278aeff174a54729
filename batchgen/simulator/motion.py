"""The frames of a simulated video. Pure (Pillow).

The camera pans across the input picture in one of eight directions while zooming in or out
(the move the prompt picked, see footage.py), and a bright disc crosses the frame the same
way, so that even a flat picture moves. With an end frame, the last FADE_SHARE of the clip
cross-fades into it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

from PIL import Image, ImageDraw

PAN = 0.12  # share of the picture the camera travels across
ZOOM = 0.15  # the zoomed-in end shows 1 / (1 + ZOOM) of the zoomed-out end
FADE_SHARE = 0.4
DISC = 0.18  # the disc's radius, as a share of the frame's short side
DIRECTIONS = 8

Size = tuple[int, int]


def frames(
    picture: Image.Image, size: Size, count: int, motion: int, tail: Image.Image | None = None
) -> Iterator[Image.Image]:
    """`count` RGB frames of `size` showing `picture` under `motion`, fading into `tail`."""
    width, height = size
    margin = (1 + PAN) * (1 + ZOOM)
    base = picture.convert("RGB").resize((round(width * margin), round(height * margin)))
    end = tail.convert("RGB").resize(size) if tail is not None else None
    for i in range(count):
        progress = i / max(1, count - 1)
        frame = _camera(base, size, progress, motion)
        _disc(frame, progress, motion)
        fade = (progress - (1 - FADE_SHARE)) / FADE_SHARE
        yield Image.blend(frame, end, fade) if end is not None and fade > 0 else frame


def _direction(motion: int) -> tuple[float, float]:
    angle = 2 * math.pi * (motion % DIRECTIONS) / DIRECTIONS
    return math.cos(angle), math.sin(angle)


def _camera(base: Image.Image, size: Size, progress: float, motion: int) -> Image.Image:
    zooming_in = motion // DIRECTIONS % 2 == 0
    zoom = 1 + ZOOM * (progress if zooming_in else 1 - progress)
    width, height = base.size
    window_w, window_h = width / (1 + PAN) / zoom, height / (1 + PAN) / zoom
    dx, dy = _direction(motion)
    cx = width / 2 + (progress - 0.5) * (width - window_w) * dx
    cy = height / 2 + (progress - 0.5) * (height - window_h) * dy
    box = (cx - window_w / 2, cy - window_h / 2, cx + window_w / 2, cy + window_h / 2)
    return base.resize(size, box=box)


def _disc(frame: Image.Image, progress: float, motion: int) -> None:
    width, height = frame.size
    dx, dy = _direction(motion)
    radius = DISC * min(width, height)
    cx = width / 2 + (progress - 0.5) * 0.8 * width * dx
    cy = height / 2 + (progress - 0.5) * 0.8 * height * dy
    hue = motion * 360 // (DIRECTIONS * 2)
    ImageDraw.Draw(frame).ellipse(
        (cx - radius, cy - radius, cx + radius, cy + radius), fill=f"hsl({hue}, 90%, 70%)"
    )
