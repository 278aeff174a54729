"""Scale-out on PostgreSQL: one manifest of ROWS rows run by 1, 2 and 4 worker processes on one
PostgreSQL run, each the same `batchgen run MANIFEST --database URL -o OUT -c 16`, all started
at once, against a simulator with many slots and short generations, under an account cap set
with `batchgen account --slots`. Baseline: one worker on the same run, measured here.

Printed per worker count: wall time (the first start to the last exit) and jobs/s, as a ratio
to one worker; the simulator's peak tasks in flight against the account's cap; the tasks the
simulator accepted against the rows (a row paid twice shows here); database round trips per
job. And one worker on SQLite beside one on PostgreSQL.

Round trips are counted on the server, from a connection to another database so that counting
adds nothing: statements executed (`pg_stat_statements`, which the bench's own server loads)
and transactions (`xact_commit + xact_rollback` of `pg_stat_database`, a lower bound: the
statements of one BEGIN ... COMMIT count once). Both include BEGIN, COMMIT and SET.

Every configuration has a fresh simulator, a fresh database (SQLite: a fresh ledger file) and
a fresh output folder: the account ledger reuses the videos of rows an earlier run of the
account paid for, so nothing may carry over. Every `run` on one PostgreSQL run joins it as a
worker; one refused (exit 2) is reported as such, with the figures of the workers that ran.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))  # tests.postgres: its server

import psycopg
from common import write_csv_manifest

from batchgen.simulator import SimulatorConfig, running_simulator
from batchgen.state.store import Store
from batchgen.status import JobStatus
from tests.postgres import MISSING, binaries, new_database, running_server

ROWS = int(sys.argv[1]) if len(sys.argv) > 1 else 400
WORKERS = (1, 2, 4)
SLOTS, CAP, CONCURRENCY = 64, 48, 16  # the simulator's slots, the account's, each worker's -c
LATENCY = (0.2, 0.5)
API = ("--api-key", "sk-test")
CLEARED = ("COMETAPI_KEY", "BATCHGEN_DATABASE_URL", "BATCHGEN_BASE_URL", "BATCHGEN_PROVIDER")


@dataclass
class Counters:
    """What the server has counted for one database."""

    transactions: int
    statements: int | None  # None: pg_stat_statements is not loaded


@dataclass
class Outcome:
    """One configuration's run: its workers' exits, its wall time and what was counted."""

    workers: int
    database: str  # "postgresql" or "sqlite"
    wall: float = 0.0
    exits: list[int] = field(default_factory=list)
    refusals: list[str] = field(default_factory=list)  # the last words of each refused worker
    failures: list[str] = field(default_factory=list)  # ... of each worker that failed otherwise
    done: int = 0
    peak: int = 0
    tasks: int = 0
    paid_twice: int = 0
    counted: Counters | None = None

    @property
    def throughput(self) -> float:
        return self.done / self.wall if self.wall else 0.0


class Server:
    """The bench's PostgreSQL server: a fresh database per configuration, counted from its
    `postgres` database."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.conn = psycopg.connect(url, autocommit=True)
        self.statements = self._load_statements()

    def _load_statements(self) -> bool:
        try:
            self.conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            self.conn.execute("SELECT 1 FROM pg_stat_statements LIMIT 1")
        except psycopg.Error:
            return False
        return True

    def fresh(self) -> str:
        return new_database(self.url)

    def counters(self, url: str) -> Counters:
        """The transactions and statements the server has counted for the database `url`."""
        name = url.split("?")[0].rsplit("/", 1)[1]
        time.sleep(0.7)  # each backend flushes its counts at most once a second, and at exit
        self.conn.execute("SELECT pg_stat_clear_snapshot()")
        row = self.conn.execute(
            "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = %s", (name,)
        ).fetchone()
        statements = None
        if self.statements:
            found = self.conn.execute(
                "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements s JOIN pg_database d "
                "ON d.oid = s.dbid WHERE d.datname = %s",
                (name,),
            ).fetchone()
            statements = int(found[0]) if found else 0
        return Counters(int(row[0]) if row else 0, statements)


def environment(folder: Path) -> dict[str, str]:
    """The workers' environment: a ledger file of this configuration's own, no user settings."""
    env = {k: v for k, v in os.environ.items() if k not in CLEARED}
    env["BATCHGEN_LEDGER"] = str(folder / "ledger.sqlite")
    return env


def batchgen(*args: str | Path) -> list[str]:
    return [sys.executable, "-m", "batchgen", *map(str, args)]


