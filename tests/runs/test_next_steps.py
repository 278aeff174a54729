"""Every suggested next command keeps the `-o`, `--provider` and `--base-url` the user gave,
and works when pasted; retry and repair say what they did and did not do."""

from __future__ import annotations

import json
import re
import shlex

from tests.conftest import run_cli, simulator, write_manifest
from tests.runs.test_resilience import leave_submitting

SUGGESTED = re.compile(r"`(batchgen [^`]+)`")


def suggested(text: str, command: str) -> list[str]:
    """The arguments of the first `batchgen COMMAND ...` suggested in `text`."""
    for found in SUGGESTED.findall(text):
        words = shlex.split(found)
        if words[1] == command:
            return words[1:]
    raise AssertionError(f"no `batchgen {command}` suggested in:\n{text}")


def test_a_run_with_failures_suggests_a_status_command_that_works_pasted(tmp_path, capsys):
    """The summary of a run with failures names `batchgen status` for the run, with its -o."""
    manifest = write_manifest(tmp_path, 2)
    out = tmp_path / "my runs"
    with simulator(fail_rate=1.0) as sim:
        assert run_cli("run", manifest, "-o", out, base_url=sim.base_url) == 1
    status = suggested(capsys.readouterr().err, "status")
    assert status == ["status", str(manifest), "-o", str(out)]
    assert run_cli(*status) == 0
    assert "failed clip-000" in capsys.readouterr().out


def test_unknown_job_advice_keeps_the_output_folder_and_works_pasted(tmp_path, capsys):
    """An unknown job's advice (run summary, `status`, `status --json`) names the run's -o; the
    suggested retry of that job, pasted, puts it back for a run that is named with it too."""
    manifest = write_manifest(tmp_path, 2)
    out = tmp_path / "out"
    leave_submitting(manifest, out)
    with simulator() as sim:
        assert run_cli("run", manifest, "-o", out, base_url=sim.base_url) == 1
        err = capsys.readouterr().err
        adopt = suggested(err, "adopt")
        assert adopt[:4] == ["adopt", str(manifest), "-o", str(out)]
        assert "--base-url" in adopt and "--task" in adopt
        assert run_cli("status", out / "batch") == 0
        assert suggested(capsys.readouterr().out, "retry")[:4] == [
            "retry",
            str(manifest),
            "-o",
            str(out),
        ]
        assert run_cli("status", out / "batch", "--json") == 0
        (unknown,) = json.loads(capsys.readouterr().out)["unknown"]
        retry = suggested(unknown["what_to_do"], "retry")
        assert retry == ["retry", str(manifest), "-o", str(out), "--job", unknown["row_id"]]
        assert run_cli(*retry, "--yes") == 0
        again = suggested(capsys.readouterr().out, "run")
        assert again == ["run", str(manifest), "-o", str(out), "--base-url", sim.base_url]
        assert run_cli(*again, "--api-key", "sk-test", "--no-progress") == 0


def test_suggestions_after_a_kling_run_name_the_provider(tmp_path, capsys):
    """On Kling's own API, `reconcile` and `retry` suggest a run with `--provider kling`, which
    works when pasted."""
    manifest = write_manifest(tmp_path, 2)
    out = tmp_path / "out"
    with simulator(profile="kling") as sim:
        assert run_cli("run", manifest, "-o", out, base_url=sim.base_url, profile="kling") == 0
        reconcile = ("reconcile", manifest, "-o", out)
        assert run_cli(*reconcile, base_url=sim.base_url, profile="kling") == 0
        again = suggested(capsys.readouterr().out, "run")
        assert again[:6] == ["run", str(manifest), "-o", str(out), "--provider", "kling"]
        assert run_cli(*again, "--access-key", "sim-access", "--secret-key", "sim-secret") == 0
        assert sim.stats()["creates_received"] == 2
    assert run_cli("retry", out / "batch", "--failed") == 0
    again = suggested(capsys.readouterr().out, "run")
    named = ["--provider", "kling", "--base-url", sim.base_url]
    assert again == ["run", str(manifest), "-o", str(out), *named]


def test_retrying_a_done_job_says_why_nothing_happened(tmp_path, capsys):
    """`retry --job` names each job it leaves as it is and why."""
    manifest = write_manifest(tmp_path, 2)
    with simulator() as sim:
        assert run_cli("run", manifest, base_url=sim.base_url) == 0
    capsys.readouterr()
    assert run_cli("retry", manifest, "--job", "clip-000", "--job", "clip-001") == 0
    out = capsys.readouterr().out
    assert "clip-000 is done: nothing to retry" in out
    assert "clip-001 is done: nothing to retry" in out
    assert "0 job(s) will be tried again" in out


def test_verify_repair_names_the_rows_it_downloaded_again(tmp_path, capsys):
    """`verify --repair` says which videos it fetched again, by row id."""
    manifest = write_manifest(tmp_path, 3)
    run_dir = tmp_path / "output" / "batch"
    with simulator() as sim:
        assert run_cli("run", manifest, base_url=sim.base_url) == 0
        (run_dir / "videos" / "clip-001.mp4").unlink()
        (run_dir / "videos" / "clip-002.mp4").write_bytes(b"not the video")
        capsys.readouterr()
        repair = ("--repair", "--base-url", sim.base_url, "--api-key", "sk-test")
        assert run_cli("verify", manifest, *repair) == 0
    assert "2 video(s) fetched again: clip-001, clip-002" in capsys.readouterr().err


def test_a_run_that_finds_a_video_gone_says_it_fetched_it_again(tmp_path, capsys):
    """A resumed run that downloads a missing video again says so in its summary."""
    manifest = write_manifest(tmp_path, 2)
    with simulator() as sim:
        assert run_cli("run", manifest, base_url=sim.base_url) == 0
        (tmp_path / "output" / "batch" / "videos" / "clip-000.mp4").unlink()
        capsys.readouterr()
        assert run_cli("run", manifest, base_url=sim.base_url) == 0
    assert "1 video(s) fetched again: clip-000" in capsys.readouterr().err
