"""Values nobody should meet, from a provider, a file, a server or the command line, end in a
message naming what is wrong and where, with the documented exit code: never a traceback, a
hang, or a disk filled."""

from __future__ import annotations

import contextlib
import os
import shutil
import socketserver
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx
import pytest
import yaml

from batchgen.download import download
from batchgen.errors import RetryableError
from tests.conftest import (
    read_index,
    resolve_unknown,
    run_cli,
    simulator,
    write_manifest,
)


def test_provider_timestamps_beyond_int64_are_not_stored_and_nothing_breaks(tmp_path):
    """updated_at of 10^300 ms in every answer: run, adopt and resume all end as usual, the
    timestamp left out of the index."""
    manifest = write_manifest(tmp_path, 2)
    out = tmp_path / "out"
    with simulator(updated_at_mode="overflow", reset_after_accept_rate=1.0) as sim:
        assert run_cli("run", manifest, "-o", out, base_url=sim.base_url) == 1
        sim.reconfigure(reset_after_accept_rate=0.0)
        assert resolve_unknown(sim, manifest, out) == 2  # `adopt` of tasks stamped 10^300
        assert run_cli("run", manifest, "-o", out, base_url=sim.base_url) == 0
        assert run_cli("run", manifest, "-o", out, base_url=sim.base_url) == 0
    index = read_index(out / "batch")
    assert len(index) == 2 and {e["task_updated_at"] for e in index} == {None}


@contextlib.contextmanager
def unwritable(path: Path) -> Iterator[None]:
    """`path` made read-only for this process (immutable for root, who ignores modes)."""
    immutable = os.geteuid() == 0
    if immutable:
        if not shutil.which("chattr"):
            pytest.skip("needs chattr to make a file read-only for root")
        done = subprocess.run(["chattr", "+i", str(path)], capture_output=True, check=False)
        if done.returncode:
            pytest.skip(f"chattr +i is not allowed here: {done.stderr.decode().strip()}")
    else:
        path.chmod(0o444)
    try:
        yield
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(path)], check=True)
        else:
            path.chmod(0o644)


def test_a_read_only_state_is_named_not_a_traceback(tmp_path, sim, capsys):
    """`run` on a state file that cannot be written: exit 2 naming the state."""
    manifest = write_manifest(tmp_path, 1)
    out = tmp_path / "out"
    assert run_cli("run", manifest, "-o", out, base_url=sim.base_url) == 0
    capsys.readouterr()
    state = out / "batch" / "state.sqlite"
    with unwritable(state):
        code = run_cli("run", manifest, "-o", out, base_url=sim.base_url)
    err = capsys.readouterr().err
    assert code == 2 and str(state) in err and "Traceback" not in err


def test_a_task_id_of_a_hundred_thousand_characters_is_refused_by_adopt(tmp_path, sim, capsys):
    """`adopt --task` of 100,000 characters: exit 2 saying how long a task id may be."""
    manifest = write_manifest(tmp_path, 1)
    adopt = ("adopt", manifest, "-o", tmp_path / "out", "--job", "clip-000")
    code = run_cli(*adopt, "--task", "7" * 100_000, base_url=sim.base_url)
    err = capsys.readouterr().err
    assert code == 2 and "at most 256 characters" in err and len(err) < 1000
    assert sim.stats()["requests_total"] == 0


@pytest.mark.parametrize("url", ["http://a b", "http://[::1", "http://host:99999", "https://"])
def test_a_base_url_that_cannot_be_one_is_refused_before_anything(tmp_path, capsys, url):
    """A --base-url with a blank, a broken host or port, or no host: exit 2 naming it."""
    manifest = write_manifest(tmp_path, 1)
    code = run_cli("run", manifest, "-o", tmp_path / "out", "--base-url", url, "--api-key", "k")
    err = capsys.readouterr().err
    assert code == 2 and "--base-url" in err and "Traceback" not in err


