"""Run the simulator under uvicorn: in a background thread (`running_simulator`, for tests and
the demo) or in the foreground (`serve`, for `batchgen simulate`). Loopback addresses only."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

from batchgen.simulator.app import KlingSimulator
from batchgen.simulator.asgi import ASGIApp
from batchgen.simulator.config import SimulatorConfig
from batchgen.simulator.library import is_loopback
from batchgen.simulator.profiles import PROFILES

SERVE_PORT = 8765
START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0
DROP_LOG_LINE = "ASGI callable returned without completing response."


class PortUnavailable(Exception):
    """The address cannot be listened on (e.g. another server already has the port)."""


class SimulatorHandle:
    """A running simulator: its URL, its counters, and its settings."""

    def __init__(self, app: KlingSimulator, base_url: str) -> None:
        self.app = app
        self.base_url = base_url  # "http://127.0.0.1:PORT"; clients append the API path

    @property
    def config(self) -> SimulatorConfig:
        return self.app.config

    @property
    def api_path(self) -> str:
        """The image2video path of the provider it imitates, e.g. "/kling/v1/videos/image2video"."""
        return self.app.account.profile.api_path

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
    with running_app(app, config.port if port is None else port) as base_url:
        yield SimulatorHandle(app, base_url)


@contextmanager
def running_app(app: ASGIApp, port: int = 0) -> Iterator[str]:
    """Serve any ASGI `app` on 127.0.0.1:`port` (0: a free one) in a daemon thread while the
    block runs; yields its base URL "http://127.0.0.1:PORT"."""
    sock = _listening_socket("127.0.0.1", port)
    server = _server(app, log_level="critical", quiet=True)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="simulator-server", daemon=True
    )
    thread.start()
    try:
        _wait_started(server, thread)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.stop()
        thread.join(timeout=STOP_TIMEOUT)
        sock.close()


def serve(
    config: SimulatorConfig | None = None, host: str = "127.0.0.1", port: int | None = None
) -> None:
    """Serve in the foreground until Ctrl-C, on `port`, else `config.port`, else 8765.

    Raises PortUnavailable when the port cannot be bound (e.g. another server has it).
    """
    config = config or SimulatorConfig()
    chosen = port if port is not None else (config.port or SERVE_PORT)
    sock = _listening_socket(host, chosen)
    logging.getLogger("uvicorn.error").addFilter(_without_drop_lines)
    server = _server(KlingSimulator(config), log_level="warning", quiet=False)
    shown = f"[{host}]" if ":" in host else host
    print(banner(config, f"http://{shown}:{sock.getsockname()[1]}"), flush=True)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()


def banner(config: SimulatorConfig, base_url: str) -> str:
    """What `serve` prints: the provider imitated, where, and the credentials it takes."""
    profile = PROFILES[config.profile]
    return "\n".join(
        (
            f"Kling simulator, profile {profile.name} ({profile.description}), on {base_url} "
            "(Ctrl-C stops it)",
            f"  API: POST {base_url}{profile.api_path}, GET {base_url}{profile.api_path}/{{id}}",
            f"  auth: {profile.describe_credentials(config)}",
            f"  tasks: GET {base_url}/_sim/stats?tasks=1 lists every task id by its "
            "external_task_id (the dashboard, for `batchgen adopt`)",
        )
    )


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
    except OSError as exc:
        sock.close()
        raise PortUnavailable(f"cannot listen on {host} port {port}: {exc.strerror}") from exc
    return sock


class _Server(uvicorn.Server):
    """uvicorn's server, told to stop at once: its main loop waits for `stop()` instead of
    only polling `should_exit` every 0.1 s (tests start and stop hundreds of simulators)."""

    _loop: asyncio.AbstractEventLoop | None = None
    _wake: asyncio.Event | None = None

    def stop(self) -> None:
        """Thread-safe: end the main loop now."""
        self.should_exit = True
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None:
            with contextlib.suppress(RuntimeError):  # the loop has already closed
                loop.call_soon_threadsafe(wake.set)

    async def main_loop(self) -> None:
        self._loop, self._wake = asyncio.get_running_loop(), asyncio.Event()
        counter = 0
        should_exit = await self.on_tick(counter)
        while not should_exit:
            counter = (counter + 1) % 864000
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), 0.1)
            should_exit = await self.on_tick(counter)


def _server(app: ASGIApp, log_level: str, quiet: bool) -> _Server:
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
    return _Server(config)


def _wait_started(server: _Server, thread: threading.Thread) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.005)
    if not server.started:
        server.should_exit = True
        raise RuntimeError("the simulator did not start")


def _without_drop_lines(record: logging.LogRecord) -> bool:
    """Hide uvicorn's complaint about the answers the simulator breaks off on purpose."""
    return record.getMessage() != DROP_LOG_LINE
