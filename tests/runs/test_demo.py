"""`batchgen demo`: the packaged demo, from any folder, against either provider's simulator."""

from __future__ import annotations

import json

import pytest

from tests.conftest import run_cli

QUICK = ("--latency", "0.05", "0.2")


def test_demo_runs_the_packaged_manifest_from_any_folder(tmp_path, capsys):
    """In a folder with no manifest, `batchgen demo` makes six videos in ./output/demo."""
    assert list(tmp_path.iterdir()) == []
    assert run_cli("demo", *QUICK) == 0
    videos = sorted((tmp_path / "output" / "demo" / "videos").glob("*.mp4"))
    assert len(videos) == 6
    assert "6 done, 0 failed" in capsys.readouterr().err


@pytest.mark.parametrize("provider", ["cometapi", "kling"])
def test_demo_runs_against_the_simulator_of_the_provider_asked_for(tmp_path, provider, capsys):
    """`batchgen demo --provider P -o DIR` runs against P's simulator, and the state says P."""
    assert run_cli("demo", "--provider", provider, "-o", tmp_path / "d", *QUICK) == 0
    capsys.readouterr()
    assert run_cli("report", tmp_path / "d" / "demo", "--json") == 0
    report = json.loads(capsys.readouterr().out)
    assert report["provider"] == provider and report["counts"]["done"] == 6
