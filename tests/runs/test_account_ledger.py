"""The account, not the folder: runs on one machine share one ledger of everything the account
was sent, and its slots. The same rows run into a second folder, from another working folder,
by a second run at the same time, or after a kill, are paid once; runs of one account never
hold more tasks than its cap together."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

from batchgen.state.store import Store
from tests.conftest import read_index, resolve_unknown, run_cli, simulator, write_manifest
from tests.runs.test_resilience import spawn_run


def paid_twice(sim) -> list[str]:
    paid = sim.stats()["submissions_per_external_id"]
    return sorted(ext for ext, n in paid.items() if n > 1)


def ledger_file() -> Path:
    return Path(os.environ["BATCHGEN_LEDGER"])


def test_the_same_rows_in_a_second_folder_are_reused_not_paid_again(tmp_path, capsys):
    """A manifest run into one folder, then into another from a different working folder:
    each task is created once at the provider, and the second folder ends with every video,
    verified, the same bytes (hard-linked), and $0 spent there."""
    manifest = write_manifest(tmp_path, 6)
    with simulator(latency=(0.1, 0.3), slots=4) as sim:
        assert run_cli("run", manifest, "-o", "output", base_url=sim.base_url) == 0
        elsewhere = tmp_path / "home"
        elsewhere.mkdir()
        os.chdir(elsewhere)
        capsys.readouterr()
        assert run_cli("run", manifest, "-o", "output", base_url=sim.base_url) == 0
        said = capsys.readouterr().err
        stats = sim.stats()
    assert stats["tasks_total"] == 6 and not paid_twice(sim)
    assert "the account ledger holds 6 of its jobs from other runs" in said
    assert str((elsewhere / "output" / "batch" / "state.sqlite").resolve()) in said
    first, second = tmp_path / "output" / "batch", elsewhere / "output" / "batch"
    entries = read_index(second)
    assert len(entries) == 6 and all(e["reused_from"] for e in entries)
    for entry in entries:
        copy, original = second / entry["video"], first / entry["video"]
        assert hashlib.sha256(copy.read_bytes()).hexdigest() == entry["sha256"]
        assert copy.stat().st_ino == original.stat().st_ino
    assert run_cli("verify", second) == 0
    capsys.readouterr()
    assert run_cli("report", second) == 0
    assert "$0.00 spent" in capsys.readouterr().out


def test_a_second_run_of_the_same_rows_at_the_same_time_follows_the_first(tmp_path):
    """Two runs of one manifest into two folders at once: every task is created once, and
    both folders end with every video."""
    manifest = write_manifest(tmp_path, 12)
    with simulator(latency=(0.5, 1.0), slots=8) as sim:
        procs = [spawn_run(manifest, tmp_path / name, sim.base_url) for name in ("a", "b")]
        ended = [(proc, proc.communicate(timeout=120)[1]) for proc in procs]
        for proc, err in ended:  # (all ended first: none left running on a failure)
            assert proc.returncode == 0, err.decode()
        assert sim.stats()["tasks_total"] == 12 and not paid_twice(sim)
    for name in ("a", "b"):
        assert len(read_index(tmp_path / name / "batch")) == 12
        assert run_cli("verify", tmp_path / name / "batch") == 0


def test_runs_of_different_manifests_share_the_accounts_cap(tmp_path):
    """Two runs of different manifests, each asking for 4 slots, on an account capped at 4:
    never more than 4 tasks in flight at the provider, both finish, and both had tasks in
    flight while the other did (neither waited for the other to end)."""
    one = write_manifest(tmp_path / "one", 24, name="one")
    two = write_manifest(tmp_path / "two", 24, name="two")
    two.write_text(two.read_text().replace("slow pan", "fast zoom"))  # other rows
    with simulator(latency=(1.0, 1.5), slots=10) as sim:
        flags = ["--base-url", sim.base_url, "--api-key", "sk-test"]
        assert run_cli("account", "--slots", "4", *flags) == 0
        procs = [
            spawn_run(manifest, tmp_path / "out", sim.base_url, "-c", "4")
            for manifest in (one, two)
        ]
        ended = [(proc, proc.communicate(timeout=120)[1]) for proc in procs]
        for proc, err in ended:  # (all ended first: none left running on a failure)
            assert proc.returncode == 0, err.decode()
        stats = sim.stats(with_tasks=True)
    assert stats["max_active"] <= 4
    assert stats["tasks_total"] == 48
    spans = stats["task_spans"]
    runs_of = {}
    for ext, tasks in stats["tasks_by_external_id"].items():
        for task in tasks:
            runs_of[task] = ext
    one_ids = {job.current_external_id for job in jobs_of(tmp_path / "out" / "one")}
    first = [spans[t] for t, ext in runs_of.items() if ext in one_ids]
    second = [spans[t] for t, ext in runs_of.items() if ext not in one_ids]
    # Each run had a task in flight while the other still had tasks to come.
    assert min(s[0] for s in second) < max(s[0] for s in first)
    assert min(s[0] for s in first) < max(s[0] for s in second)


def jobs_of(run_dir: Path):
    with Store.open(run_dir / "state.sqlite") as store:
        return list(store.sent_jobs())


def account_json(base_url: str, capsys) -> dict:
    capsys.readouterr()
    assert run_cli("account", "--json", "--base-url", base_url, "--api-key", "sk-test") == 0
    found = json.loads(capsys.readouterr().out)
    assert len(found) == 1
    return found[0]


def test_a_killed_runs_slots_come_back_after_its_lease(tmp_path, monkeypatch, capsys):
    """A run killed with kill -9 while holding the account's slots holds them until its lease
    expires; then they are free, and a second run on the account finishes."""
    monkeypatch.setenv("BATCHGEN_LEASE", "2")
    manifest = write_manifest(tmp_path, 4)
    other = write_manifest(tmp_path / "other", 3, name="other")
    with simulator(latency=(8.0, 8.0), slots=10) as sim:
        assert (
            run_cli("account", "--slots", "4", "--base-url", sim.base_url, "--api-key", "sk-test")
            == 0
        )
        proc = spawn_run(manifest, tmp_path / "out", sim.base_url, "-c", "4")
        while sim.stats()["tasks_total"] < 4:
            time.sleep(0.05)
        assert account_json(sim.base_url, capsys)["slots_in_use"] == 4
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        assert account_json(sim.base_url, capsys)["slots_in_use"] == 4  # the lease still runs
        while account_json(sim.base_url, capsys)["slots_in_use"]:
            time.sleep(0.2)
        sim.reconfigure(latency=(0.1, 0.2))
        code = run_cli("run", other, "-o", tmp_path / "out", "-c", "4", base_url=sim.base_url)
    assert code == 0
    assert len(read_index(tmp_path / "out" / "other")) == 3


def test_the_ledger_never_holds_the_key(tmp_path):
    """After runs on both providers' credentials, neither the key nor an obvious encoding of
    it is anywhere in the ledger's files."""
    key = "sk-ledger-secret-7f3a9c"
    manifest = write_manifest(tmp_path, 3)
    with simulator(latency=(0.1, 0.2), slots=4, api_key=key) as sim:
        env = {**os.environ, "COMETAPI_KEY": key}
        command = [sys.executable, "-m", "batchgen", "run", str(manifest), "-o", "out"]
        command += ["--base-url", sim.base_url, "--no-progress"]
        subprocess.run(command, env=env, check=True, capture_output=True, cwd=tmp_path)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "batchgen",
                "account",
                "--slots",
                "3",
                "--base-url",
                sim.base_url,
            ],
            env=env,
            check=True,
            capture_output=True,
        )
    encodings = {
        key,
        base64.b64encode(key.encode()).decode(),
        base64.urlsafe_b64encode(key.encode()).decode().rstrip("="),
        key.encode().hex(),
        urllib.parse.quote(key),
        hashlib.sha256(key.encode()).hexdigest(),
        hashlib.md5(key.encode()).hexdigest(),
        key[4:],
    }
    files = [p for p in ledger_file().parent.iterdir() if p.name.startswith("ledger")]
    assert files
    for path in files:
        data = path.read_bytes()
        for encoded in encodings:
            assert encoded.encode() not in data, (path.name, encoded)
            assert encoded.encode("utf-16-le") not in data


