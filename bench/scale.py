"""Scale: a 1,000,000-row manifest (`python bench/scale.py [ROWS] [--keep DIR]`, or
`python bench/scale.py --status-only DIR` on what `--keep DIR` left).

    plan      `batchgen plan` wall time and peak RSS (its own process)
    load      the first `batchgen run`: every row resolved and stored; time to its first create
    resume    `batchgen run` again on a state holding every job: time to its first create
              (the state is reused because the manifest has not changed); baseline: the load
    status    `batchgen status` wall time, process start included (best of 5, bytecode cached
              as an installed package's is); baseline: a bare Python process counting the jobs
              by status with one GROUP BY (what counting costs)
    grown     `batchgen run` again after GROWN rows were appended to the manifest: every row
              resolved again, the new ones stored; time to its first create (what a user who
              adds rows to a large dataset waits for); baseline: the load
    index     index.jsonl written from the state with all but 1,000 jobs done, as every run's
              end writes it; baseline: copying the file it wrote (its bytes alone)

Each step runs the real command in a child process; the simulator runs in another and tells
when the first create arrives. `--keep DIR` builds in DIR (new or empty) and leaves the run
there; `--status-only DIR` then times the status step alone on that run, as the full bench
does (the plan and load steps take minutes at 1,000,000 rows).

`--postgres` keeps the run's state in PostgreSQL instead (`--database`, a throw-away server
of Debian's binaries in a temporary folder, as the tests start it): the same steps, the bare
count asked of the server by a bare Python process with psycopg.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))  # tests.postgres: its server

from common import figure, grow_csv_manifest, simulator_process, stats, write_csv_manifest

BATCHGEN = [sys.executable, "-m", "batchgen"]
STATUS_TRIES = 5  # status and the bare count: the best of these, after one to warm up
SETTLE_SECONDS = 3.0  # longer than the simulated generation time
RUN_DIR = Path("output") / "bench"  # the run, relative to the folder the bench works in
GROWN = 1000  # rows appended to the manifest for the `grown` step
BARE_COUNT = (
    "import sqlite3, sys\n"
    "db = sqlite3.connect(sys.argv[1])\n"
    "print(db.execute('SELECT status, count(*) FROM jobs GROUP BY status').fetchall())\n"
)
BARE_PG_COUNT = (
    "import psycopg, sys\n"
    "with psycopg.connect(sys.argv[1]) as db:\n"
    "    print(db.execute('SELECT status, count(*) FROM run_bench.jobs GROUP BY status')"
    ".fetchall())\n"
)


def timed(
    args: list[str], cwd: Path, env: dict[str, str] | None = None
) -> tuple[float, float, int]:
    """(wall seconds, peak RSS MB, exit code) of a command run to its end."""
    started = time.monotonic()
    proc = subprocess.Popen(
        args, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - started
    return wall, usage.ru_maxrss / 1024, os.waitstatus_to_exitcode(status)


def until_first_create(args: list[str], cwd: Path, url: str) -> tuple[float, float]:
    """(seconds from launch to the simulator's first create, peak RSS MB); then stops it.
    Waits first for the tasks an earlier step left running to end: a resume keeps them in its
    concurrency cap (as it must), and the figure is about batchgen's start, not their end."""
    time.sleep(SETTLE_SECONDS)
    before = stats(url)["creates_received"]
    started = time.monotonic()
    proc = subprocess.Popen(args, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while stats(url)["creates_received"] == before:
        if proc.poll() is not None:
            raise RuntimeError(f"{' '.join(args)} ended with {proc.returncode} before submitting")
        time.sleep(0.02)
    first = time.monotonic() - started
    proc.send_signal(signal.SIGINT)
    proc.send_signal(signal.SIGINT)
    _, _, usage = os.wait4(proc.pid, 0)
    return first, usage.ru_maxrss / 1024


MARK_DONE = (
    "UPDATE jobs SET status = 'done', output_path = 'videos/shared.mp4', bytes = 4096, "
    "sha256 = '' WHERE status = 'pending' AND seq <= {last}"
)
# Every done video of a real run has its check (probe + QA findings): one in 20 flagged here.
# As a run stores them: canonical JSON (jobs.canonical_json), which index.jsonl takes as it is.
FLAGGED = '[{"code":"frozen","message":"no motion"}]'
CHECK_DONE = (
    'INSERT INTO video_checks SELECT job_id, sha256, \'{{"codec":"h264","frames":120}}\', '
    "CASE WHEN seq % 20 = 0 THEN '" + FLAGGED.replace("{", "{{").replace("}", "}}") + "' "
    "ELSE '[]' END FROM jobs WHERE status = 'done' AND seq <= {last} "
    "ON CONFLICT (job_id) DO NOTHING"
)


def mark_done_but_last(run_dir: Path, left: int, database: str | None = None) -> int:
    """Make the state look like a run killed near its end: every pending job but the last
    `left` done, its video one shared real file (so the resume's check of done videos passes)
    and checked, as a run records it (on PostgreSQL, the counts folded as a run folds them)."""
    video = run_dir / "videos" / "shared.mp4"
    video.parent.mkdir(parents=True, exist_ok=True)
    video.write_bytes(b"\0" * 4096)
    if database is not None:
        import psycopg

        with psycopg.connect(database) as pg:
            pg.execute("SET search_path TO run_bench")
            (last,) = pg.execute("SELECT max(seq) FROM jobs").fetchone() or (0,)
            changed = pg.execute(MARK_DONE.format(last=int(last) - left)).rowcount
            pg.execute(CHECK_DONE.format(last=int(last) - left))
        # A run folds the counts' changes with each heartbeat of its workers (kept_counts.py),
        # so a run killed near its end leaves a few seconds' worth; these statements left one
        # per job changed, which opening the state folds, as a heartbeat would have.
        from batchgen.state.store import Store

        Store.open(run_dir / "state.sqlite", database, create=False).close()
        return changed
    with sqlite3.connect(run_dir / "state.sqlite") as db:
        (last,) = db.execute("SELECT max(seq) FROM jobs").fetchone()
        changed = db.execute(MARK_DONE.format(last=int(last) - left)).rowcount
        db.execute(CHECK_DONE.format(last=int(last) - left))
    return int(changed)


def status_step(folder: Path, database: str | None = None) -> tuple[float, float]:
    """(wall seconds of `batchgen status` on the run in `folder`, of the bare count): the best
    of STATUS_TRIES each, after one run of each to warm up. Python's bytecode is cached (in a
    folder of its own) for both, as an installed package's is: an environment that says not to
    write it (PYTHONDONTWRITEBYTECODE) would otherwise have every start of an editable install
    compile batchgen's modules again, which no user's start does."""
    on = [] if database is None else ["--database", database]
    if database is None:
        bare = [sys.executable, "-c", BARE_COUNT, str(RUN_DIR / "state.sqlite")]
    else:
        bare = [sys.executable, "-c", BARE_PG_COUNT, database]
    with tempfile.TemporaryDirectory(prefix="bench-pycache-") as cache:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["PYTHONPYCACHEPREFIX"] = cache
        best = []
        for command in ([*BATCHGEN, "status", str(RUN_DIR), *on], bare):
            runs = [timed(command, folder, env) for _ in range(STATUS_TRIES + 1)]
            assert all(code == 0 for _, _, code in runs), runs
            best.append(min(wall for wall, _, _ in runs[1:]))
    return best[0], best[1]


def status_figure(status_s: float, bare_s: float) -> None:
    figure("status: wall, process start included", status_s, "<= 0.3", f"{bare_s:.3f} s", " s")
    print("  (baseline: a bare Python process counting the jobs with one GROUP BY)")


def index_step(folder: Path, database: str | None = None) -> tuple[float, int, float, float]:
    """(seconds to write index.jsonl from the state, as a run's end does, lines, MB, seconds to
    copy that file and sync the copy: what its bytes alone cost to write)."""
    from batchgen import output
    from batchgen.state.store import Store

    with (
        tempfile.TemporaryDirectory(dir=folder) as tmp,
        Store.open(folder / RUN_DIR / "state.sqlite", database, create=False) as store,
    ):
        started = time.monotonic()
        lines, _ = output.write_indexes(store, Path(tmp))
        written = time.monotonic() - started
        index = Path(tmp) / output.INDEX_NAME
        started = time.monotonic()
        with open(index, "rb") as source, open(Path(tmp) / "copy", "wb") as copy:
            shutil.copyfileobj(source, copy, 1 << 20)
            copy.flush()
            os.fsync(copy.fileno())
        return written, lines, index.stat().st_size / 2**20, time.monotonic() - started


def index_figure(seconds: float, lines: int, mb: float, copy_s: float) -> None:
    baseline = f"{copy_s:.2f} s to copy the file"
    what = f"index.jsonl at a run's end ({lines:,} lines, {mb:.0f} MB)"
    figure(what, seconds, "-", baseline, " s")


def build_and_time(folder: Path, rows: int, database: str | None = None) -> None:
    """Every step on a new `rows`-row manifest in `folder` (the state on `database` if given);
    prints every figure."""
    manifest = write_csv_manifest(folder, rows)
    where = "a state file" if database is None else "PostgreSQL"
    print(f"{rows:,} rows; manifest {manifest.stat().st_size / 2**20:.0f} MB; state in {where}")
    plan_s, plan_mb, code = timed([*BATCHGEN, "plan", str(manifest)], folder)
    assert code == 0, code
    with simulator_process(latency=(1.0, 1.0), slots=8, seed=4) as url:
        run = [*BATCHGEN, "run", str(manifest), "--base-url", url, "--api-key", "sk-b"]
        run += ["--concurrency", "8", "--no-progress"]
        run += [] if database is None else ["--database", database]
        load_s, load_mb = until_first_create(run, folder, url)
        resume_s, resume_mb = until_first_create(run, folder, url)
        done = mark_done_but_last(folder / RUN_DIR, 1000, database)
        late_s, late_mb = until_first_create(run, folder, url)
        grow_csv_manifest(manifest, rows, GROWN)
        grown_s, grown_mb = until_first_create(run, folder, url)
    status_s, bare_s = status_step(folder, database)
    index = index_step(folder, database)
    figure("plan: wall", plan_s, "< 60", unit=" s")
    figure("plan: peak RSS", plan_mb, "< 500", unit=" MB")
    figure("first run: start to first create", load_s, "-", unit=" s")
    figure("  its peak RSS", load_mb, "-", unit=" MB")
    figure("resume: start to first create", resume_s, "< 3", f"{load_s:.1f} s (first run)", " s")
    figure("  its peak RSS", resume_mb, "-", unit=" MB")
    figure(f"resume with {done:,} jobs done: to first create", late_s, "< 3", unit=" s")
    figure("  its peak RSS", late_mb, "-", unit=" MB")
    grown = f"manifest grown by {GROWN:,} rows: to first create"
    figure(grown, grown_s, "-", f"{load_s:.1f} s (first run)", " s")
    figure("  its peak RSS", grown_mb, "-", unit=" MB")
    status_figure(status_s, bare_s)
    index_figure(*index)


def main() -> None:
    parser = argparse.ArgumentParser(description="Scale: a 1,000,000-row manifest.")
    parser.add_argument("rows", nargs="?", type=int, default=1_000_000)
    parser.add_argument(
        "--keep", type=Path, metavar="DIR", help="build in this folder and leave the run there"
    )
    parser.add_argument(
        "--status-only", type=Path, metavar="DIR", help="time status alone on a --keep folder"
    )
    parser.add_argument(
        "--postgres", action="store_true", help="the state in a throw-away PostgreSQL server"
    )
    args = parser.parse_args()
    if args.postgres:
        if args.keep or args.status_only:
            parser.error("--postgres builds in a temporary folder: no --keep or --status-only")
        from tests.postgres import MISSING, binaries, new_database, running_server

        if binaries() is None:
            parser.error(f"--postgres {MISSING}")
        with running_server() as server, tempfile.TemporaryDirectory() as tmp:
            build_and_time(Path(tmp), args.rows, new_database(server))
    elif args.status_only:
        if not (args.status_only / RUN_DIR / "state.sqlite").is_file():
            parser.error(f"{args.status_only} holds no run that --keep left")
        status_figure(*status_step(args.status_only))
    elif args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        if any(args.keep.iterdir()):
            parser.error(f"{args.keep} is not empty")
        build_and_time(args.keep, args.rows)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            build_and_time(Path(tmp), args.rows)


if __name__ == "__main__":
    main()
