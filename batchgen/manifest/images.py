"""Image sources: where a manifest's image comes from, what it is, and its bytes when sent.

A source is a local path (relative to the manifest's folder), an http(s) URL, or base64 (raw,
or a ``data:image/...;base64,`` URI whose prefix is dropped). Raw base64 is told from a path by
shape: at least 100 characters of the base64 alphabet; use a data: URI to be explicit.

`ImageCatalog.lookup` reads each source once per run, hashes it and decodes it in full
(`imagedecode`: a file cut short is refused here, not after it was sent), and remembers the
answer, so an image used by 10,000 rows is read once; content met under several names is
decoded once. `prefetch` starts that work in the decoding threads ahead of `lookup`, which then
waits for it; answers do not depend on the order. Its `ImageInfo.ref` is what a request holds
(jobs.py): ``sha256:<hex>`` for content sent as base64, or the URL itself when the provider
fetches it. A URL is only checked for its shape unless `inline_urls` is set, in which case it is
downloaded, checked like a file and sent as base64. `payload(ref)` gives the base64 to send,
reading the source again if it is not in a small cache, and refuses content that changed since
it was checked.
"""

from __future__ import annotations

import base64
import binascii
import difflib
import hashlib
import os
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from batchgen.errors import ImageChanged, ImageUnreadable, UsageError
from batchgen.jobs import SHA_PREFIX
from batchgen.manifest.imagedecode import ContentDecoder, shared_pool

__all__ = [
    "MAX_BYTES",
    "ImageCatalog",
    "ImageChanged",
    "ImageInfo",
    "ImageUnreadable",
    "http_fetch",
    "inline_base64",
    "is_url",
]

MAX_BYTES = 10 * 1024 * 1024
URL_DEADLINE = 60.0  # seconds for the whole download of one URL image (--url-timeout)
PAYLOAD_CACHE_BYTES = 64 * 1024 * 1024
BASE64_MIN_CHARS = 100
_BASE64 = re.compile(r"[A-Za-z0-9+/]+={0,2}")
_SPACE = re.compile(r"\s+")

Fetch = Callable[[str], bytes]


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


def digest_ref(data: bytes) -> str:
    return SHA_PREFIX + hashlib.sha256(data).hexdigest()


def _megabytes(size: int) -> str:
    return f"{size / 1024 / 1024:.1f} MB"


def _near(path: Path) -> str:
    """ "; did you mean beach.jpg?" for a file of the folder named much like `path`, or the
    folder that is missing itself."""
    folder = path.parent
    if not folder.is_dir():
        return f" (no folder {folder})"
    try:
        names = [entry.name for entry in os.scandir(folder) if entry.is_file()]
    except OSError:
        return ""
    same_stem = [name for name in names if Path(name).stem == path.stem]
    close = same_stem or difflib.get_close_matches(path.name, names, n=1, cutoff=0.75)
    return f"; did you mean {close[0]}?" if close else ""


def too_big(size: int) -> ImageUnreadable:
    return ImageUnreadable(f"at most 10 MB (got {_megabytes(size)})")


def http_fetch(url: str, timeout: float = 30.0, deadline: float = URL_DEADLINE) -> bytes:
    """The bytes at `url` (at most 10 MB), all of them within `deadline` seconds however
    slowly the server sends them (a read waits at most `timeout`); raises ImageUnreadable.
    The download runs in a thread of its own, left to end by itself after the deadline."""
    done: list[bytes | ImageUnreadable] = []
    given_up = threading.Event()
    worker = threading.Thread(
        target=_fetch_into, args=(url, timeout, given_up, done), name="batchgen-image-url"
    )
    worker.daemon = True
    worker.start()
    worker.join(deadline)
    if not done:
        given_up.set()
        raise ImageUnreadable(f"could not download {url}: not complete after {deadline:g} s")
    if isinstance(done[0], ImageUnreadable):
        raise done[0]
    return done[0]


def _fetch_into(
    url: str, timeout: float, given_up: threading.Event, done: list[bytes | ImageUnreadable]
) -> None:
    try:
        with httpx.stream("GET", url, timeout=timeout, follow_redirects=True) as response:
            response.raise_for_status()
            data = bytearray()
            for chunk in response.iter_bytes():
                data += chunk
                if given_up.is_set():
                    return
                if len(data) > MAX_BYTES:
                    raise too_big(len(data))
            done.append(bytes(data))
    except httpx.HTTPError as exc:
        done.append(ImageUnreadable(f"could not download {url}: {exc}"))
    except ImageUnreadable as exc:
        done.append(exc)


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