def test_an_unknown_create_elsewhere_is_unknown_here_and_points_there(tmp_path, capsys):
    """A create whose answer the first folder lost stays unknown there; a second folder with
    the same rows does not send it again: it is unknown there too, naming the first state.
    Once the user settles it in the first folder, the second follows the task it found."""
    manifest = write_manifest(tmp_path, 4)
    a_dir, b_dir = tmp_path / "a" / "batch", tmp_path / "b" / "batch"
    with simulator(latency=(0.1, 0.2), slots=4, reset_after_accept_rate=1.0) as sim:
        run_cli("run", manifest, "-o", tmp_path / "a", base_url=sim.base_url)
        with Store.open(a_dir / "state.sqlite") as store:
            unknown_a = [j.row_id for j in store.unknown_in_job_order()]
        assert unknown_a
        tasks_before = sim.stats()["tasks_total"]
        sim.reconfigure(reset_after_accept_rate=0.0)
        run_cli("run", manifest, "-o", tmp_path / "b", base_url=sim.base_url)
        assert sim.stats()["tasks_total"] == tasks_before
        with Store.open(b_dir / "state.sqlite") as store:
            unknown_b = list(store.unknown_in_job_order())
        assert [j.row_id for j in unknown_b] == unknown_a
        first_state = str((a_dir / "state.sqlite").resolve())
        assert all(first_state in (j.last_error or "") for j in unknown_b)
        capsys.readouterr()
        assert run_cli("runs", "--json") == 0
        runs = json.loads(capsys.readouterr().out)
        second_state = str((b_dir / "state.sqlite").resolve())
        assert {r["state_path"] for r in runs} == {first_state, second_state}
        # The user adopts, in the first folder, the tasks the dashboard shows; runs it again.
        resolve_unknown(sim, manifest, tmp_path / "a")
        assert run_cli("run", manifest, "-o", tmp_path / "a", base_url=sim.base_url) == 0
        assert run_cli("run", manifest, "-o", tmp_path / "b", base_url=sim.base_url) == 0
        assert sim.stats()["tasks_total"] == tasks_before and not paid_twice(sim)
    assert len(read_index(b_dir)) == 4
    assert run_cli("verify", b_dir) == 0


