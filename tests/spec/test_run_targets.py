"""status, report, verify, export and gallery take the run as MANIFEST, RUN or STATE; status
and report show the money spent and committed."""

from __future__ import annotations

from tests.conftest import run_cli, write_manifest


def test_a_manifest_never_run_has_no_state_to_show(tmp_path, capsys):
    """`status` of a manifest whose run does not exist says where it looked (exit 2)."""
    assert run_cli("status", write_manifest(tmp_path, 2), "-o", tmp_path / "elsewhere") == 2
    err = capsys.readouterr().err
    assert "no state found at" in err and "elsewhere" in err and "Traceback" not in err
