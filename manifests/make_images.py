"""Draw the small example images the manifests in this folder use (run from anywhere).

Each image is a gradient with a few shapes, at least 300 px on each side, a few KB to tens of
KB. Running it again gives the same files, so the example job ids do not change.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw

HERE = Path(__file__).parent
SIZE = (480, 320)


def gradient(
    size: tuple[int, int], top: tuple[int, int, int], bottom: tuple[int, int, int]
) -> Image.Image:
    """A vertical gradient from `top` to `bottom`."""
    width, height = size
    image = Image.new("RGB", size)
    draw = ImageDraw.Draw(image)
    for y in range(height):
        t = y / (height - 1)
        colour = tuple(round(a + (b - a) * t) for a, b in zip(top, bottom, strict=True))
        draw.line([(0, y), (width, y)], fill=colour)
    return image


def beach() -> Image.Image:
    image = gradient(SIZE, (120, 180, 235), (250, 225, 170))
    draw = ImageDraw.Draw(image)
    draw.rectangle([0, 190, 480, 250], fill=(40, 110, 170))
    draw.ellipse([370, 30, 430, 90], fill=(255, 230, 120))
    return image


def forest() -> Image.Image:
    image = gradient((320, 480), (170, 210, 190), (30, 70, 40))
    draw = ImageDraw.Draw(image)
    for x in range(10, 320, 60):
        draw.polygon([(x, 420), (x + 25, 220), (x + 50, 420)], fill=(20, 90, 45))
    return image


def city() -> Image.Image:
    image = gradient(SIZE, (40, 40, 80), (230, 130, 90))
    draw = ImageDraw.Draw(image)
    for i, x in enumerate(range(0, 480, 55)):
        draw.rectangle([x, 140 + (i * 37) % 90, x + 45, 320], fill=(25, 25, 40))
    return image


def beach_mask() -> Image.Image:
    """White where the sea may move (the motion-brush area), black elsewhere."""
    mask = Image.new("L", SIZE, 0)
    ImageDraw.Draw(mask).rectangle([0, 190, 480, 250], fill=255)
    return mask


def beach_static() -> Image.Image:
    """White where nothing may move (the sky)."""
    mask = Image.new("L", SIZE, 0)
    ImageDraw.Draw(mask).rectangle([0, 0, 480, 120], fill=255)
    return mask


def frame(i: int) -> Image.Image:
    image = gradient(SIZE, (200, 200 - 30 * i, 120), (60, 40, 90 + 40 * i))
    ImageDraw.Draw(image).ellipse([60 + 110 * i, 120, 160 + 110 * i, 220], fill=(250, 250, 250))
    return image


def main() -> None:
    images, frames = HERE / "images", HERE / "frames"
    images.mkdir(exist_ok=True)
    frames.mkdir(exist_ok=True)
    beach().save(images / "beach.jpg", quality=80)
    forest().save(images / "forest.jpg", quality=80)
    city().save(images / "city.png", optimize=True)
    beach_mask().save(images / "beach-sea-mask.png", optimize=True)
    beach_static().save(images / "beach-sky-mask.png", optimize=True)
    for i in range(3):
        frame(i).save(frames / f"frame-{i + 1:03d}.png", optimize=True)


if __name__ == "__main__":
    main()
