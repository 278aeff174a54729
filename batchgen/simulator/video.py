"""Real, playable MP4s made from the request's image: a short slow zoom, small and fast."""

from __future__ import annotations

import io
import struct
from functools import lru_cache

import av
from PIL import Image, ImageDraw

WIDTH, FRAMES, FPS = 256, 12, 12


def pattern(seed: str) -> Image.Image:
    """A frame for images the simulator cannot fetch (URLs off this machine)."""
    image = Image.new("RGB", (480, 320), (30, 60, 90))
    ImageDraw.Draw(image).text((20, 20), seed[:40], fill=(240, 240, 240))
    return image


def render(image: Image.Image, padding: int = 0) -> bytes:
    """An H.264 MP4 zooming slowly into `image`, padded with a `free` box to add `padding`."""
    image = image.convert("RGB")
    height = max(2, round(WIDTH * image.height / image.width / 2) * 2)
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = WIDTH, height, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "32"}
        for i in range(FRAMES):
            frame = av.VideoFrame.from_image(_zoom(image, i).resize((WIDTH, height)))
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    data = buffer.getvalue()
    return data + _free_box(padding) if padding > 8 else data


def _zoom(image: Image.Image, i: int) -> Image.Image:
    crop = 0.1 * i / FRAMES
    w, h = image.size
    return image.crop((int(w * crop), int(h * crop), int(w * (1 - crop)), int(h * (1 - crop))))


def _free_box(size: int) -> bytes:
    return struct.pack(">I4s", size, b"free") + bytes(size - 8)


@lru_cache(maxsize=64)
def render_cached(key: str, image_bytes: bytes | None, padding: int) -> bytes:
    """`render` of the image with this key (its digest), made once per key and size."""
    if image_bytes is None:
        return render(pattern(key), padding)
    with Image.open(io.BytesIO(image_bytes)) as image:
        return render(image, padding)
