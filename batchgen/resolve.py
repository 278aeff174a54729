"""Minimal manifest resolution (stand-in until the full manifest language lands)."""

from __future__ import annotations

import base64
import csv
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from batchgen.errors import Problem, UsageError
from batchgen.jobs import JobSpec, make_job


@dataclass(frozen=True)
class ResolveOptions:
    inline_urls: bool = False
    skip_invalid: bool = False
    max_problems: int = 200


class ImageCatalog:
    def __init__(self) -> None:
        self.sources: dict[str, Path] = {}
        self.by_path: dict[Path, str] = {}

    def ref_for(self, path: Path) -> str:
        if path not in self.by_path:
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            self.by_path[path] = f"sha256:{digest}"
            self.sources[f"sha256:{digest}"] = path
        return self.by_path[path]

    def payload(self, ref: str) -> str:
        return base64.b64encode(self.sources[ref].read_bytes()).decode()


@dataclass
class ResolvedManifest:
    name: str
    path: Path
    catalog: ImageCatalog
    rows: list[dict[str, Any]]
    defaults: dict[str, Any]

    def iter_jobs(self) -> Iterator[JobSpec | Problem]:
        for i, row in enumerate(self.rows, start=1):
            merged = {**self.defaults, **{k: v for k, v in row.items() if v not in (None, "")}}
            row_id = str(merged.pop("id", i))
            image = merged.pop("image")
            if len(merged.get("prompt", "")) > 500:
                yield Problem(row_id, 0, "prompt", "at most 500 characters")
                continue
            request = {**merged, "image": self.catalog.ref_for(self.path.parent / image)}
            request["duration"] = str(request.get("duration", "5"))
            yield make_job(request, row_id)


def resolve_manifest(path: Path, options: ResolveOptions) -> ResolvedManifest:
    if path.suffix == ".csv":
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
        return ResolvedManifest(path.stem, path, ImageCatalog(), rows, {})
    doc = yaml.safe_load(path.read_text())
    if not isinstance(doc, dict):
        raise UsageError(f"{path}: not a manifest")
    return ResolvedManifest(doc.get("name", path.stem), path, ImageCatalog(), doc["rows"],
                            doc.get("defaults", {}))
