"""Every downloaded video is probed and checked: the simulator's faulty videos are flagged with
the right finding, its good ones with none, and a page that is no video never becomes done."""

from __future__ import annotations

import base64
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from PIL import Image
from pydantic import SecretStr

import batchgen
from batchgen.gallery import build_gallery
from batchgen.jobs import make_job
from batchgen.manifest.images import digest_ref
from batchgen.pipeline import provider_clients, run_async
from batchgen.runner import RunConfig, Runner
from batchgen.runner.policy import RetryPolicy
from batchgen.settings import Settings
from batchgen.state.store import Store
from batchgen.status import JobStatus
from tests.conftest import read_index, run_cli, simulator, write_manifest
from tests.spec.test_video_checks import running

CODE_OF_DEFECT = {
    "black": "black_frames",
    "frozen": "frozen",
    "short": "duration_off",
    "undecodable": "undecodable",
    "aspect": "aspect_off",
    "mute": "no_audio",
}
FAST_RETRY = RetryPolicy(base_delay=0.01, max_delay=0.05)


def codes(entry: dict[str, Any]) -> list[str]:
    return [finding["code"] for finding in entry["qa"]]


def defect_of(sim: Any, task_id: str) -> str | None:
    """The defect the simulator gave a task's video (None for a good one)."""
    video = sim.app.account.book.tasks[task_id].video
    return None if video.defect is None else str(video.defect)


# -- the simulator's videos, through a whole run -------------------------------------------------


def test_each_injected_defect_is_flagged_with_its_finding_and_good_videos_with_none(tmp_path):
    """Black, frozen, short, undecodable and misshapen videos each get their finding; the rest
    get an empty list, and every video stays done on disk with its probe in index and sidecar."""
    manifest = write_manifest(tmp_path, 30)
    rates = {f"{d}_rate": 0.12 for d in ("black", "frozen", "short", "undecodable", "aspect")}
    with simulator(**rates) as sim:
        assert run_cli("run", manifest, "-o", tmp_path / "out", base_url=sim.base_url) == 0
        run_dir = tmp_path / "out" / "batch"
        index = read_index(run_dir)
        defects = {e["row_id"]: defect_of(sim, e["task_id"]) for e in index}
    assert len(index) == 30 and set(defects.values()) == {None, *CODE_OF_DEFECT} - {"mute"}
    for entry in index:
        defect = defects[entry["row_id"]]
        assert codes(entry) == ([CODE_OF_DEFECT[defect]] if defect else []), entry["row_id"]
        assert (run_dir / entry["video"]).is_file()
        sidecar = json.loads((run_dir / entry["video"]).with_suffix(".json").read_text())
        assert sidecar["probe"] == entry["probe"] and sidecar["qa"] == entry["qa"]


def test_status_and_report_show_what_the_checks_found(tmp_path, capsys):
    """`status` counts the findings and lists flagged rows with why; `report` counts them."""
    manifest = write_manifest(tmp_path, 6)
    with simulator(frozen_rate=0.5) as sim:
        assert run_cli("run", manifest, "-o", tmp_path / "out", base_url=sim.base_url) == 0
        frozen = sorted(e["row_id"] for e in read_index(tmp_path / "out" / "batch") if e["qa"])
    capsys.readouterr()
    assert run_cli("status", tmp_path / "out" / "batch") == 0
    status = capsys.readouterr().out
    assert f"QA: 6 videos checked, {len(frozen)} flagged (frozen {len(frozen)})" in status
    assert all(f"flagged {row} (" in status for row in frozen) and frozen
    assert "frozen: next to no change between frames" in status
    assert run_cli("report", tmp_path / "out" / "batch", "--json") == 0
    qa = json.loads(capsys.readouterr().out)["qa"]
    findings = {"frozen": len(frozen)}
    assert qa == {"checked": 6, "flagged": len(frozen), "findings": findings, "unchecked": 0}