def configuration(tmp: Path, manifest: Path, workers: int, server: Server | None) -> Outcome:
    """Run `manifest` with `workers` processes at once on a fresh PostgreSQL database of
    `server` (None: SQLite) against a fresh simulator."""
    outcome = Outcome(workers, "sqlite" if server is None else "postgresql")
    folder = tmp / f"{outcome.database}-{workers}"
    folder.mkdir()
    env = environment(folder)
    url = server.fresh() if server is not None else None
    on_database = ["--database", url] if url is not None else []
    config = SimulatorConfig(latency=LATENCY, slots=SLOTS, seed=1)
    with running_simulator(config) as sim:
        cap = batchgen("account", "--slots", CAP, *on_database, "--base-url", sim.base_url, *API)
        subprocess.run(cap, env=env, check=True, capture_output=True, cwd=tmp)
        before = server.counters(url) if server is not None and url is not None else None
        run = batchgen("run", manifest, *on_database, "-o", folder / "out")
        run += ["--base-url", sim.base_url, *API, "--no-progress", "-c", str(CONCURRENCY)]
        _run_workers(outcome, run, env, folder, tmp)
        after = server.counters(url) if server is not None and url is not None else None
        stats = sim.stats(with_tasks=True)
    outcome.peak = int(stats["max_active"])
    tasks = [len(ids) for ids in stats["tasks_by_external_id"].values()]
    outcome.tasks, outcome.paid_twice = sum(tasks), sum(n > 1 for n in tasks)
    if before is not None and after is not None:
        outcome.counted = _difference(before, after)
    with Store.open(folder / "out" / manifest.stem / "state.sqlite", url, create=False) as store:
        outcome.done = sum(s == JobStatus.DONE for s in store.statuses().values())
    return outcome


def _run_workers(
    outcome: Outcome, command: list[str], env: dict[str, str], folder: Path, cwd: Path
) -> None:
    """Start the workers together, wait for all, and sort their exits."""
    logs = [folder / f"worker-{i}.err" for i in range(outcome.workers)]
    started = time.monotonic()
    procs = []
    for log in logs:
        with open(log, "wb") as err:
            procs.append(subprocess.Popen(command, env=env, cwd=cwd, stdout=err, stderr=err))
    outcome.exits = [proc.wait() for proc in procs]
    outcome.wall = time.monotonic() - started
    for code, log in zip(outcome.exits, logs, strict=True):
        last = log.read_text(errors="replace").strip().splitlines()[-1:] or ["(nothing)"]
        if code == 2 and "in use by" in last[0]:
            outcome.refusals.append(last[0])
        elif code != 0:
            outcome.failures.append(f"exit {code}: {last[0]}")


def _difference(before: Counters, after: Counters) -> Counters:
    statements = None
    if before.statements is not None and after.statements is not None:
        statements = after.statements - before.statements
    return Counters(after.transactions - before.transactions, statements)


def report(outcome: Outcome, baseline: Outcome) -> None:
    """One configuration's line, and a note for its refused or failed workers."""
    ratio = outcome.throughput / baseline.throughput if baseline.throughput else 0.0
    per_job = "-"
    if outcome.counted is not None and outcome.done:
        per_job = f"{outcome.counted.transactions / outcome.done:6.1f} xacts"
        if outcome.counted.statements is not None:
            per_job += f", {outcome.counted.statements / outcome.done:6.1f} statements"
    twice = f"{outcome.paid_twice} twice"
    print(
        f"{outcome.workers:>7}  {outcome.database:<10} {outcome.wall:>7.2f} "
        f"{outcome.throughput:>7.1f} {ratio:>9.2f}x {outcome.peak:>5} / {CAP:<3} "
        f"{outcome.tasks:>6} / {ROWS:<5} {twice:<8} {outcome.done:>5}   {per_job}",
        flush=True,
    )
    if outcome.refusals:
        print(
            f"         REFUSED: {len(outcome.refusals)} of {outcome.workers} workers exited 2 "
            f"(the run does not take joining workers yet); figures are the one that ran's: "
            f"{outcome.refusals[0]}",
            flush=True,
        )
    for failure in outcome.failures:
        print(f"         FAILED worker: {failure}", flush=True)


def main() -> None:
    if binaries() is None:
        sys.exit(f"bench/scaleout.py {MISSING}")
    mean = sum(LATENCY) / 2
    print(
        f"{ROWS} rows, generation {LATENCY[0]}-{LATENCY[1]} s, simulator {SLOTS} slots, "
        f"account cap {CAP}, -c {CONCURRENCY} per worker; load average "
        f"{os.getloadavg()[0]:.2f} on {os.cpu_count()} cores"
    )
    print(
        f"ideal wall (generation only): {ROWS * mean / CONCURRENCY:.1f} s at 1 worker, "
        f"{ROWS * mean / min(CAP, 2 * CONCURRENCY):.1f} s at 2, "
        f"{ROWS * mean / min(CAP, 4 * CONCURRENCY):.1f} s at 4"
    )
    with (
        tempfile.TemporaryDirectory() as tmp,
        running_server("shared_preload_libraries=pg_stat_statements") as url,
    ):
        server = Server(url)
        counting = (
            "pg_stat_statements and pg_stat_database"
            if server.statements
            else ("pg_stat_database only (pg_stat_statements is not installed)")
        )
        print(f"round trips counted with {counting}")
        manifest = write_csv_manifest(Path(tmp), ROWS)
        print(
            f"{'workers':>7}  {'database':<10} {'wall s':>7} {'jobs/s':>7} {'vs 1':>10} "
            f"{'peak / cap':>11} {'tasks / rows':>14} {'':<8} {'done':>5}   round trips per job"
        )
        outcomes = [configuration(Path(tmp), manifest, n, server) for n in WORKERS]
        for outcome in outcomes:
            report(outcome, outcomes[0])
        print("one worker, SQLite beside PostgreSQL (ratio to PostgreSQL):")
        report(configuration(Path(tmp), manifest, 1, None), outcomes[0])
        report(outcomes[0], outcomes[0])
        server.conn.close()


if __name__ == "__main__":
    main()
