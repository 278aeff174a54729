"""Simulator settings: latency, slots, limits and fault rates. Frozen; change at run time with
`SimulatorHandle.reconfigure`."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class SimulatorConfig:
    seed: int = 0
    latency: tuple[float, float] = (1.0, 3.0)  # generation seconds, uniform in [min, max]
    slots: int = 4  # concurrent tasks before 1303
    rpm: int | None = None  # API requests a minute before 1302
    api_key: str | None = None  # None: any non-empty key is accepted
    account_error: int | None = None  # answer every create with this code (1000-1304)
    fail_rate: float = 0.0  # share of generations that end `failed`
    error_rate: float = 0.0  # share of API requests answered 5xx
    reset_before_accept_rate: float = 0.0  # create dropped before the task is recorded
    reset_after_accept_rate: float = 0.0  # task recorded, answer dropped
    slow_rate: float = 0.0  # share of API answers delayed by slow_seconds
    slow_seconds: float = 5.0
    truncate_rate: float = 0.0  # downloads cut short
    url_ttl: float | None = None  # seconds a video URL stays valid
    response_delay: float = 0.0
    list_endpoint: bool = True
    external_lookup: str = "both"  # both | query | path | none
    video_bytes: int | None = None  # pad videos to about this size (free box)
