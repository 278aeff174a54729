"""`batchgen demo`: the packaged demo manifest (six clips from three images, shipped in
batchgen/data/demo/) run against the built-in simulator of either provider."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from batchgen.errors import UsageError

if TYPE_CHECKING:
    from batchgen.settings import ProviderName, Settings
    from batchgen.simulator import SimulatorConfig

DEMO_MANIFEST = Path(__file__).parent / "data" / "demo" / "demo.yaml"
DEMO_SEED = 7
SIMULATOR_API_KEY = "sk-simulator"  # the cometapi profile takes any key
SIMULATOR_ACCESS_KEY = "sim-access"  # the kling profile's test credentials
SIMULATOR_SECRET_KEY = "sim-secret"


def demo_simulator(
    provider: ProviderName, latency: tuple[float, float], slots: int
) -> SimulatorConfig:
    """The simulator a demo runs against: `provider`'s profile, its test credentials.
    UsageError for a latency or slots it cannot have."""
    from batchgen.simulator import SimulatorConfig  # the server's modules load only here

    try:
        return SimulatorConfig(
            seed=DEMO_SEED,
            profile=provider,
            latency=latency,
            slots=slots,
            access_key=SIMULATOR_ACCESS_KEY,
            secret_key=SIMULATOR_SECRET_KEY,
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def demo_settings(
    base_url: str,
    output: Path,
    provider: ProviderName,
    slots: int,
    latency: tuple[float, float] | None = None,
) -> Settings:
    """The settings of a demo run against the simulator at `base_url`, using all its slots;
    its polls start from the simulator's `latency`, known here, not from the table of real
    generation times (minutes, where the simulator takes seconds)."""
    from pydantic import SecretStr

    from batchgen.settings import Settings  # loaded here: `status` reads DEMO_MANIFEST only

    credentials = (
        {
            "access_key": SecretStr(SIMULATOR_ACCESS_KEY),
            "secret_key": SecretStr(SIMULATOR_SECRET_KEY),
        }
        if provider == "kling"
        else {"api_key": SecretStr(SIMULATOR_API_KEY)}
    )
    return Settings(
        output=output,
        provider=provider,
        base_url=base_url,
        concurrency=slots,
        known_generation=latency,
        **credentials,
    )