def test_a_state_made_before_the_ledger_is_recorded_when_first_opened(tmp_path, monkeypatch):
    """A folder run with another (or no) ledger is recorded in this one the first time it is
    opened; a second folder of the same rows then reuses its videos instead of paying."""
    manifest = write_manifest(tmp_path, 4)
    with simulator(latency=(0.1, 0.2), slots=4) as sim:
        monkeypatch.setenv("BATCHGEN_LEDGER", str(tmp_path / "old-ledger.sqlite"))
        assert run_cli("run", manifest, "-o", tmp_path / "a", base_url=sim.base_url) == 0
        monkeypatch.setenv("BATCHGEN_LEDGER", str(tmp_path / "new-ledger.sqlite"))
        assert run_cli("run", manifest, "-o", tmp_path / "a", base_url=sim.base_url) == 0
        assert run_cli("run", manifest, "-o", tmp_path / "b", base_url=sim.base_url) == 0
        assert sim.stats()["tasks_total"] == 4 and not paid_twice(sim)
    assert all(e["reused_from"] for e in read_index(tmp_path / "b" / "batch"))


def test_a_new_generation_of_a_reused_row_is_asked_for_with_regenerate(tmp_path, capsys):
    """A row the second folder took from the first is generated anew, and paid once more, only
    when the user asks (`retry --regenerate ROW`); the earlier video is kept, and the first
    folder's file is untouched."""
    manifest = write_manifest(tmp_path, 3)
    with simulator(latency=(0.1, 0.2), slots=4) as sim:
        assert run_cli("run", manifest, "-o", tmp_path / "a", base_url=sim.base_url) == 0
        assert run_cli("run", manifest, "-o", tmp_path / "b", base_url=sim.base_url) == 0
        assert sim.stats()["tasks_total"] == 3
        first = {e["row_id"]: e for e in read_index(tmp_path / "b" / "batch")}["clip-001"]
        capsys.readouterr()
        assert run_cli("retry", tmp_path / "b" / "batch", "--regenerate", "clip-001") == 0
        assert "1 job(s) will be generated anew" in capsys.readouterr().out
        assert run_cli("run", manifest, "-o", tmp_path / "b", base_url=sim.base_url) == 0
        stats = sim.stats()
    assert stats["tasks_total"] == 4 and not paid_twice(sim)
    again = {e["row_id"]: e for e in read_index(tmp_path / "b" / "batch")}["clip-001"]
    assert again["reused_from"] is None and again["task_id"] != first["task_id"]
    assert again["sha256"] != first["sha256"]
    kept = tmp_path / "b" / "batch" / "videos" / f"{first['job_id']}.mp4"
    assert hashlib.sha256(kept.read_bytes()).hexdigest() == first["sha256"]
    original = tmp_path / "a" / "batch" / first["video"]
    assert hashlib.sha256(original.read_bytes()).hexdigest() == first["sha256"]
    assert run_cli("verify", tmp_path / "b" / "batch") == 0


