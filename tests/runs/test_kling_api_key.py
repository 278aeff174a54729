"""Kling's API Key (kling-api.md §18.2 (7)): it authenticates every route, and it opens the
newer GET /tasks look-ups by external id, used only once a run has seen its own tasks there."""

from __future__ import annotations

import pytest

from tests.conftest import run_cli, simulator, write_manifest
from tests.runs.test_resilience import create_directly, leave_submitting, state_of

HIDDEN = {"lookup_form": "none", "lists_tasks": False}  # no other route finds a lost create


def run_with_key(manifest, out, sim) -> int:
    flags = ("--provider", "kling", "--base-url", sim.base_url, "--no-progress")
    return run_cli("run", manifest, "-o", out, *flags, "--kling-api-key", "sim-kling-api-key")


@pytest.mark.parametrize("shown", [True, False])
def test_tasks_finds_a_lost_create_once_it_has_shown_the_runs_own_tasks(tmp_path, shown):
    """A lost create that neither look-up form nor the list can find: with the API Key, the
    next run asks GET /tasks whether it shows one of the run's tasks; where it does, the lost
    create is found there and adopted (else it stays unknown, and the answer is kept)."""
    manifest = write_manifest(tmp_path, 3)
    out = tmp_path / "out"
    ext = leave_submitting(manifest, out)
    with simulator(profile="kling", tasks_show_legacy=shown, **HIDDEN) as sim:
        create_directly(sim, ext, tmp_path / "images" / "img0.jpg", "kling")
        assert run_with_key(manifest, out, sim) == 1  # no task id known yet to ask /tasks with
        second = run_with_key(manifest, out, sim)
        stats = sim.stats()
    assert stats["creates_accepted"] == 3 and stats["tasks_calls"] >= 1
    with state_of(out / "batch") as store:
        said = store.get_meta(f"tasks_show_legacy:{sim.base_url}")
        unknown = list(store.unknown_in_job_order())
    assert said == ("yes" if shown else "no")
    assert (second, len(unknown)) == ((0, 0) if shown else (1, 1))


def test_an_api_key_from_the_environment_is_enough_for_kling(tmp_path, monkeypatch):
    """KLING_API_KEY alone (no access and secret keys) runs a Kling manifest to the end."""
    manifest = write_manifest(tmp_path, 2)
    monkeypatch.setenv("KLING_API_KEY", "sim-kling-api-key")
    with simulator(profile="kling") as sim:
        args = ("run", manifest, "-o", tmp_path / "out", "--provider", "kling")
        assert run_cli(*args, "--base-url", sim.base_url, "--no-progress") == 0
        assert sim.stats()["auth_refusals"] == {}