def test_a_good_video_is_probed_as_what_was_asked(tmp_path, sim):
    """The probe of a clean video names its container, codec, size, rate, frames and length."""
    manifest = write_manifest(tmp_path, 1)
    assert run_cli("run", manifest, "-o", tmp_path / "out", base_url=sim.base_url) == 0
    (entry,) = read_index(tmp_path / "out" / "batch")
    probe = entry["probe"]
    assert (probe["container"], probe["codec"]) == ("mp4", "h264")
    assert (probe["width"], probe["height"]) == (256, 170)  # the input is 480 x 320
    assert probe["duration_s"] == 5.0 and probe["frames"] == probe["decoded"] > 1
    assert probe["fps"] > 0 and probe["has_audio"] is False
    assert entry["qa"] == []


# -- --qa keyframes and --qa off -------------------------------------------------------------------


def test_qa_keyframes_checks_the_facts_and_the_keyframe_of_each_video(tmp_path):
    """The simulator's clips have one keyframe: it alone is decoded. Black, short and misshapen
    videos are still flagged; still ones are not (one sample), as --help says; the probe in
    index and sidecar says what was decoded."""
    manifest = write_manifest(tmp_path, 24)
    rates = {f"{d}_rate": 0.15 for d in ("black", "frozen", "short", "aspect")}
    with simulator(**rates) as sim:
        out = tmp_path / "out"
        code = run_cli("run", manifest, "-o", out, "--qa", "keyframes", base_url=sim.base_url)
        assert code == 0
        index = read_index(out / "batch")
        defects = {e["row_id"]: defect_of(sim, e["task_id"]) for e in index}
    assert len(index) == 24 and {"black", "frozen", "short", "aspect"} <= set(defects.values())
    for entry in index:
        defect = defects[entry["row_id"]]
        expected = [] if defect in (None, "frozen") else [CODE_OF_DEFECT[defect]]
        assert codes(entry) == expected, entry["row_id"]
        probe = entry["probe"]
        assert probe["decode"] == "keyframes" and probe["decoded"] == 1 < probe["frames"]
        sidecar = json.loads((out / "batch" / entry["video"]).with_suffix(".json").read_text())
        assert sidecar["probe"] == probe
    page = build_gallery(out / "batch").page.read_text()
    clean = sum(defect in (None, "frozen") for defect in defects.values())
    assert page.count("no findings (keyframes checked)") == clean


def test_qa_off_leaves_every_video_unchecked_and_done(tmp_path, capsys):
    """No probe, no findings, not even for a black video: index and sidecars say unchecked
    (null), `report` and `status` count them; every video is done and on disk."""
    manifest = write_manifest(tmp_path, 5)
    with simulator(black_rate=0.5) as sim:
        out = tmp_path / "out"
        assert run_cli("run", manifest, "-o", out, "--qa", "off", base_url=sim.base_url) == 0
        index = read_index(out / "batch")
        assert any(defect_of(sim, e["task_id"]) == "black" for e in index)
    assert len(index) == 5
    for entry in index:
        assert (out / "batch" / entry["video"]).is_file()
        assert entry["probe"] is None and entry["qa"] is None
        sidecar = json.loads((out / "batch" / entry["video"]).with_suffix(".json").read_text())
        assert sidecar["probe"] is None and sidecar["qa"] is None
    capsys.readouterr()
    assert run_cli("report", out / "batch", "--json") == 0
    qa = json.loads(capsys.readouterr().out)["qa"]
    assert qa == {"checked": 0, "flagged": 0, "findings": {}, "unchecked": 5}
    assert run_cli("status", out / "batch") == 0
    assert "QA: 0 videos checked, 0 flagged; 5 done videos not checked" in capsys.readouterr().out