Key = tuple[str, str]  # folder, source as written


@dataclass(frozen=True, slots=True)
class _Found:
    """What a decoding thread learned of one source; `data` is kept for inlined URLs only
    (reading them again means downloading them again)."""

    answer: ImageInfo | ImageUnreadable
    source: _Source | None = None
    data: bytes | None = None


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
        self.decoder = ContentDecoder()
        self._answers: dict[Key, ImageInfo | ImageUnreadable] = {}
        self._pending: dict[Key, Future[_Found]] = {}
        self._sources: dict[str, _Source] = {}
        self._payloads = _PayloadCache(cache_bytes)

    @property
    def pending(self) -> int:
        """Lookups started by `prefetch` and not yet taken by `lookup`."""
        return len(self._pending)

    def prefetch(self, value: str, base: Path | None = None) -> None:
        """Start reading and decoding `value` in the decoding threads, if not done or under way."""
        folder = base or self.base
        key = (str(folder), value)
        if key not in self._answers and key not in self._pending:
            self._pending[key] = shared_pool().submit(self._find, value, folder)

    def lookup(self, value: str, base: Path | None = None) -> ImageInfo:
        """What the source `value` is; relative paths are taken from `base` (default: the
        catalog's). Raises ImageUnreadable, the same answer each time for the same source."""
        folder = base or self.base
        key = (str(folder), value)
        answer = self._answers.get(key)
        if answer is None:
            pending = self._pending.pop(key, None)
            found = pending.result() if pending is not None else self._find(value, folder)
            answer = self._answers[key] = self._register(found)
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

    def _register(self, found: _Found) -> ImageInfo | ImageUnreadable:
        if found.source is None or isinstance(found.answer, ImageUnreadable):
            return found.answer
        self.reads += 1
        self._sources.setdefault(found.answer.ref, found.source)
        if found.data is not None:
            self._payloads.put(found.answer.ref, base64.b64encode(found.data).decode())
        return found.answer

    def _find(self, value: str, base: Path) -> _Found:
        """Read, hash and decode one source. Runs in a decoding thread: touches no state of
        the catalog but its thread-safe decoder."""
        try:
            return self._classify(value, base)
        except ImageUnreadable as exc:
            return _Found(exc)

    def _classify(self, value: str, base: Path) -> _Found:
        if is_url(value):
            return self._url(value)
        if "://" in value:
            raise ImageUnreadable(f"only http:// and https:// URLs are fetched (got {value!r})")
        encoded = inline_base64(value)
        if encoded is not None:
            return self._inline(encoded)
        return self._path(base / Path(value).expanduser())

    def _url(self, url: str) -> _Found:
        parts = urlsplit(url)
        if not parts.netloc or " " in url:
            raise ImageUnreadable(f"not a valid URL: {url!r}")
        if not self.inline_urls:
            return _Found(ImageInfo(ref=url))
        data = self.fetch(url)
        return self._checked(data, _Source("url", url), keep=True)

    def _inline(self, encoded: str) -> _Found:
        try:
            data = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise ImageUnreadable("not valid base64") from None
        return self._checked(data, _Source("inline", encoded))

    def _path(self, path: Path) -> _Found:
        try:
            size = path.stat().st_size
            if not path.is_file():
                raise ImageUnreadable(f"not a file: {path}")
            if size > MAX_BYTES:
                raise too_big(size)
            data = path.read_bytes()
        except FileNotFoundError:
            raise ImageUnreadable(f"file not found: {path}{_near(path)}") from None
        except OSError as exc:
            raise ImageUnreadable(f"cannot read {path}: {exc.strerror}") from None
        return self._checked(data, _Source("path", str(path)))

    def _checked(self, data: bytes, source: _Source, keep: bool = False) -> _Found:
        if len(data) > MAX_BYTES:
            raise too_big(len(data))
        ref = digest_ref(data)
        decoded = self.decoder.decode(ref, data)
        info = ImageInfo(ref, decoded.format, decoded.width, decoded.height, len(data))
        return _Found(info, source, data if keep else None)

    def _read_again(self, source: _Source) -> bytes:
        try:
            if source.kind == "url":
                return self.fetch(source.where)
            return Path(source.where).read_bytes()
        except (OSError, ImageUnreadable) as exc:
            raise ImageChanged(f"cannot read {source.where} again: {exc}") from None
