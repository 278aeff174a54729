"""Image sources: local, URL or base64; format by content; read once; payloads checked."""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from PIL import Image

from batchgen.errors import Problem
from batchgen.jobs import JobSpec
from batchgen.manifest.images import ImageUnreadable, http_fetch
from batchgen.manifest.resolve import ResolveOptions, resolve_manifest


def image_bytes(size: tuple[int, int] = (480, 320), kind: str = "PNG", colour: int = 60) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (colour, 100, 150)).save(buffer, format=kind)
    return buffer.getvalue()


def resolve_one(folder: Path, image: str, **options: Any) -> JobSpec | Problem:
    path = folder / "m.yaml"
    path.write_text(yaml.safe_dump({"rows": [{"id": "r", "image": image}]}))
    found = list(resolve_manifest(path, ResolveOptions(**options)).iter_jobs())
    assert len(found) == 1
    return found[0]


@pytest.fixture
def image_server() -> Iterator[str]:
    data = image_bytes(kind="JPEG")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            found = self.path == "/a.jpg"
            self.send_response(200 if found else 404)
            self.end_headers()
            self.wfile.write(data if found else b"missing")

        def log_message(self, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_http_fetch_downloads_and_reports_failures(image_server: str, tmp_path: Path) -> None:
    """Inlining a URL downloads it over HTTP; a 404 becomes a problem on the row."""
    job = resolve_one(tmp_path, f"{image_server}/a.jpg", inline_urls=True)
    assert isinstance(job, JobSpec) and job.request["image"].startswith("sha256:")
    with pytest.raises(ImageUnreadable, match="could not download"):
        http_fetch(f"{image_server}/missing.jpg")
