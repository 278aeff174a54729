"""Runs with callbacks: the provider's POSTs end tasks at once, forged or unsigned ones are
refused and counted, polling still finishes the run when callbacks never come, and nothing
a network sends to the listener (malformed requests, floods of idle connections) can end it."""

from __future__ import annotations

import contextlib
import json
import os
import resource
import socket
import subprocess
import sys
import threading
import time

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


def test_a_signed_success_frees_its_slot_and_queues_its_download_without_a_query(tmp_path):
    """Queries answer "not found" for ten minutes (a lagging relay: polling alone would fail
    every job after the run's 60 s grace); signed callbacks alone end every job, their slots
    refilled and their videos downloaded."""
    manifest = write_manifest(tmp_path, 6)
    with simulator(slots=2, callback_secret="s3cret", not_found_grace=600.0) as sim:
        chosen = settings(tmp_path, sim.base_url, "s3cret").model_copy(update={"concurrency": 2})
        outcome = batchgen.run(manifest, chosen)
    assert outcome.exit_code == 0 and len(read_index(tmp_path / "out" / "batch")) == 6
    assert outcome.callbacks["acted on: signed success"] == 6


def test_an_unsigned_callback_is_confirmed_by_a_query_before_its_job_ends(tmp_path):
    """Unsigned callbacks (CometAPI's) only move a query forward: every task was asked
    about before its job was done."""
    manifest = write_manifest(tmp_path, 6)
    with simulator(slots=2) as sim:
        chosen = settings(tmp_path, sim.base_url).model_copy(update={"concurrency": 2})
        outcome = batchgen.run(manifest, chosen)
        stats = sim.stats(with_tasks=True)
    assert outcome.exit_code == 0 and len(read_index(tmp_path / "out" / "batch")) == 6
    assert outcome.callbacks["acted on: confirmed by a query"] > 0
    assert "acted on: signed success" not in outcome.callbacks
    assert all(stats["queries_by_task"].get(task, 0) >= 1 for task in stats["task_spans"])


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


def request(head: str, body: bytes = b"") -> bytes:
    return head.replace("\n", "\r\n").encode("latin-1") + b"\r\n" + body


CALLBACK = json.dumps({"task_id": "no-such-task", "task_status": "succeed"}).encode()
VALID = request(f"POST /kling/done HTTP/1.1\nHost: x\nContent-Length: {len(CALLBACK)}\n", CALLBACK)
MALFORMED = {
    "a client closing mid-body": request(
        "POST /kling/done HTTP/1.1\nHost: x\nContent-Length: 100\n", b'{"task'
    ),
    "a TLS hello (someone using https)": bytes.fromhex("16030100a5010000a10303") + bytes(96),
    "no Host header": request("POST /kling/done HTTP/1.1\nContent-Length: 2\n", b"{}"),
    "a negative Content-Length": request(
        "POST /kling/done HTTP/1.1\nHost: x\nContent-Length: -1\n", b"{}"
    ),
    "a doubled Content-Length": request(
        "POST /kling/done HTTP/1.1\nHost: x\nContent-Length: 2\nContent-Length: 3\n", b"{}"
    ),
    "a bad chunk": request(
        "POST /kling/done HTTP/1.1\nHost: x\nTransfer-Encoding: chunked\n", b"zz\r\n{}\r\n0\r\n\r\n"
    ),
    "a non-ASCII header name": b"POST /kling/done HTTP/1.1\r\nHost: x\r\nX-\xff: 1\r\n\r\n",
    "headers that never end": b"POST /kling/done HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 70_000,
    "a body past the limit": request(
        "POST /kling/done HTTP/1.1\nHost: x\nContent-Length: 2000000\n", b"{" * 2_000_000
    ),
    "nothing at all": b"",
}


def exchange(port: int, data: bytes) -> bytes:
    """Send `data`, close the sending side, and read whatever comes back."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
        with contextlib.suppress(OSError):
            conn.sendall(data)
            conn.shutdown(socket.SHUT_WR)
        answer = b""
        with contextlib.suppress(OSError):
            while chunk := conn.recv(65536):
                answer += chunk
    return answer


def wait_for_listener(port: int) -> None:
    while True:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return
        time.sleep(0.02)


def test_malformed_requests_are_refused_and_the_run_finishes(tmp_path):
    """Each malformed request (cut-off body, TLS, no Host, bad lengths, a bad chunk, a
    non-ASCII header, endless headers, a body too large) is answered 4xx or dropped; a valid
    callback is served after them, and the run ends with every video."""
    manifest = write_manifest(tmp_path, 8)
    answers: dict[str, bytes] = {}
    with simulator(latency=(1.0, 2.0), slots=4) as sim:
        chosen = settings(tmp_path, sim.base_url)
        port = int(str(chosen.listen).rpartition(":")[2])

        def attack() -> None:
            wait_for_listener(port)
            for name, data in MALFORMED.items():
                answers[name] = exchange(port, data)
            answers["valid"] = exchange(port, VALID)

        attacker = threading.Thread(target=attack)
        attacker.start()
        outcome = batchgen.run(manifest, chosen)
        attacker.join()
        stats = sim.stats()
    assert outcome.exit_code == 0 and len(read_index(tmp_path / "out" / "batch")) == 8
    for name in MALFORMED:
        assert answers[name] == b"" or answers[name].startswith(b"HTTP/1.1 4"), name
    assert (
        answers["valid"].startswith(b"HTTP/1.1 404") and b"no task no-such-task" in answers["valid"]
    )
    assert outcome.callbacks["accepted"] == stats["callbacks_sent"] > 0
    assert outcome.callbacks["refused: malformed request"] >= 6


def no_more_files(limit: int) -> None:
    """In the child: at most `limit` open files."""
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))


@pytest.mark.slow
def test_a_flood_of_idle_connections_cannot_end_or_deafen_the_run(tmp_path):
    """1,500 connections that send nothing, against a run allowed 256 open files: the run
    keeps serving (a valid callback is answered during the flood) and ends with every video."""
    manifest = write_manifest(tmp_path, 6)
    port = free_port()
    with simulator(latency=(2.0, 3.0), slots=4) as sim:
        command = [
            sys.executable,
            "-m",
            "batchgen",
            "run",
            str(manifest),
            "-o",
            str(tmp_path / "out"),
        ]
        command += ["--base-url", sim.base_url, "--no-progress"]
        command += ["--callback-url", f"http://127.0.0.1:{port}/kling/done"]
        command += ["--listen", f"127.0.0.1:{port}"]
        env = {**os.environ, "COMETAPI_KEY": "sk-test"}
        proc = subprocess.Popen(
            command, env=env, stderr=subprocess.PIPE, preexec_fn=lambda: no_more_files(256)
        )
        wait_for_listener(port)
        idle = []
        for _ in range(1500):
            with contextlib.suppress(OSError):
                idle.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        served = exchange(port, VALID)
        for conn in idle:
            conn.close()
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()
    assert served.startswith(b"HTTP/1.1 404") and b"Traceback" not in err
    assert len(read_index(tmp_path / "out" / "batch")) == 6
