"""Image sources: local, URL or base64; format by content; read once; payloads checked."""

from __future__ import annotations

import base64
import hashlib
import io
from pathlib import Path
from typing import Any

import pytest
import yaml
from PIL import Image

from batchgen.errors import ImageChanged, Problem, UsageError
from batchgen.jobs import JobSpec, resolve_body
from batchgen.manifest.images import MAX_BYTES, ImageCatalog, ImageUnreadable
from batchgen.manifest.resolve import ResolveOptions, resolve_manifest


def image_bytes(size: tuple[int, int] = (480, 320), kind: str = "PNG", colour: int = 60) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (colour, 100, 150)).save(buffer, format=kind)
    return buffer.getvalue()


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def resolve_one(folder: Path, image: str, **options: Any) -> JobSpec | Problem:
    path = folder / "m.yaml"
    path.write_text(yaml.safe_dump({"rows": [{"id": "r", "image": image}]}))
    found = list(resolve_manifest(path, ResolveOptions(**options)).iter_jobs())
    assert len(found) == 1
    return found[0]


def test_png_named_jpg_is_accepted(tmp_path: Path) -> None:
    """The format is read from the content: a PNG file named .jpg is fine."""
    data = image_bytes(kind="PNG")
    (tmp_path / "frame.jpg").write_bytes(data)
    job = resolve_one(tmp_path, "frame.jpg")
    assert isinstance(job, JobSpec) and job.request["image"] == sha(data)


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (image_bytes(kind="GIF"), "got GIF"),
        (image_bytes(kind="BMP"), "got BMP"),
        (b"just some text, not a picture", "not a readable image"),
    ],
)
def test_other_content_named_png_is_refused(tmp_path: Path, content: bytes, fragment: str) -> None:
    """A GIF, a BMP or a text file named .png is refused, whatever its name says."""
    (tmp_path / "frame.png").write_bytes(content)
    problem = resolve_one(tmp_path, "frame.png")
    assert isinstance(problem, Problem) and problem.field == "image"
    assert fragment in problem.message
    assert "object at 0x" not in problem.message  # Pillow names its in-memory file


@pytest.mark.parametrize(
    ("size", "fragment"),
    [
        ((299, 400), "at least 300 px"),
        ((400, 299), "at least 300 px"),
        ((751, 300), "1:2.5"),
        ((300, 751), "1:2.5"),
    ],
)
def test_small_or_stretched_images_are_refused(
    tmp_path: Path, size: tuple[int, int], fragment: str
) -> None:
    """Both sides must be ≥ 300 px and the aspect ratio within 1:2.5 and 2.5:1."""
    (tmp_path / "frame.jpg").write_bytes(image_bytes(size, "JPEG"))
    problem = resolve_one(tmp_path, "frame.jpg")
    assert isinstance(problem, Problem) and fragment in problem.message


@pytest.mark.parametrize("size", [(300, 300), (750, 300), (300, 750)])
def test_limit_sizes_are_accepted(tmp_path: Path, size: tuple[int, int]) -> None:
    """300 px sides and exactly 2.5:1 are inside the rules."""
    (tmp_path / "frame.jpg").write_bytes(image_bytes(size, "JPEG"))
    assert isinstance(resolve_one(tmp_path, "frame.jpg"), JobSpec)


def test_files_over_10_mb_are_refused_before_reading(tmp_path: Path) -> None:
    """A file over 10 MB is refused from its size alone."""
    data = image_bytes()
    (tmp_path / "big.png").write_bytes(data + b"\0" * (MAX_BYTES + 1 - len(data)))
    catalog = ImageCatalog(tmp_path)
    with pytest.raises(ImageUnreadable, match="at most 10 MB"):
        catalog.lookup("big.png")
    assert catalog.reads == 0


@pytest.mark.parametrize("prefix", ["", "data:image/png;base64,"])
def test_base64_images_raw_or_with_data_prefix(tmp_path: Path, prefix: str) -> None:
    """Base64 (raw or data: URI) gives the same ref as the file; the payload has no prefix."""
    data = image_bytes()
    encoded = base64.b64encode(data).decode()
    manifest = resolve_manifest(_manifest(tmp_path, prefix + encoded))
    (job,) = list(manifest.iter_jobs())
    assert isinstance(job, JobSpec) and job.request["image"] == sha(data)
    assert manifest.catalog.payload(sha(data)) == encoded
    body = resolve_body(job.request, manifest.catalog.payload, "bg-x")
    assert body["image"] == encoded and not body["image"].startswith("data:")


