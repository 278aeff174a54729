"""A refused start changes nothing: no state is left behind, nothing is printed as if it ran."""

from __future__ import annotations

from tests.conftest import run_cli, simulator, write_manifest


def test_a_max_cost_refusal_leaves_no_state(tmp_path, capsys):
    """--max-cost below the estimate: exit 2, and no OUTPUT/RUN/state.sqlite is left."""
    manifest = write_manifest(tmp_path, 3)
    with simulator() as sim:
        code = run_cli(
            "run", manifest, "-o", tmp_path / "out", "--max-cost", "0.01", base_url=sim.base_url
        )
        assert sim.stats()["creates_received"] == 0
    assert code == 2
    assert not (tmp_path / "out").exists()


def test_a_state_of_another_manifest_is_not_taken_over(tmp_path, capsys):
    """--state naming another run's state is refused, naming whose it is."""
    first = write_manifest(tmp_path, 2, name="first")
    second = write_manifest(tmp_path, 2, name="second")
    out = tmp_path / "out"
    with simulator() as sim:
        assert run_cli("run", first, "-o", out, base_url=sim.base_url) == 0
        state = out / "first" / "state.sqlite"
        capsys.readouterr()
        code = run_cli("run", second, "-o", out, "--state", state, base_url=sim.base_url)
    assert code == 2
    assert "state of run 'first'" in capsys.readouterr().err
