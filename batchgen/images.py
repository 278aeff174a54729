"""Image sources: where a manifest's image comes from, what it is, and its bytes when sent.

A source is a local path (relative to the manifest's folder), an http(s) URL, or base64 (raw,
or a ``data:image/...;base64,`` URI whose prefix is dropped). Raw base64 is told from a path by
shape: at least 100 characters of the base64 alphabet; use a data: URI to be explicit.

`ImageCatalog.lookup` reads each source once per run, hashes it and reads the image header
with Pillow (no pixel decoding), and remembers the answer, so an image used by 10,000 rows is
read and hashed once. Its `ImageInfo.ref` is what a request holds (jobs.py): ``sha256:<hex>``
for content sent as base64, or the URL itself when the provider fetches it. A URL is only
checked for its shape unless `inline_urls` is set, in which case it is downloaded, checked like
a file and sent as base64. `payload(ref)` gives the base64 to send, reading the source again if
it is not in a small cache, and refuses content that changed since it was checked.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import os
import re
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from PIL import Image, UnidentifiedImageError

from batchgen.errors import UsageError
from batchgen.jobs import SHA_PREFIX

MAX_BYTES = 10 * 1024 * 1024
PAYLOAD_CACHE_BYTES = 64 * 1024 * 1024
BASE64_MIN_CHARS = 100
_BASE64 = re.compile(r"[A-Za-z0-9+/]+={0,2}")
_SPACE = re.compile(r"\s+")

Fetch = Callable[[str], bytes]


class ImageUnreadable(ValueError):
    """A source that cannot be used; the message says why (and is cached like an answer)."""


class ImageChanged(UsageError):
    """An image's content differs from what was checked when the manifest was validated."""


@dataclass(frozen=True, slots=True)
class ImageInfo:
    """What was learned about a source; size fields are None for a URL that is not fetched."""

    ref: str
    format: str | None = None
    width: int | None = None
    height: int | None = None
    size: int | None = None

    @property
    def dimensions(self) -> tuple[int, int] | None:
        if self.width is None or self.height is None:
            return None
        return self.width, self.height


def is_url(value: str) -> bool:
    return value.startswith(("http://", "https://"))


def inline_base64(value: str) -> str | None:
    """The raw base64 of a data: URI or a raw base64 value (whitespace removed); None if
    the value is neither (then it is a path)."""
    if value.startswith("data:"):
        head, comma, data = value.partition(",")
        if not comma or not head.endswith(";base64"):
            raise ImageUnreadable("a data: URI must be data:image/...;base64,<data>")
        return _SPACE.sub("", data)
    compact = _SPACE.sub("", value)
    if len(compact) >= BASE64_MIN_CHARS and _BASE64.fullmatch(compact):
        return compact
    return None


def describe(data: bytes) -> tuple[str, int, int]:
    """(format, width, height) from the image header; raises ImageUnreadable."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as picture:
                return str(picture.format), picture.width, picture.height
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError):
        raise ImageUnreadable("not a readable image (expected JPG or PNG)") from None


def digest_ref(data: bytes) -> str:
    return SHA_PREFIX + hashlib.sha256(data).hexdigest()


def _megabytes(size: int) -> str:
    return f"{size / 1024 / 1024:.1f} MB"


def too_big(size: int) -> ImageUnreadable:
    return ImageUnreadable(f"at most 10 MB (got {_megabytes(size)})")


def http_fetch(url: str, timeout: float = 30.0) -> bytes:
    """The bytes at `url` (at most 10 MB); raises ImageUnreadable."""
    try:
        with httpx.stream("GET", url, timeout=timeout, follow_redirects=True) as response:
            response.raise_for_status()
            data = bytearray()
            for chunk in response.iter_bytes():
                data += chunk
                if len(data) > MAX_BYTES:
                    raise too_big(len(data))
            return bytes(data)
    except httpx.HTTPError as exc:
        raise ImageUnreadable(f"could not download {url}: {exc}") from None


class _PayloadCache:
    """Recently sent payloads, bounded by their total size."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.used = 0
        self.items: OrderedDict[str, str] = OrderedDict()

    def get(self, ref: str) -> str | None:
        if ref in self.items:
            self.items.move_to_end(ref)
        return self.items.get(ref)

    def put(self, ref: str, payload: str) -> None:
        if ref in self.items or len(payload) > self.budget:
            return
        self.items[ref] = payload
        self.used += len(payload)
        while self.used > self.budget:
            _, old = self.items.popitem(last=False)
            self.used -= len(old)


@dataclass(frozen=True, slots=True)
class _Source:
    kind: str  # "path", "url" (inlined) or "inline" (base64 from the manifest)
    where: str


