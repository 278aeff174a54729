"""Runs with callbacks: the provider's POSTs end tasks at once, forged or unsigned ones are
refused and counted, and polling still finishes the run when callbacks never come."""

from __future__ import annotations

import socket

import pytest
from pydantic import SecretStr

import batchgen
from batchgen.settings import Settings
from tests.conftest import read_index, simulator, write_manifest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def settings(tmp_path, base_url: str, secret: str | None = None) -> Settings:
    port = free_port()
    return Settings(
        output=tmp_path / "out",
        base_url=base_url,
        api_key=SecretStr("sk-test"),
        concurrency=4,
        callback_url=f"http://127.0.0.1:{port}/kling/done",
        listen=f"127.0.0.1:{port}",
        callback_secret=SecretStr(secret) if secret else None,
    )


def test_signed_callbacks_are_accepted_and_every_job_ends(tmp_path):
    """Each status change the provider posts is accepted; every job is done."""
    manifest = write_manifest(tmp_path, 8)
    with simulator(latency=(0.5, 1.0), slots=4, callback_secret="s3cret") as sim:
        outcome = batchgen.run(manifest, settings(tmp_path, sim.base_url, "s3cret"))
        stats = sim.stats()
    assert outcome.exit_code == 0 and len(read_index(tmp_path / "out" / "batch")) == 8
    assert stats["callbacks_sent"] > 0
    assert outcome.callbacks["accepted"] == stats["callbacks_sent"]
    assert not [key for key in outcome.callbacks if key.startswith("refused")]


def test_callbacks_with_a_bad_signature_are_refused_and_polling_finishes(tmp_path):
    """Signed with another secret: every callback refused (401) and counted; the run still
    ends with every video, found by polling."""
    manifest = write_manifest(tmp_path, 4)
    with simulator(latency=(0.3, 0.6), callback_secret="someone-else") as sim:
        outcome = batchgen.run(manifest, settings(tmp_path, sim.base_url, "s3cret"))
        stats = sim.stats()
    assert outcome.exit_code == 0
    assert outcome.callbacks.get("refused: bad signature", 0) == stats["callbacks_failed"] > 0
    assert outcome.callbacks.get("accepted", 0) == 0


def test_lost_callbacks_leave_polling_to_finish_the_run(tmp_path):
    """Callbacks that never come (all dropped): polling, the safety net, ends every job."""
    manifest = write_manifest(tmp_path, 4)
    with simulator(latency=(0.3, 0.6), callback_drop_rate=1.0) as sim:
        outcome = batchgen.run(manifest, settings(tmp_path, sim.base_url))
        stats = sim.stats()
    assert outcome.exit_code == 0 and stats["callbacks_dropped"] > 0
    assert outcome.callbacks.get("accepted", 0) == 0


def test_callbacks_need_a_listener_and_the_port_must_be_free(tmp_path):
    """--callback-url without --listen is refused; a busy port is named, nothing is sent."""
    manifest = write_manifest(tmp_path, 1)
    with pytest.raises(ValueError, match="--callback-url and --listen go together"):
        Settings(callback_url="http://127.0.0.1:1/cb")
    with socket.socket() as busy, simulator() as sim:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        chosen = settings(tmp_path, sim.base_url).model_copy(update={"listen": f"127.0.0.1:{port}"})
        with pytest.raises(batchgen.BatchgenError, match=f"127.0.0.1:{port}"):
            batchgen.run(manifest, chosen)
        assert sim.stats()["creates_received"] == 0
