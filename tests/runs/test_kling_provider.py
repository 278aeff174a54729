"""Kling's own API: JWT credentials from the environment, renewed before they expire, never
shown; look-ups and the task list used so that no job is left unknown."""

from __future__ import annotations

import time

import anyio
import pytest
from pydantic import SecretStr

import batchgen
from batchgen.providers import KLING, connect
from batchgen.providers.auth import KlingJwt
from batchgen.settings import Settings
from batchgen.state.store import Store
from tests.conftest import read_index, run_cli, simulator, write_manifest
from tests.runs.test_resilience import create_directly, leave_submitting


@pytest.mark.slow
def test_a_token_that_expires_mid_run_is_renewed_without_a_failed_request():
    """Tokens of 2 s renewed 1 s early: 6 s of requests, several renewals, no 401 at all."""
    auth = KlingJwt("sim-access", "sim-secret", lifetime=2.0, renew_before=1.0)

    async def ask_for_six_seconds(base_url: str) -> int:
        provider = connect(KLING, auth, base_url)
        answered = 0
        try:
            deadline = time.monotonic() + 6.0
            while time.monotonic() < deadline:
                await provider.list_tasks(1, 10)
                answered += 1
                await anyio.sleep(0.25)
        finally:
            await provider.aclose()
        return answered

    with simulator(profile="kling") as sim:
        answered = anyio.run(ask_for_six_seconds, sim.base_url)
        refusals = sim.stats()["auth_refusals"]
    assert answered >= 20 and auth.renewals >= 4
    assert refusals == {}


def test_a_wrong_secret_stops_with_3_naming_the_variable_never_the_key(tmp_path, capsys):
    """A secret the provider does not accept: exit 3, KLING_SECRET_KEY named, key not shown."""
    manifest = write_manifest(tmp_path, 2)
    with simulator(profile="kling") as sim:
        code = run_cli(
            "run",
            manifest,
            "-o",
            tmp_path / "out",
            "--provider",
            "kling",
            "--base-url",
            sim.base_url,
            "--access-key",
            "sim-access",
            "--secret-key",
            "a-wrong-secret-of-some-length",
            "--no-progress",
        )
        assert sim.stats()["creates_accepted"] == 0
    err = capsys.readouterr().err
    assert code == 3
    assert "KLING_ACCESS_KEY and KLING_SECRET_KEY" in err
    assert "a-wrong-secret-of-some-length" not in err and "Traceback" not in err
    for path in (tmp_path / "out").rglob("*"):
        if path.is_file():
            assert b"a-wrong-secret-of-some-length" not in path.read_bytes()


def test_credentials_come_from_the_environment(tmp_path, monkeypatch):
    """KLING_ACCESS_KEY, KLING_SECRET_KEY and BATCHGEN_PROVIDER are enough to run."""
    manifest = write_manifest(tmp_path, 2)
    monkeypatch.setenv("BATCHGEN_PROVIDER", "kling")
    monkeypatch.setenv("KLING_ACCESS_KEY", "sim-access")
    monkeypatch.setenv("KLING_SECRET_KEY", "sim-secret")
    with simulator(profile="kling") as sim:
        code = run_cli("run", manifest, "-o", tmp_path / "out", "--base-url", sim.base_url)
        stats = sim.stats()
    assert code == 0 and stats["list_calls"] > 0
    assert len(read_index(tmp_path / "out" / "batch")) == 2


@pytest.mark.parametrize("form", ["path", "query"])
def test_a_relay_that_answers_look_ups_in_one_form_has_its_lost_creates_adopted(tmp_path, form):
    """A relay documenting no look-up but answering one form: a create lost after the task
    was made is found there (exact echo) and adopted, and that form is recorded in the state
    to be asked first."""
    manifest = write_manifest(tmp_path, 3)
    out = tmp_path / "out"
    ext = leave_submitting(manifest, out)
    with simulator(lookup_form=form) as sim:
        create_directly(sim, ext, tmp_path / "images" / "img0.jpg", "cometapi")
        settings = Settings(output=out, base_url=sim.base_url, api_key=SecretStr("sk-test"))
        outcome = batchgen.run(manifest, settings)
        assert set(sim.stats()["submissions_per_external_id"].values()) == {1}
    assert outcome.exit_code == 0 and outcome.adopted == 1
    with Store.open(out / "batch" / "state.sqlite") as store:
        assert store.get_meta(f"lookup_form:cometapi:{sim.base_url}") == form


def test_verify_repair_uses_the_runs_own_provider(tmp_path, capsys):
    """A Kling run's damaged video is repaired with Kling's credentials from the environment,
    without saying --provider again."""
    manifest = write_manifest(tmp_path, 2)
    out = tmp_path / "out"
    with simulator(profile="kling") as sim:
        assert run_cli("run", manifest, "-o", out, base_url=sim.base_url, profile="kling") == 0
        video = out / "batch" / read_index(out / "batch")[0]["video"]
        video.write_bytes(b"damaged")
        with pytest.MonkeyPatch.context() as env:
            env.setenv("KLING_ACCESS_KEY", "sim-access")
            env.setenv("KLING_SECRET_KEY", "sim-secret")
            code = run_cli("verify", out / "batch", "--repair", "--base-url", sim.base_url)
        assert sim.stats()["creates_received"] == 2
    assert code == 0 and "every video is intact" in capsys.readouterr().out
