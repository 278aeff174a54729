"""`batchgen demo`: the packaged demo, from any folder, against either provider's simulator."""

from __future__ import annotations

import tomllib
from fnmatch import fnmatch
from pathlib import Path

from batchgen.demo import DEMO_MANIFEST
from batchgen.jobs import JobSpec
from batchgen.manifest.resolve import resolve_manifest
from tests.conftest import run_cli

ROOT = Path(__file__).resolve().parents[2]


def job_ids(manifest: Path) -> list[str]:
    return sorted(
        item.job_id for item in resolve_manifest(manifest).iter_jobs() if isinstance(item, JobSpec)
    )


def test_demo_refuses_a_latency_range_upside_down(capsys):
    """`demo --latency 3 1` is a usage error (exit 2), not a traceback."""
    assert run_cli("demo", "--latency", "3", "1") == 2
    err = capsys.readouterr().err
    assert "latency must be (min, max)" in err and "Traceback" not in err


def test_the_packaged_demo_is_the_example_manifest():
    """The packaged demo and manifests/demo.yaml resolve to the same jobs."""
    assert job_ids(DEMO_MANIFEST) == job_ids(ROOT / "manifests" / "demo.yaml")


def test_the_packaged_demo_files_are_declared_as_package_data():
    """Every file of batchgen/data/demo matches a package-data pattern, so it is installed."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = config["tool"]["setuptools"]["package-data"]["batchgen"]
    package = ROOT / "batchgen"
    files = [
        p.relative_to(package).as_posix() for p in DEMO_MANIFEST.parent.rglob("*") if p.is_file()
    ]
    assert len(files) == 4
    assert [f for f in files if not any(fnmatch(f, pattern) for pattern in patterns)] == []
