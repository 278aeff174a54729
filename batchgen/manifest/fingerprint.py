"""Has anything a manifest's jobs came from changed since they were loaded into the state?

After a full load, `take` gives what the state keeps: the size and mtime of every file that was read
(the manifest, its rows CSV, every image), what each glob matched, the options that change the
jobs and batchgen's version. `unchanged` compares them on the next run: when nothing changed,
the state's jobs are the manifest's jobs and a run starts without resolving every row again
(a million rows take about a minute). A load that skipped invalid rows is not fingerprinted: a
file added since may make them valid. Image bytes are still hashed when sent
(`ImageCatalog.payload`), so a file edited in place under the same size and mtime is refused,
never sent under its old job id. Manifests whose images are not all local files (base64 in the
manifest, inlined URLs) are always resolved in full.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

from batchgen.manifest.resolve import ResolvedManifest
from batchgen.manifest.source import glob_files

InputFile = tuple[str, int | None, int | None, str | None]  # path, size, mtime_ns, image ref
Kind = tuple[str, str, str]  # model, tier, duration: what money/pricing.py calls a Key


@dataclass(frozen=True, slots=True)
class LoadedBefore:
    """What the last full load found, for a run that does not repeat it."""

    jobs: int
    skipped: int
    kinds: dict[Kind, int]  # jobs per (model, mode, duration), for --max-cost
    images: dict[str, str]  # ref -> path


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """What the state keeps of a load: every file read, and a JSON document of the rest
    ('' when the load cannot be fingerprinted)."""

    files: list[InputFile]
    document: str


def take(
    manifest: ResolvedManifest,
    options: Mapping[str, Any],
    *,
    jobs: int,
    skipped: int,
    kinds: Mapping[Kind, int],
) -> Fingerprint:
    """What `manifest`'s jobs were loaded from (or that it cannot be fingerprinted: skipped
    rows may become valid through a file that was not there to be read)."""
    images = manifest.catalog.local_files()
    if images is None or skipped:
        return Fingerprint([], "")
    rows: list[InputFile] = [(_absolute(p), *_stat(p), None) for p in manifest.source.files]
    rows += [(_absolute(Path(path)), *_stat(Path(path)), ref) for ref, path in images.items()]
    globs = [
        [_absolute(base), pattern, _digest(glob_files(base, pattern))]
        for base, pattern in manifest.source.globs
    ]
    document = {
        "batchgen": version("batchgen"),
        "options": dict(options),
        "globs": globs,
        "jobs": jobs,
        "skipped": skipped,
        "kinds": [[*key, n] for key, n in kinds.items()],
    }
    return Fingerprint(rows, json.dumps(document, sort_keys=True))


def unchanged(
    before: tuple[str | None, list[InputFile]], manifest_path: Path, options: Mapping[str, Any]
) -> LoadedBefore | None:
    """What the last load found (`before`: the document and files its Fingerprint kept), if
    nothing it read has changed since; else None."""
    raw, inputs = before
    if not raw:
        return None
    document = json.loads(raw)
    if document["batchgen"] != version("batchgen") or document["options"] != dict(options):
        return None
    files: set[str] = set()
    images: dict[str, str] = {}
    for path, size, mtime_ns, ref in inputs:
        if _stat(Path(path)) != (size, mtime_ns):
            return None
        if ref is None:
            files.add(path)
        else:
            images[ref] = path
    if _absolute(manifest_path) not in files:
        return None
    for base, pattern, digest in document["globs"]:
        if _digest(glob_files(Path(base), pattern)) != digest:
            return None
    kinds = {(model, mode, duration): n for model, mode, duration, n in document["kinds"]}
    return LoadedBefore(document["jobs"], document["skipped"], kinds, images)


def _stat(path: Path) -> tuple[int | None, int | None]:
    try:
        st = path.stat()
    except OSError:
        return None, None
    return st.st_size, st.st_mtime_ns


def _absolute(path: Path) -> str:
    return os.path.abspath(path)


def _digest(names: list[str]) -> str:
    return hashlib.sha256("\n".join(names).encode()).hexdigest()