def _manifest(folder: Path, image: str) -> Path:
    path = folder / "m.yaml"
    path.write_text(yaml.safe_dump({"rows": [{"id": "r", "image": image}]}))
    return path


def test_base64_wrapped_over_lines_is_accepted(tmp_path: Path) -> None:
    """Base64 split over lines (a YAML block scalar) is joined before decoding."""
    encoded = base64.b64encode(image_bytes()).decode()
    wrapped = "\n".join(encoded[i : i + 76] for i in range(0, len(encoded), 76))
    assert isinstance(resolve_one(tmp_path, wrapped), JobSpec)


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("data:image/png,notbase64", "data:image/...;base64"),
        ("data:image/png;base64," + "A" * 100, "not a readable image"),
        ("data:image/png;base64,%%%", "not valid base64"),
    ],
)
def test_broken_base64_is_a_problem(tmp_path: Path, value: str, fragment: str) -> None:
    """A data: URI without ;base64, or that does not decode to an image, is refused."""
    problem = resolve_one(tmp_path, value)
    assert isinstance(problem, Problem) and fragment in problem.message


def test_url_images_are_sent_as_urls_by_default(tmp_path: Path) -> None:
    """Without inlining, a URL image is only checked for its shape and sent as the URL."""
    job = resolve_one(tmp_path, "https://cdn.example.com/a.jpg")
    assert isinstance(job, JobSpec) and job.request["image"] == "https://cdn.example.com/a.jpg"


def test_inlined_url_is_checked_and_sent_as_base64(tmp_path: Path) -> None:
    """With inline_urls the URL is fetched once, checked like a file, and sent as base64."""
    data = image_bytes()
    fetched: list[str] = []

    def fetch(url: str) -> bytes:
        fetched.append(url)
        return data

    catalog = ImageCatalog(tmp_path, inline_urls=True, fetch=fetch, cache_bytes=0)
    info = catalog.lookup("https://cdn.example.com/a.png")
    catalog.lookup("https://cdn.example.com/a.png")
    assert info.ref == sha(data) and (info.width, info.height) == (480, 320)
    assert catalog.payload(info.ref) == base64.b64encode(data).decode()
    assert len(fetched) == 2  # once to check, once to send (the cache was disabled)


def test_each_source_is_read_once(tmp_path: Path) -> None:
    """Looking the same file up many times reads and hashes it once."""
    (tmp_path / "a.jpg").write_bytes(image_bytes(kind="JPEG"))
    catalog = ImageCatalog(tmp_path)
    refs = {catalog.lookup("a.jpg").ref for _ in range(1000)}
    assert len(refs) == 1 and catalog.reads == 1


def test_missing_file_is_looked_up_once(tmp_path: Path) -> None:
    """A missing image gives the same answer every time without touching the disk again."""
    catalog = ImageCatalog(tmp_path)
    for _ in range(3):
        with pytest.raises(ImageUnreadable, match="file not found"):
            catalog.lookup("missing.png")
    (tmp_path / "missing.png").write_bytes(image_bytes())
    with pytest.raises(ImageUnreadable):
        catalog.lookup("missing.png")


def test_payload_refuses_a_file_changed_since_validation(tmp_path: Path) -> None:
    """If the file changed after it was checked, sending it raises ImageChanged (a UsageError)."""
    path = tmp_path / "a.png"
    path.write_bytes(image_bytes(colour=1))
    catalog = ImageCatalog(tmp_path, cache_bytes=0)
    ref = catalog.lookup("a.png").ref
    assert base64.b64decode(catalog.payload(ref)) == path.read_bytes()
    path.write_bytes(image_bytes(colour=2))
    with pytest.raises(ImageChanged) as caught:
        catalog.payload(ref)
    assert isinstance(caught.value, UsageError) and "a.png" in str(caught.value)


def test_payload_of_an_unknown_ref_is_a_usage_error(tmp_path: Path) -> None:
    """Asking for a ref the catalog never saw raises UsageError."""
    with pytest.raises(UsageError):
        ImageCatalog(tmp_path).payload("sha256:" + "0" * 64)


def test_same_content_in_two_files_is_one_ref(tmp_path: Path) -> None:
    """Two files with the same bytes give the same ref, so moving a file keeps its job id."""
    data = image_bytes()
    (tmp_path / "one.png").write_bytes(data)
    (tmp_path / "two.png").write_bytes(data)
    catalog = ImageCatalog(tmp_path)
    assert catalog.lookup("one.png").ref == catalog.lookup("two.png").ref == sha(data)