def trickle_handler(stop: threading.Event) -> type[socketserver.BaseRequestHandler]:
    """A handler answering 200 with a long body, then one byte every 0.2 s until `stop`."""

    class Trickle(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            self.request.recv(65536)
            with contextlib.suppress(OSError):
                self.request.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
                while not stop.wait(0.2):
                    self.request.sendall(b"x")

    return Trickle


@pytest.fixture
def trickling_url() -> Iterator[str]:
    stop = threading.Event()
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), trickle_handler(stop))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/slow.png"
    finally:
        stop.set()
        server.shutdown()
        server.server_close()


def test_an_image_url_that_trickles_is_given_up_at_its_deadline(tmp_path, capsys, trickling_url):
    """`validate --inline-urls` of an image served a byte at a time ends at --url-timeout with
    a problem naming the URL (exit 2)."""
    path = tmp_path / "m.yaml"
    rows = [{"id": "r", "image": trickling_url, "prompt": "p", "model_name": "kling-v2-master"}]
    path.write_text(yaml.safe_dump({"rows": rows}))
    code = run_cli("validate", path, "--inline-urls", "--url-timeout", "1")
    out = capsys.readouterr().out
    assert code == 2 and f"could not download {trickling_url}: not complete after 1 s" in out


@pytest.mark.parametrize("special", ["/dev/zero", "fifo", "folder-like"])
@pytest.mark.parametrize("command", ["plan", "run"])
def test_a_price_file_that_is_no_file_is_refused_at_once(tmp_path, capsys, special, command):
    """`--prices /dev/zero`, a FIFO, or a file of megabytes: exit 2 saying why, no wait."""
    manifest = write_manifest(tmp_path, 1)
    prices = Path(special)
    if special == "fifo":
        prices = tmp_path / "prices.json"
        os.mkfifo(prices)
    elif special == "folder-like":
        prices = tmp_path / "prices.json"
        prices.write_bytes(b" " * (2 << 20))
    extra = ("-o", tmp_path / "out", "--api-key", "k") if command == "run" else ()
    assert run_cli(command, manifest, "--prices", prices, *extra) == 2
    err = capsys.readouterr().err
    assert f"cannot read price file {prices}" in err and "Traceback" not in err


def test_a_video_larger_than_the_cap_is_refused_and_nothing_of_it_kept(tmp_path, capsys):
    """Videos of 3 MB under --max-video-mb 1: not kept (no .part, no file past 1 MB), each
    fetched once (any URL of the task serves as much: no retry in the run), the jobs left to
    download, exit 1 saying why; without the cap the same command finishes, each job paid
    once."""
    manifest = write_manifest(tmp_path, 2)
    out = tmp_path / "out"
    with simulator(video_bytes=3_000_000) as sim:
        cap = ("--max-video-mb", "1")
        assert run_cli("run", manifest, "-o", out, *cap, base_url=sim.base_url) == 1
        err = capsys.readouterr().err
        files = list((out / "batch").rglob("*"))
        assert sim.stats()["downloads_started"] == 2
        assert run_cli("run", manifest, "-o", out, base_url=sim.base_url) == 0
        accepted = sim.stats()["submissions_per_external_id"]
    assert "more than 1 MB" in err and "Traceback" not in err
    assert all(f.stat().st_size <= 1 << 20 for f in files if f.is_file())
    assert not [f for f in files if f.suffix in (".part", ".rejected", ".mp4")]
    assert set(accepted.values()) == {1} and len(read_index(out / "batch")) == 2


def test_a_video_that_trickles_is_given_up_at_its_deadline(tmp_path, trickling_url):
    """A video URL sending a byte at a time: the download gives up at its deadline, saying
    so, and leaves no part behind (the run then tries again later, like any short read)."""
    dest = tmp_path / "videos" / "clip.mp4"

    async def fetch() -> None:
        async with httpx.AsyncClient() as http:
            await download(http, trickling_url, dest, deadline=1.0)

    with pytest.raises(RetryableError, match=r"not complete after 1 s"):
        anyio.run(fetch)
    assert list(dest.parent.iterdir()) == []
