"""A real PostgreSQL server for the tests: Debian's initdb and pg_ctl in a temporary folder,
run as the `postgres` user when the tests run as root (PostgreSQL refuses root), listening on
a unix socket in that folder only. Each test gets a database of its own."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

REQUIRE = "BATCHGEN_REQUIRE_POSTGRES"
MISSING = "needs PostgreSQL's initdb and pg_ctl (apt-get install postgresql)"


def binaries() -> tuple[str, str] | None:
    """initdb and pg_ctl, when installed (on PATH, or Debian's versioned folder)."""
    found = [shutil.which(name) for name in ("initdb", "pg_ctl")]
    if all(found):
        return str(found[0]), str(found[1])
    for folder in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (folder / "initdb").is_file() and (folder / "pg_ctl").is_file():
            return str(folder / "initdb"), str(folder / "pg_ctl")
    return None


def _as_server_user(command: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


@contextmanager
def running_server(*settings: str) -> Iterator[str]:
    """Start a throw-away server (with these `NAME=VALUE` settings too); yields the URL of its
    `postgres` database."""
    initdb, pg_ctl = binaries() or ("initdb", "pg_ctl")
    folder = Path(tempfile.mkdtemp(prefix="bgpg"))  # short: a socket path has ~100 bytes
    if os.geteuid() == 0:
        server = pwd.getpwnam("postgres")
        os.chown(folder, server.pw_uid, server.pw_gid)
    data = folder / "data"
    quiet = {"check": True, "stdout": subprocess.DEVNULL, "stderr": subprocess.PIPE, "cwd": "/"}
    subprocess.run(
        _as_server_user([initdb, "-D", str(data), "-U", "postgres", "-A", "trust", "--no-sync"]),
        **quiet,
    )
    options = f"-k {folder} -c listen_addresses='' -F -c max_connections=200"
    options += "".join(f" -c {setting}" for setting in settings)
    start = [pg_ctl, "-D", str(data), "-o", options, "-l", str(folder / "log"), "-w", "start"]
    subprocess.run(_as_server_user(start), **quiet)
    try:
        yield f"postgresql://postgres@/postgres?host={folder}"
    finally:
        stop = [pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"]
        subprocess.run(_as_server_user(stop), check=False, capture_output=True, cwd="/")
        shutil.rmtree(folder, ignore_errors=True)


def new_database(server_url: str) -> str:
    """A new, empty database on the server; its URL."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return server_url.replace("/postgres?", f"/{name}?")
