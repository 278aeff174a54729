"""`batchgen simulate`: its options, its banner, and a busy port."""

from __future__ import annotations

import socket
import subprocess
import sys

import click

from batchgen.cli.simulation import simulate
from batchgen.simulator import SimulatorConfig
from batchgen.simulator.server import banner


def test_every_simulate_option_has_a_help_text() -> None:
    """`batchgen simulate --help` explains every option."""
    options = [p for p in simulate.params if isinstance(p, click.Option)]
    assert len(options) > 20
    assert [o.name for o in options if not o.help] == []


def test_simulate_has_an_option_for_every_setting() -> None:
    """Each SimulatorConfig setting can be set from `batchgen simulate`."""
    names = {p.name for p in simulate.params}
    settings = set(SimulatorConfig.__dataclass_fields__)
    assert settings <= names


def test_the_banner_names_the_profile_and_how_to_authenticate() -> None:
    """The banner says which provider is imitated; for kling, the access and secret keys."""
    comet = banner(SimulatorConfig(), "http://127.0.0.1:8765")
    kling = banner(SimulatorConfig(profile="kling"), "http://127.0.0.1:8765")
    assert "profile cometapi" in comet and "/kling/v1/videos/image2video" in comet
    assert "profile kling" in kling and "http://127.0.0.1:8765/v1/videos/image2video" in kling
    assert "'sim-access'" in kling and "'sim-secret'" in kling


def test_simulate_on_a_busy_port_fails_in_one_line_with_exit_2() -> None:
    """A port already in use ends with one line naming host and port and suggesting --port."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "batchgen", "simulate", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr and done.stdout == ""
    (line,) = done.stderr.splitlines()
    assert "127.0.0.1" in line and str(port) in line and "--port" in line
