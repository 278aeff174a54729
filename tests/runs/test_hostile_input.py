"""Input nobody should send still gets a clean answer: a problem or a usage error naming the
file, line and field, never a traceback, a hang or a task sent to the provider."""

from __future__ import annotations

from pathlib import Path

import pytest

from batchgen.errors import Problem
from tests.conftest import run_cli, simulator
from tests.spec.test_hostile_input import manifest, outcome, png_bytes


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A folder holding a good image, a.png."""
    (tmp_path / "a.png").write_bytes(png_bytes())
    return tmp_path


@pytest.mark.parametrize("kind", ["PNG", "JPEG"])
def test_an_image_cut_short_is_refused_before_anything_is_sent(folder: Path, kind: str) -> None:
    """A PNG or JPEG whose end is missing is a problem at validation; `run` sends nothing."""
    data = png_bytes(kind=kind)
    (folder / "cut.img").write_bytes(data[: len(data) * 2 // 3])
    path = manifest(folder, "rows:\n  - {id: r, image: cut.img, model_name: kling-v2-master}\n")
    (problem,) = outcome(path)
    assert isinstance(problem, Problem) and problem.field == "image"
    assert "cut short" in problem.message
    with simulator() as sim:
        assert run_cli("run", path, "-o", folder / "out", base_url=sim.base_url) == 2
        assert sim.stats()["creates_received"] == 0
