"""Shared fixtures: a real simulator on a loopback port, manifests with real images, the CLI."""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
from PIL import Image

from batchgen.cli import main
from batchgen.simulator import SimulatorConfig, running_simulator
from batchgen.state.store import Store
from tests import postgres

FAST = {"latency": (0.05, 0.2), "slots": 8, "seed": 1}
PROFILES = ("cometapi", "kling")
RUNS = ("run", "demo")  # the commands that show progress (adopt, reconcile: no run options)
KLING_FLAGS = ("--provider", "kling", "--access-key", "sim-access", "--secret-key", "sim-secret")
ENVIRONMENT = (
    "COMETAPI_KEY",
    "BATCHGEN_BASE_URL",
    "BATCHGEN_PROVIDER",
    "KLING_ACCESS_KEY",
    "KLING_SECRET_KEY",
    "KLING_API_KEY",
    "BATCHGEN_CALLBACK_SECRET",
    "BATCHGEN_DATABASE_URL",
)
DATABASE_ENV = "BATCHGEN_DATABASE_URL"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The long scenarios (marked slow) first: the workers share out the short tests while
    they run, instead of each waiting at the end on a soak begun last."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture(autouse=True, scope="session")
def _session_ledger(tmp_path_factory):
    """Module and session fixtures run before the per-test environment: they get a ledger of
    their own too, never the developer's."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("BATCHGEN_LEDGER", str(tmp_path_factory.mktemp("ledger") / "ledger.sqlite"))
        yield


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch, tmp_path, tmp_path_factory):
    """No test sees the developer's keys, provider, base URL, working folder or account
    ledger: each has a ledger of its own (shared by every run it starts)."""
    for name in ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("BATCHGEN_LEDGER", str(tmp_path_factory.mktemp("ledger") / "ledger.sqlite"))
    monkeypatch.chdir(tmp_path)


@contextmanager
def simulator(**overrides: Any) -> Iterator[Any]:
    config = SimulatorConfig(**{**FAST, **overrides})
    with running_simulator(config) as sim:
        yield sim


@pytest.fixture
def sim():
    with simulator() as handle:
        yield handle


def make_images(folder: Path, count: int = 3) -> list[str]:
    """A few real, distinct images that pass the pre-flight checks (names relative to folder)."""
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for i in range(count):
        name = f"img{i}.{'png' if i % 2 else 'jpg'}"
        Image.new("RGB", (480, 320), (40 * i % 256, 90, 160)).save(folder / name)
        names.append(f"images/{name}")
    return names


def write_manifest(folder: Path, rows: int, fmt: str = "yaml", name: str = "batch") -> Path:
    """A manifest of `rows` distinct jobs over a few shared images."""
    images = make_images(folder / "images")
    entries = [
        {"id": f"clip-{i:03d}", "image": images[i % len(images)], "prompt": f"slow pan, take {i}"}
        for i in range(rows)
    ]
    if fmt == "csv":
        path = folder / f"{name}.csv"
        with open(path, "w", newline="") as f:
            writer = csv.DictWriter(
                f, fieldnames=["id", "image", "prompt", "model_name", "duration"]
            )
            writer.writeheader()
            for entry in entries:
                writer.writerow({**entry, "model_name": "kling-v2-master", "duration": "5"})
        return path
    path = folder / f"{name}.yaml"
    doc = {
        "name": name,
        "defaults": {"model_name": "kling-v2-master", "duration": "5"},
        "rows": entries,
    }
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def provider_flags(base_url: str, profile: str = "cometapi") -> list[str]:
    """The flags that point a command at a simulator of `profile`, with its credentials."""
    credentials = list(KLING_FLAGS) if profile == "kling" else ["--api-key", "sk-test"]
    return ["--base-url", base_url, *credentials]


def run_cli(
    *args: str | os.PathLike[str], base_url: str | None = None, profile: str = "cometapi"
) -> int:
    """Run `batchgen ARGS` in-process against `base_url` (a simulator of `profile`); returns
    the exit code."""
    argv = [str(a) for a in args]
    if base_url is not None:
        argv += provider_flags(base_url, profile)
        argv += ["--no-progress"] if argv[0] in RUNS else []
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    return int(exit_info.value.code or 0)


def dashboard(sim: Any) -> dict[str, list[str]]:
    """external_task_id → task ids, as a person finds them in the provider's dashboard."""
    found: dict[str, list[str]] = sim.stats(with_tasks=True)["tasks_by_external_id"]
    return found


def resolve_unknown(
    sim: Any,
    manifest: Path,
    out: Path,
    profile: str = "cometapi",
    adopted_by_hand: list[str] | None = None,
) -> int:
    """Do what a user does with each unknown job: adopt the task the dashboard shows for it
    (its row appended to `adopted_by_hand`), or, where there is none, send it again. Returns
    how many were unknown."""
    with open_state(out / manifest.stem) as store:
        unknown = [(job.row_id, job.current_external_id) for job in store.unknown_in_job_order()]
    tasks = dashboard(sim)
    for row, external in unknown:
        if external in tasks:
            if adopted_by_hand is not None:
                adopted_by_hand.append(row)
            adopt = ("adopt", manifest, "-o", out, "--job", row, "--task", tasks[external][0])
            assert run_cli(*adopt, base_url=sim.base_url, profile=profile) == 0, row
        else:
            assert run_cli("retry", manifest, "-o", out, "--job", row, "--yes") == 0
    return len(unknown)


def read_index(run_dir: Path) -> list[dict[str, Any]]:
    text = (run_dir / "index.jsonl").read_text()
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A PostgreSQL server for this test process (see tests/postgres.py); skipped when its
    binaries are missing, unless BATCHGEN_REQUIRE_POSTGRES=1 makes that a failure."""
    if postgres.binaries() is None:
        if os.environ.get(postgres.REQUIRE) == "1":
            pytest.fail(f"{postgres.REQUIRE}=1 but the PostgreSQL tests {postgres.MISSING}")
        pytest.skip(f"the PostgreSQL tests {postgres.MISSING}")
    with postgres.running_server() as url:
        yield url


@pytest.fixture
def postgres_url(postgres_server: str) -> str:
    """The URL of a new, empty database of its own for this test."""
    return postgres.new_database(postgres_server)


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str | None:
    """The database a run keeps its state in: None (a SQLite file, the default) or the URL of
    a PostgreSQL database of the test's own, given to every command the test runs as a user
    would give it (BATCHGEN_DATABASE_URL). The run tests take it to run on both."""
    if request.param == "sqlite":
        return None
    url: str = request.getfixturevalue("postgres_url")
    monkeypatch.setenv(DATABASE_ENV, url)
    return url


def open_state(run_dir: Path) -> Store:
    """The state of the run in `run_dir`, in the database the test runs on (see `database`)."""
    return Store.open(run_dir / "state.sqlite", os.environ.get(DATABASE_ENV))
