"""Run the simulator: in a background thread for tests and the demo, or in the foreground."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

from batchgen.simulator.app import KlingSimulator
from batchgen.simulator.config import SimulatorConfig

LOOPBACK = ("127.0.0.1", "localhost", "::1")


class SimulatorHandle:
    """A running simulator: its URL, its counters, and switches for its faults."""

    def __init__(self, app: KlingSimulator, base_url: str) -> None:
        self.app = app
        self.base_url = base_url

    def stats(self) -> dict[str, Any]:
        return self.app.stats()

    def reconfigure(self, **changes: Any) -> None:
        self.app.reconfigure(**changes)


def _server(app: KlingSimulator, host: str, port: int, log_level: str) -> uvicorn.Server:
    if host not in LOOPBACK:
        raise ValueError(f"the simulator binds loopback addresses only, not {host}")
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, access_log=False,
                            lifespan="off", timeout_keep_alive=30, backlog=2048)
    return uvicorn.Server(config)


@contextmanager
def running_simulator(config: SimulatorConfig | None = None, port: int = 0) -> Iterator[SimulatorHandle]:
    """Serve a simulator on 127.0.0.1 (a free port unless given) while the block runs."""
    app = KlingSimulator(config or SimulatorConfig())
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    server = _server(app, "127.0.0.1", sock.getsockname()[1], "critical")
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    if not server.started:
        raise RuntimeError("the simulator did not start")
    try:
        yield SimulatorHandle(app, f"http://127.0.0.1:{sock.getsockname()[1]}")
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def serve(config: SimulatorConfig | None = None, host: str = "127.0.0.1", port: int = 8765) -> None:
    """Serve in the foreground until Ctrl-C."""
    server = _server(KlingSimulator(config or SimulatorConfig()), host, port, "warning")
    print(f"Kling simulator on http://{host}:{port} (Ctrl-C stops it)", flush=True)
    server.run()