class ImageCatalog:
    """Every image a manifest uses, looked up once each; see the module docstring."""

    def __init__(
        self,
        base: Path,
        *,
        inline_urls: bool = False,
        fetch: Fetch = http_fetch,
        cache_bytes: int = PAYLOAD_CACHE_BYTES,
    ) -> None:
        self.base = base
        self.inline_urls = inline_urls
        self.fetch = fetch
        self.reads = 0
        self._answers: dict[tuple[Path, str], ImageInfo | ImageUnreadable] = {}
        self._sources: dict[str, _Source] = {}
        self._payloads = _PayloadCache(cache_bytes)

    def lookup(self, value: str, base: Path | None = None) -> ImageInfo:
        """What the source `value` is; relative paths are taken from `base` (default: the
        catalog's). Raises ImageUnreadable, the same answer each time for the same source."""
        key = (base or self.base, value)
        answer = self._answers.get(key)
        if answer is None:
            answer = self._answer(value, key[0])
            self._answers[key] = answer
        if isinstance(answer, ImageUnreadable):
            raise answer
        return answer

    def local_files(self) -> dict[str, str] | None:
        """ref -> path of every image read from a file; None if some came from elsewhere
        (base64 in the manifest, an inlined URL)."""
        if any(source.kind != "path" for source in self._sources.values()):
            return None
        return {ref: source.where for ref, source in self._sources.items()}

    def described(self) -> Iterator[tuple[str, int | None, int | None, str | None]]:
        """(ref, width, height, source) of every image looked up, once per ref: `source` is
        the absolute path of a local file, the URL of a URL image, else None."""
        seen: set[str] = set()
        for answer in self._answers.values():
            if isinstance(answer, ImageInfo) and answer.ref not in seen:
                seen.add(answer.ref)
                yield answer.ref, answer.width, answer.height, self._where(answer.ref)

    def _where(self, ref: str) -> str | None:
        source = self._sources.get(ref)
        if source is None:
            return ref if is_url(ref) else None
        if source.kind == "path":
            return os.path.abspath(source.where)
        return source.where if source.kind == "url" else None

    def add_file(self, ref: str, path: str) -> None:
        """Know `ref` as the content of `path` without reading it now (`payload` checks it)."""
        self._sources.setdefault(ref, _Source("path", path))

    def payload(self, ref: str) -> str:
        """The base64 (no prefix) to send for a content ref. Raises ImageChanged if the source
        no longer has the content that was checked, UsageError for an unknown ref."""
        cached = self._payloads.get(ref)
        if cached is not None:
            return cached
        source = self._sources.get(ref)
        if source is None:
            raise UsageError(f"no image known for {ref}")
        if source.kind == "inline":
            return source.where
        data = self._read_again(source)
        if digest_ref(data) != ref:
            raise ImageChanged(f"{source.where} changed since the manifest was checked")
        payload = base64.b64encode(data).decode()
        self._payloads.put(ref, payload)
        return payload

    def _answer(self, value: str, base: Path) -> ImageInfo | ImageUnreadable:
        try:
            return self._classify(value, base)
        except ImageUnreadable as exc:
            return exc

    def _classify(self, value: str, base: Path) -> ImageInfo:
        if is_url(value):
            return self._url(value)
        if "://" in value:
            raise ImageUnreadable(f"only http:// and https:// URLs are fetched (got {value!r})")
        encoded = inline_base64(value)
        if encoded is not None:
            return self._inline(encoded)
        return self._path(base / Path(value).expanduser())

    def _url(self, url: str) -> ImageInfo:
        parts = urlsplit(url)
        if not parts.netloc or " " in url:
            raise ImageUnreadable(f"not a valid URL: {url!r}")
        if not self.inline_urls:
            return ImageInfo(ref=url)
        return self._remember(self.fetch(url), _Source("url", url))

    def _inline(self, encoded: str) -> ImageInfo:
        try:
            data = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise ImageUnreadable("not valid base64") from None
        return self._remember(data, _Source("inline", encoded))

    def _path(self, path: Path) -> ImageInfo:
        try:
            size = path.stat().st_size
            if not path.is_file():
                raise ImageUnreadable(f"not a file: {path}")
            if size > MAX_BYTES:
                raise too_big(size)
            data = path.read_bytes()
        except FileNotFoundError:
            raise ImageUnreadable(f"file not found: {path}") from None
        except OSError as exc:
            raise ImageUnreadable(f"cannot read {path}: {exc.strerror}") from None
        return self._remember(data, _Source("path", str(path)))

    def _remember(self, data: bytes, source: _Source) -> ImageInfo:
        self.reads += 1
        if len(data) > MAX_BYTES:
            raise too_big(len(data))
        kind, width, height = describe(data)
        ref = digest_ref(data)
        self._sources.setdefault(ref, source)
        if source.kind != "inline":
            self._payloads.put(ref, base64.b64encode(data).decode())
        return ImageInfo(ref=ref, format=kind, width=width, height=height, size=len(data))

    def _read_again(self, source: _Source) -> bytes:
        try:
            if source.kind == "url":
                return self.fetch(source.where)
            return Path(source.where).read_bytes()
        except (OSError, ImageUnreadable) as exc:
            raise ImageChanged(f"cannot read {source.where} again: {exc}") from None
