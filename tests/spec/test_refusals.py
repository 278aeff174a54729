"""A refused start changes nothing: no state is left behind, nothing is printed as if it ran."""

from __future__ import annotations

from tests.conftest import run_cli, write_manifest


def test_a_missing_key_is_refused_before_anything_is_loaded(tmp_path, capsys):
    """No key: exit 2, the variable named, no jobs announced, no run folder made."""
    manifest = write_manifest(tmp_path, 3)
    assert run_cli("run", manifest, "-o", tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert "COMETAPI_KEY" in err and "jobs (" not in err
    assert not (tmp_path / "out").exists()
