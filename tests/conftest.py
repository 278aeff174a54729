"""Shared fixtures: a real simulator on a loopback port, manifests with real images, the CLI."""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
from PIL import Image

from batchgen.cli import main
from batchgen.simulator import SimulatorConfig, running_simulator

FAST = {"latency": (0.05, 0.2), "slots": 8, "seed": 1}


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch, tmp_path):
    """No test sees the developer's key, base URL or working folder."""
    for name in ("COMETAPI_KEY", "BATCHGEN_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


@contextmanager
def simulator(**overrides: Any) -> Iterator[Any]:
    config = SimulatorConfig(**{**FAST, **overrides})
    with running_simulator(config) as sim:
        yield sim


@pytest.fixture
def sim():
    with simulator() as handle:
        yield handle


def make_images(folder: Path, count: int = 3) -> list[str]:
    """A few real, distinct images that pass the pre-flight checks (names relative to folder)."""
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for i in range(count):
        name = f"img{i}.{'png' if i % 2 else 'jpg'}"
        Image.new("RGB", (480, 320), (40 * i % 256, 90, 160)).save(folder / name)
        names.append(f"images/{name}")
    return names


def write_manifest(folder: Path, rows: int, fmt: str = "yaml", name: str = "batch") -> Path:
    """A manifest of `rows` distinct jobs over a few shared images."""
    images = make_images(folder / "images")
    entries = [
        {"id": f"clip-{i:03d}", "image": images[i % len(images)], "prompt": f"slow pan, take {i}"}
        for i in range(rows)
    ]
    if fmt == "csv":
        path = folder / f"{name}.csv"
        with open(path, "w", newline="") as f:
            writer = csv.DictWriter(
                f, fieldnames=["id", "image", "prompt", "model_name", "duration"]
            )
            writer.writeheader()
            for entry in entries:
                writer.writerow({**entry, "model_name": "kling-v2-master", "duration": "5"})
        return path
    path = folder / f"{name}.yaml"
    doc = {
        "name": name,
        "defaults": {"model_name": "kling-v2-master", "duration": "5"},
        "rows": entries,
    }
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def run_cli(*args: str | os.PathLike[str], base_url: str | None = None) -> int:
    """Run `batchgen ARGS` in-process against `base_url`; returns the exit code."""
    argv = [str(a) for a in args]
    if base_url is not None:
        argv += ["--base-url", base_url, "--api-key", "sk-test", "--no-progress"]
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    return int(exit_info.value.code or 0)


def read_index(run_dir: Path) -> list[dict[str, Any]]:
    text = (run_dir / "index.jsonl").read_text()
    return [json.loads(line) for line in text.splitlines() if line.strip()]