def test_verify_qa_full_checks_again_the_videos_keyframes_alone_checked(tmp_path, capsys, database):
    """After a --qa keyframes run, `verify --qa full` decodes each video's I/P frames where it
    is (no download, no API call): the still clips keyframes could not call frozen are
    flagged, in state, index and sidecars. Then no video is owed a check of either depth. On
    both databases."""
    manifest = write_manifest(tmp_path, 12)
    out = tmp_path / "out"
    with simulator(frozen_rate=0.3, black_rate=0.15) as sim:
        code = run_cli("run", manifest, "-o", out, "--qa", "keyframes", base_url=sim.base_url)
        assert code == 0
        before = read_index(out / "batch")
        defects = {e["row_id"]: defect_of(sim, e["task_id"]) for e in before}
        calls = sim.stats()["requests_total"]
        videos = sorted((out / "batch" / "videos").glob("*.mp4"))
        inodes = [video.stat().st_ino for video in videos]
        capsys.readouterr()
        assert run_cli("verify", out / "batch", "--qa", "full") == 0
        said = capsys.readouterr().err
        assert sim.stats()["requests_total"] == calls
    frozen = sum(defect == "frozen" for defect in defects.values())
    assert frozen and "black" in defects.values()
    assert not any(codes(entry) == ["frozen"] for entry in before)
    flagged = sum(defect is not None for defect in defects.values())
    assert (
        f"checked 12 done videos where they are, decoding their keyframes and P-frames: "
        f"{flagged} flagged" in said
    )
    assert [video.stat().st_ino for video in videos] == inodes and len(videos) == 12
    index = read_index(out / "batch")
    for entry in index:
        defect = defects[entry["row_id"]]
        assert codes(entry) == ([] if defect is None else [CODE_OF_DEFECT[defect]])
        assert entry["probe"]["decode"] == "I/P"
        sidecar = json.loads((out / "batch" / entry["video"]).with_suffix(".json").read_text())
        assert sidecar["probe"] == entry["probe"] and sidecar["qa"] == entry["qa"]
    for depth in ("full", "keyframes"):
        assert run_cli("verify", out / "batch", "--qa", depth) == 0
        assert f"no done video is owed a {depth} check" in capsys.readouterr().err
    assert run_cli("report", out / "batch", "--json") == 0
    qa = json.loads(capsys.readouterr().out)["qa"]
    assert qa["checked"] == 12 and qa["flagged"] == flagged and qa["findings"]["frozen"] == frozen


def test_a_run_that_checks_checks_the_done_videos_a_run_with_qa_off_left(tmp_path, capsys):
    """Run again without --qa off: the videos already there are checked where they are (no
    download, no create), black ones flagged, in state, index and sidecars; once."""
    manifest = write_manifest(tmp_path, 6)
    out = tmp_path / "out"
    with simulator(black_rate=0.5) as sim:
        assert run_cli("run", manifest, "-o", out, "--qa", "off", base_url=sim.base_url) == 0
        assert run_cli("run", manifest, "-o", out, "--qa", "off", base_url=sim.base_url) == 0
        assert all(entry["qa"] is None for entry in read_index(out / "batch"))
        calls = sim.stats()["requests_total"]
        videos = sorted((out / "batch" / "videos").glob("*.mp4"))
        inodes = [video.stat().st_ino for video in videos]
        capsys.readouterr()
        assert run_cli("run", manifest, "-o", out, base_url=sim.base_url) == 0
        said = capsys.readouterr().err
        assert "6 done videos have no check: checking them where they are, beside" in said
        assert said.index("have no check") < said.index("checked 6 done videos no check had")
        assert sim.stats()["requests_total"] == calls
        assert [video.stat().st_ino for video in videos] == inodes and len(videos) == 6
        index = read_index(out / "batch")
        black = {e["row_id"] for e in index if defect_of(sim, e["task_id"]) == "black"}
        assert black and len(black) < 6
        assert run_cli("run", manifest, "-o", out, base_url=sim.base_url) == 0
        assert "no check had looked at" not in capsys.readouterr().err
    for entry in index:
        assert codes(entry) == (["black_frames"] if entry["row_id"] in black else [])
        assert entry["probe"]["decode"] == "I/P"
        sidecar = json.loads((out / "batch" / entry["video"]).with_suffix(".json").read_text())
        assert sidecar["probe"] == entry["probe"] and sidecar["qa"] == entry["qa"]
        assert sidecar["video"] == entry["video"] and sidecar["sha256"] == entry["sha256"]


