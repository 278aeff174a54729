"""The key never leaks, whatever the provider echoes: messages, state and output have it
redacted; a key that cannot go into a header is refused before any request."""

from __future__ import annotations

import json
from typing import Any

from batchgen.simulator import running_app
from batchgen.simulator.asgi import Receive, Scope, Send, read_body, send_json
from tests.conftest import run_cli, write_manifest

KEY = "sk-echoed-back-by-a-careless-relay-0123456789"


class EchoingRelay:
    """Accepts creates, then fails every task with a reason that repeats the caller's
    Authorization header."""

    def __init__(self) -> None:
        self.requests = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        self.requests += 1
        auth = dict(scope["headers"]).get(b"authorization", b"").decode()
        if scope["method"] == "POST":
            task = self._task(f"t{self.requests}", "submitted", "")
            await read_body(receive)
            await send_json(send, 200, {"code": 0, "data": task})
        else:
            task_id = scope["path"].rsplit("/", 1)[-1]
            task = self._task(task_id, "failed", f"image refused for {auth}")
            await send_json(send, 200, {"code": 0, "data": task})

    def _task(self, task_id: str, status: str, message: str) -> dict[str, Any]:
        return {"task_id": task_id, "task_status": status, "task_status_msg": message}


def test_a_provider_echoing_the_key_never_gets_it_into_messages_state_or_output(tmp_path, capsys):
    """Failure reasons that repeat the Authorization header are stored and shown redacted."""
    manifest = write_manifest(tmp_path, 3)
    out = tmp_path / "out"
    with running_app(EchoingRelay()) as url:
        code = run_cli(
            "run", manifest, "-o", out, "--base-url", url, "--api-key", KEY, "--no-progress"
        )
    captured = capsys.readouterr()
    assert code == 1
    assert (
        KEY not in captured.out + captured.err
        and "***" in captured.err + (out / "batch" / "failed.jsonl").read_text()
    )
    for path in out.rglob("*"):
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), path
    failures = [
        json.loads(line) for line in (out / "batch" / "failed.jsonl").read_text().splitlines()
    ]
    assert all("Bearer ***" in entry["error"] for entry in failures)


def test_a_key_with_a_line_break_is_refused_before_any_request(tmp_path, capsys):
    """A key pasted with a newline: exit 2, the setting named, the key not printed."""
    manifest = write_manifest(tmp_path, 1)
    relay = EchoingRelay()
    with running_app(relay) as url:
        code = run_cli(
            "run", manifest, "-o", tmp_path / "out", "--base-url", url, "--api-key", KEY + "\n"
        )
    err = capsys.readouterr().err
    assert code == 2 and relay.requests == 0
    assert "COMETAPI_KEY" in err and KEY not in err
