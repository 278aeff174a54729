"""A provider that cannot be reached stops the run like an account error: exit 3, a message
naming the base URL and what failed, nothing marked failed, the same command resumes."""

from __future__ import annotations

import signal
import socket
import time

import pytest
from pydantic import SecretStr

import batchgen
from batchgen.settings import Settings
from batchgen.state.store import Store
from batchgen.status import JobStatus
from tests.conftest import run_cli, simulator, write_manifest
from tests.runs.test_resilience import spawn_run


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_an_unreachable_provider_stops_the_run_with_nothing_failed(tmp_path):
    """Connection refused on every request: stopped as unreachable, every job still pending."""
    manifest = write_manifest(tmp_path, 4)
    url = f"http://127.0.0.1:{closed_port()}"
    settings = Settings(output=tmp_path / "out", base_url=url, api_key=SecretStr("sk-test"))
    outcome = batchgen.run(manifest, settings, unreachable_at_start=1.0)
    assert outcome.stopped == "unreachable" and outcome.exit_code == 3
    assert url in outcome.stop_reason and "ConnectError" in outcome.stop_reason
    assert outcome.counts[JobStatus.PENDING] == 4 and outcome.counts[JobStatus.FAILED] == 0


@pytest.mark.slow
def test_the_same_command_resumes_once_the_provider_is_back(tmp_path, capsys):
    """The CLI says what failed and where (exit 3); once reachable, the run completes."""
    manifest = write_manifest(tmp_path, 3)
    out = tmp_path / "out"
    port = closed_port()
    code = run_cli("run", manifest, "-o", out, base_url=f"http://127.0.0.1:{port}")
    err = capsys.readouterr().err
    assert code == 3
    assert f"the provider at http://127.0.0.1:{port} cannot be reached" in err
    assert "Traceback" not in err and "0 failed" in err
    with simulator(port=port) as sim:
        assert run_cli("run", manifest, "-o", out, base_url=sim.base_url) == 0


def test_a_provider_that_cannot_be_reached_is_not_asked_once_per_pending_job(tmp_path):
    """Creates pause after a failed connection: a few tries before the stop, not one create
    for every pending job (which the feed would otherwise pick up one after the other)."""
    manifest = write_manifest(tmp_path, 300)
    url = f"http://127.0.0.1:{closed_port()}"
    settings = Settings(output=tmp_path / "out", base_url=url, api_key=SecretStr("sk-test"))
    outcome = batchgen.run(manifest, settings, unreachable_at_start=3.0)
    assert outcome.stopped == "unreachable"
    with Store.open(tmp_path / "out" / "batch" / "state.sqlite") as store:
        tried = sum(1 for job in store.with_status(JobStatus.PENDING) if job.last_error)
    assert tried <= 40 and outcome.api_calls <= 60, (tried, outcome.api_calls)


def test_a_provider_answering_5xx_to_everything_is_not_hammered(tmp_path):
    """Every create answered 500: from the third in a row creates pause, longer each time,
    so a few seconds of it cost a few creates, not one per pending job."""
    manifest = write_manifest(tmp_path, 300)
    with simulator(error_rate=1.0) as sim:
        proc = spawn_run(manifest, tmp_path / "out", sim.base_url, "-c", "4")
        time.sleep(4.0)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
        creates = sim.stats()["creates_received"]
    assert proc.returncode == 130, err.decode()
    assert creates <= 40, creates
