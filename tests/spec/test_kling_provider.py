"""Kling's own API: JWT credentials from the environment, renewed before they expire, never
shown; look-ups and the task list used so that no job is left unknown."""

from __future__ import annotations

import pytest

from tests.conftest import run_cli, write_manifest


@pytest.mark.parametrize("missing", ["KLING_ACCESS_KEY", "KLING_SECRET_KEY"])
def test_missing_kling_credentials_are_named_before_anything_runs(
    tmp_path, monkeypatch, capsys, missing
):
    """Without both keys: exit 2, the variables named, no state made."""
    manifest = write_manifest(tmp_path, 1)
    for name in ("KLING_ACCESS_KEY", "KLING_SECRET_KEY"):
        if name != missing:
            monkeypatch.setenv(name, "x" * 32)
    assert run_cli("run", manifest, "-o", tmp_path / "out", "--provider", "kling") == 2
    assert "KLING_ACCESS_KEY and KLING_SECRET_KEY" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