# -- sound: on, which manifests cannot say yet: jobs straight into a state ------------------------


def png(size: tuple[int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (120, 60, 30)).save(buffer, "PNG")
    return buffer.getvalue()


def run_requests(run_dir: Path, base_url: str, requests: list[dict[str, Any]]) -> None:
    """Run these requests (their `image` as PNG bytes) with the real runner."""
    images = {digest_ref(r["image"]): r["image"] for r in requests}
    specs = [
        make_job({**r, "image": digest_ref(r["image"])}, f"r{i}") for i, r in enumerate(requests)
    ]
    settings = Settings(base_url=base_url, api_key=SecretStr("sk-test"), output=run_dir.parent)

    def payload(ref: str) -> str:
        return base64.b64encode(images[ref]).decode()

    async def run(store: Store) -> None:
        async with provider_clients(settings) as (client, downloads):
            config = RunConfig(handle_signals=False, retry=FAST_RETRY)
            await Runner(store, client, downloads, payload, run_dir, config).run()

    with Store.open(run_dir / "state.sqlite") as store:
        store.add_jobs(specs)
        store.inputs.record_images((ref, 480, 320, None) for ref in images)
        run_async(run, store)


def test_sound_on_without_an_audio_track_is_flagged_no_audio(tmp_path):
    """With `sound: on`, a video without audio gets `no_audio`; one with audio gets nothing."""
    request = {"model_name": "kling-v2-6", "mode": "pro", "image": png((480, 320)), "sound": "on"}
    requests = [{**request, "prompt": f"waves, take {i}"} for i in range(8)]
    with simulator(mute_rate=0.5) as sim:
        run_requests(tmp_path / "run", sim.base_url, requests)
        index = read_index(tmp_path / "run")
        defects = {e["row_id"]: defect_of(sim, e["task_id"]) for e in index}
    assert set(defects.values()) == {None, "mute"}
    for entry in index:
        muted = defects[entry["row_id"]] == "mute"
        assert codes(entry) == (["no_audio"] if muted else [])
        assert entry["probe"]["has_audio"] is not muted


# -- a page that is no video -----------------------------------------------------------------------


def test_an_html_page_served_with_200_never_becomes_done(tmp_path):
    """The page is kept as .rejected, the job stays downloading with the reason, and the next
    run, once the URL serves the video, downloads it and finishes."""
    manifest = write_manifest(tmp_path, 2)
    settings = Settings(
        output=tmp_path / "out", api_key=SecretStr("sk-test"), progress="off", concurrency=2
    )
    with simulator(html_rate=1.0) as sim:
        settings = settings.model_copy(update={"base_url": sim.base_url})
        first = batchgen.run(manifest, settings, retry=FAST_RETRY, download_attempts=2)
        run_dir = tmp_path / "out" / "batch"
        with Store.open(run_dir / "state.sqlite") as store:
            jobs = list(store.checks.jobs_with_checks())
        kept = [(run_dir / "videos" / f"{job.row_id}.mp4.rejected").read_bytes() for job, _ in jobs]
        sim.reconfigure(html_rate=0.0)
        second = batchgen.run(manifest, settings, retry=FAST_RETRY)
    assert first.counts[JobStatus.DOWNLOADING] == 2 and first.exit_code == 1
    for job, check in jobs:
        assert job.status == JobStatus.DOWNLOADING and check is None
        assert job.error_kind == "not_a_video"
        assert "an HTML page, not a video" in (job.last_error or "")
    assert all(page.startswith(b"<!DOCTYPE html>") for page in kept)
    assert second.exit_code == 0
    assert [codes(entry) for entry in read_index(run_dir)] == [[], []]
    assert not list(run_dir.glob("videos/*.rejected"))  # the video replaced what it explained


# -- the rules, on probes ----------------------------------------------------------------------


# -- the worker processes' lives -------------------------------------------------------------------

CHECKING_PARENT = """
import sys, anyio
from pathlib import Path
from batchgen.media import CheckWorkers, Expected
from tests.spec.test_video_checks import pid_of_checker

async def main():
    async with CheckWorkers(1, pid_of_checker) as workers:
        for line in sys.stdin:
            print((await workers.check(Path("v.mp4"), Expected())).probe.codec, flush=True)

anyio.run(main)
"""


UNGUARDED_SCRIPT = """
import anyio
from pathlib import Path
from batchgen.media import CheckWorkers, Expected
from tests.spec.test_video_checks import pid_of_checker

print("the script ran", flush=True)

async def main():
    async with CheckWorkers(2, pid_of_checker) as workers:
        await workers.check(Path("v.mp4"), Expected())
        print("checked", flush=True)

anyio.run(main)
"""


def test_a_script_without_a_main_guard_runs_once_however_many_workers_it_starts(tmp_path):
    """The workers do not import the parent's script: its top level (a `batchgen.run()` call)
    runs once, in the parent."""
    script = tmp_path / "my_run.py"
    script.write_text(UNGUARDED_SCRIPT)
    done = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    assert done.stdout.splitlines() == ["the script ran", "checked"], done.stderr


def test_a_worker_outlives_a_ctrl_c_but_not_its_parent_killed():
    """SIGINT to the worker (a Ctrl-C reaches the whole group) leaves it checking; SIGKILL to
    its parent ends it too, with no pool shutdown."""
    with subprocess.Popen(
        [sys.executable, "-c", CHECKING_PARENT],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    ) as parent:
        assert parent.stdin is not None and parent.stdout is not None
        pids = []
        for _ in range(2):
            parent.stdin.write("check\n")
            parent.stdin.flush()
            pids.append(int(parent.stdout.readline()))
            os.kill(pids[-1], signal.SIGINT)
        parent.kill()
    deadline = time.monotonic() + 30
    while running(pids[0]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert pids[0] == pids[1] != parent.pid and not running(pids[0])


KILLED_AS_IT_SPAWNS = """
import os, signal, anyio
from multiprocessing import util
from pathlib import Path
from batchgen.media import CheckWorkers, Expected
from tests.spec.test_video_checks import pid_of_checker

spawn = util.spawnv_passfds

def spawn_then_die(path, args, passfds):
    pid = spawn(path, args, passfds)
    if any(b"spawn_main" in os.fsencode(arg) for arg in args):  # a worker, not the tracker
        print(pid, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)  # the worst moment: the worker just started
    return pid

util.spawnv_passfds = spawn_then_die

async def main():
    async with CheckWorkers(1, pid_of_checker) as workers:
        await workers.check(Path("v.mp4"), Expected())

anyio.run(main)
"""


def test_a_parent_killed_as_it_starts_a_worker_leaves_nothing_on_the_terminal():
    """SIGKILL just after a worker process is started (the moment the standard library has not
    yet told it what to run): the worker still ends, and neither it nor the resource tracker
    prints a word: no traceback, no warning about the pool's semaphores."""
    done = subprocess.run(
        [sys.executable, "-c", KILLED_AS_IT_SPAWNS],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    assert done.returncode == -signal.SIGKILL
    (worker,) = (int(line) for line in done.stdout.split())
    deadline = time.monotonic() + 30
    while running(worker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not running(worker)
    assert done.stderr == ""
