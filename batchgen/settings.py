"""The settings of a run, from flags and environment, validated once."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from batchgen.kling import DEFAULT_BASE_URL
from batchgen.output import STATE_NAME


class Settings(BaseModel):
    """Everything a run needs besides the manifest. The API key is a SecretStr: its repr and
    str never show it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    output: Path = Path("output")
    state: Path | None = None
    base_url: str = DEFAULT_BASE_URL
    api_key: SecretStr | None = None
    concurrency: int = Field(4, ge=1, le=1000)
    rpm: float | None = Field(None, gt=0)
    task_timeout: float = Field(3600.0, gt=0)
    request_timeout: float = Field(30.0, gt=0)
    download_workers: int = Field(4, ge=1, le=64)
    skip_invalid: bool = False
    inline_urls: bool = False
    max_cost: float | None = Field(None, ge=0)
    prices: Path | None = None  # a price table laid over the package's
    locked: bool = False
    seed: int | None = None
    progress: bool | None = None  # None: a bar when stderr is a terminal

    def run_dir(self, run_name: str) -> Path:
        return self.output / run_name

    def state_path(self, run_name: str) -> Path:
        return self.state or self.run_dir(run_name) / STATE_NAME
