"""Where each task's video comes from: the input images, held by digest in a bounded store, and
the MP4 rendered once per `VideoSpec` (20,000 tasks on one image encode once per camera move).

Image URLs are fetched only from loopback hosts (127.0.0.0/8, ::1, localhost), never through a
proxy and never following redirects; any other URL gets a pattern frame.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from batchgen.simulator.footage import Defect, VideoSpec, motion_of, seconds_of
from batchgen.simulator.validation import image_bytes
from batchgen.simulator.video import picture, render_mp4

IMAGE_BUDGET = 256 * 1024 * 1024  # bytes of input images held at once
VIDEO_CACHE = 512  # rendered MP4s kept
FETCH_TIMEOUT = 5.0
FETCH_MAX = 20 * 1024 * 1024

Source = bytes | str  # image bytes, or a URL to fetch at render time


class ImageStore:
    """Input images by key (sha256 of the bytes, or of the URL), oldest dropped past a budget.

    A task whose image was dropped before its video was first rendered gets a pattern frame.
    """

    def __init__(self, budget: int = IMAGE_BUDGET) -> None:
        self.budget = budget
        self._held: OrderedDict[str, Source] = OrderedDict()
        self._bytes = 0

    def keep(self, value: str) -> str:
        """Hold the image of a (validated) image field; answers its key."""
        data = image_bytes(value)
        source: Source = value if data is None else data
        key = hashlib.sha256(source if isinstance(source, bytes) else source.encode()).hexdigest()
        if key in self._held:
            self._held.move_to_end(key)
            return key
        self._held[key] = source
        self._bytes += len(source)
        while self._bytes > self.budget and len(self._held) > 1:
            self._bytes -= len(self._held.popitem(last=False)[1])
        return key

    def source(self, key: str) -> Source | None:
        return self._held.get(key)


def video_spec(body: Mapping[str, Any], images: ImageStore, defect: Defect | None) -> VideoSpec:
    """What the video of a (validated) create body shows; its images are kept in `images`."""
    tail = body.get("image_tail") if body.get("image") else None
    return VideoSpec(
        image_key=images.keep(body.get("image") or body["image_tail"]),
        tail_key=images.keep(tail) if tail else None,
        seconds=seconds_of(body.get("duration")),
        motion=motion_of(str(body.get("prompt") or "")),
        sound=body.get("sound") == "on",
        defect=defect,
    )


class VideoLibrary:
    """MP4s by VideoSpec, each rendered once in a worker thread; concurrent asks share it.

    Use from the event loop's thread only.
    """

    def __init__(self, images: ImageStore, cache_size: int = VIDEO_CACHE) -> None:
        self.images = images
        self.cache_size = cache_size
        self._ready: OrderedDict[VideoSpec, bytes] = OrderedDict()
        self._pending: dict[VideoSpec, asyncio.Future[bytes]] = {}
        self.renders = 0

    async def mp4(self, spec: VideoSpec) -> bytes:
        """The video of a task."""
        if spec in self._ready:
            self._ready.move_to_end(spec)
            return self._ready[spec]
        if spec not in self._pending:
            self._pending[spec] = asyncio.ensure_future(self._render(spec))
        return await asyncio.shield(self._pending[spec])

    async def _render(self, spec: VideoSpec) -> bytes:
        sources = self.images.source(spec.image_key), self._tail_source(spec)
        try:
            data = await asyncio.to_thread(render_source, spec, *sources)
        finally:
            del self._pending[spec]
        self.renders += 1
        self._ready[spec] = data
        if len(self._ready) > self.cache_size:
            self._ready.popitem(last=False)
        return data

    def _tail_source(self, spec: VideoSpec) -> Source | None:
        return None if spec.tail_key is None else self.images.source(spec.tail_key)


def render_source(spec: VideoSpec, image: Source | None, tail: Source | None = None) -> bytes:
    """Render `spec` from its image and end-frame sources, fetching loopback URLs first."""
    tail_picture = None if spec.tail_key is None else picture(_bytes_of(tail), "end frame")
    return render_mp4(
        picture(_bytes_of(image), spec.image_key),
        seconds=spec.seconds,
        motion=spec.motion,
        tail=tail_picture,
        sound=spec.sound,
        defect=spec.defect,
    )


def _bytes_of(source: Source | None) -> bytes | None:
    return fetch_loopback(source) if isinstance(source, str) else source


def is_loopback_url(url: str) -> bool:
    """True for an http(s) URL whose host is localhost, 127.0.0.0/8 or ::1."""
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and is_loopback(parts.hostname or "")


def is_loopback(host: str) -> bool:
    """True for localhost, 127.0.0.0/8 and ::1."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def fetch_loopback(url: str) -> bytes | None:
    """The body at a loopback URL (None for any other URL, an error, or too large a body)."""
    if not is_loopback_url(url):
        return None
    try:
        return _get_small(pinned_to_ipv4(url))
    except httpx.HTTPError:
        return None


def pinned_to_ipv4(url: str) -> str:
    """`url` with the host `localhost` replaced by 127.0.0.1 (never a name lookup)."""
    parts = urlsplit(url)
    if parts.hostname != "localhost":
        return url
    port = f":{parts.port}" if parts.port else ""
    return urlunsplit(parts._replace(netloc=f"127.0.0.1{port}"))


def _get_small(url: str) -> bytes | None:
    with (
        httpx.Client(trust_env=False, follow_redirects=False, timeout=FETCH_TIMEOUT) as client,
        client.stream("GET", url) as response,
    ):
        if response.status_code != 200:
            return None
        body = bytearray()
        for chunk in response.iter_bytes():
            body += chunk
            if len(body) > FETCH_MAX:
                return None
        return bytes(body)