def test_runs_opening_a_new_ledger_at_once_all_get_it(tmp_path):
    """Eight processes opening a ledger that does not exist yet, at the same instant: each
    opens it (one builds it, the others wait for it), none fails."""
    path = tmp_path / "fresh" / "ledger.sqlite"
    code = (
        "import sys, time; from pathlib import Path; from batchgen.state.ledger import Ledger; "
        "time.sleep(max(0.0, float(sys.argv[2]) - time.time())); "
        "Ledger.open(Path(sys.argv[1])).close()"
    )
    start = str(time.time() + 1.5)
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(path), start], stderr=subprocess.PIPE)
        for _ in range(8)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err.decode()


def test_a_run_opening_the_ledger_leaves_the_others_log_alone(tmp_path):
    """A second process that opens and closes the ledger while a run has it open leaves that
    run's write-ahead log in place: what the run writes after is there for the next opener
    (the second process used to take itself for the last user and delete the log, which
    corrupted the shared ledger)."""
    from batchgen.state.ledger import Ledger

    path = tmp_path / "ledger.sqlite"
    first = Ledger.open(path)
    first.note_account("acct", "cometapi", "http://127.0.0.1:9")
    first.set_slots("acct", 3)
    opener = "import sys; from pathlib import Path; from batchgen.state.ledger import Ledger; "
    subprocess.run(
        [sys.executable, "-c", opener + "Ledger.open(Path(sys.argv[1])).close()", str(path)],
        check=True,
        timeout=60,
    )
    assert Path(f"{path}-wal").exists()
    first.set_slots("acct", 7)  # written after the other process came and went
    read = opener + "print(Ledger.open(Path(sys.argv[1])).accounts()[0][3])"
    seen = subprocess.run(
        [sys.executable, "-c", read, str(path)], check=True, capture_output=True, timeout=60
    )
    first.close()
    assert seen.stdout.decode().strip() == "7"


def test_the_ledger_names_each_video_where_its_own_run_put_it(tmp_path):
    """Two runs in one process, each into `-o output` from a working folder of its own: every
    video the ledger names (its absolute path, for other runs of the account to take it) is
    the one its run downloaded, in that run's folder."""
    runs = []
    with simulator(latency=(0.1, 0.2), slots=4) as sim:
        for name in ("one", "two"):
            folder = tmp_path / name
            folder.mkdir()
            manifest = write_manifest(folder, 3)
            manifest.write_text(manifest.read_text().replace("take", f"{name}, take"))
            os.chdir(folder)
            assert run_cli("run", manifest, "-o", "output", base_url=sim.base_url) == 0
            runs.append(folder / "output" / "batch")
        assert sim.stats()["tasks_total"] == 6 and not paid_twice(sim)
    with sqlite3.connect(ledger_file()) as ledger:
        named = ledger.execute("SELECT video_path, video_sha256 FROM sends").fetchall()
    expected = {
        (str((run / entry["video"]).resolve()), entry["sha256"])
        for run in runs
        for entry in read_index(run)
    }
    assert len(expected) == 6 and set(named) == expected
    assert all(Path(path).is_absolute() and Path(path).is_file() for path, _ in named)
