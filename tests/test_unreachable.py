"""A provider that cannot be reached stops the run like an account error: exit 3, a message
naming the base URL and what failed, nothing marked failed, the same command resumes."""

from __future__ import annotations

import socket

from pydantic import SecretStr

import batchgen
from batchgen.settings import Settings
from batchgen.status import JobStatus
from tests.conftest import run_cli, simulator, write_manifest


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
