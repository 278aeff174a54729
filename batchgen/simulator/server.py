"""Run the simulator under uvicorn: in a background thread (`running_simulator`, for tests and
the demo) or in the foreground (`serve`, for `batchgen simulate`). Loopback addresses only."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

from batchgen.simulator.app import KlingSimulator
from batchgen.simulator.config import SimulatorConfig
from batchgen.simulator.library import is_loopback

SERVE_PORT = 8765
START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0
DROP_LOG_LINE = "ASGI callable returned without completing response."


class SimulatorHandle:
    """A running simulator: its URL, its counters, and its settings."""

    def __init__(self, app: KlingSimulator, base_url: str) -> None:
        self.app = app
        self.base_url = base_url  # "http://127.0.0.1:PORT"; clients append /kling/v1/…

    @property
    def config(self) -> SimulatorConfig:
        return self.app.config

    def stats(self, with_tasks: bool = False) -> dict[str, Any]:
        """The counters, as `GET /_sim/stats` answers them."""
        return self.app.stats(with_tasks)

    def reconfigure(self, **changes: Any) -> SimulatorConfig:
        """Change settings (faults, limits, latency…) while it runs; thread-safe."""
        return self.app.reconfigure(**changes)


@contextmanager
def running_simulator(
    config: SimulatorConfig | None = None, port: int | None = None
) -> Iterator[SimulatorHandle]:
    """Serve a simulator on 127.0.0.1 in a daemon thread while the block runs.

    The port is `port`, else `config.port`, where 0 picks a free one. Stops on exit.
    """
    config = config or SimulatorConfig()
    app = KlingSimulator(config)
    sock = _listening_socket("127.0.0.1", config.port if port is None else port)
    server = _server(app, log_level="critical", quiet=True)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="kling-simulator", daemon=True
    )
    thread.start()
    try:
        _wait_started(server, thread)
        yield SimulatorHandle(app, f"http://127.0.0.1:{sock.getsockname()[1]}")
    finally:
        server.should_exit = True
        thread.join(timeout=STOP_TIMEOUT)
        sock.close()


def serve(
    config: SimulatorConfig | None = None, host: str = "127.0.0.1", port: int | None = None
) -> None:
    """Serve in the foreground until Ctrl-C, on `port`, else `config.port`, else 8765."""
    config = config or SimulatorConfig()
    chosen = port if port is not None else (config.port or SERVE_PORT)
    sock = _listening_socket(host, chosen)
    logging.getLogger("uvicorn.error").addFilter(_without_drop_lines)
    server = _server(KlingSimulator(config), log_level="warning", quiet=False)
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    print(f"Kling simulator on http://{shown}:{bound} (Ctrl-C stops it)", flush=True)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()


def _listening_socket(host: str, port: int) -> socket.socket:
    if not is_loopback(host):
        raise ValueError(f"the simulator binds loopback addresses only, not {host!r}")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say they are TCP, and
    # without it every answer (headers, then body) waits ~40 ms for a delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1" if host == "localhost" else host, port))
    except OSError:
        sock.close()
        raise
    return sock


def _server(app: KlingSimulator, log_level: str, quiet: bool) -> uvicorn.Server:
    config = uvicorn.Config(
        app,
        log_level=log_level,
        log_config=None if quiet else uvicorn.config.LOGGING_CONFIG,
        access_log=False,
        lifespan="off",
        timeout_keep_alive=30,
        timeout_graceful_shutdown=2,
        backlog=2048,
    )
    return uvicorn.Server(config)


def _wait_started(server: uvicorn.Server, thread: threading.Thread) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.005)
    if not server.started:
        server.should_exit = True
        raise RuntimeError("the simulator did not start")


def _without_drop_lines(record: logging.LogRecord) -> bool:
    """Hide uvicorn's complaint about the answers the simulator breaks off on purpose."""
    return record.getMessage() != DROP_LOG_LINE
