"""The settings of a run, from flags and environment, validated once."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from batchgen.output import STATE_NAME
from batchgen.progress import Mode
from batchgen.providers import PROFILES, Profile

ProviderName = Literal["cometapi", "kling"]


class Settings(BaseModel):
    """Everything a run needs besides the manifest. Credentials are SecretStr: their repr and
    str never show them."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    output: Path = Path("output")
    state: Path | None = None
    provider: ProviderName = "cometapi"
    base_url: str | None = None  # None: the provider's own
    api_key: SecretStr | None = None  # CometAPI
    access_key: SecretStr | None = None  # Kling
    secret_key: SecretStr | None = None  # Kling
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
    progress: Mode = "auto"  # see progress.py

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError(f"--base-url must start with http:// or https://, not {value!r}")
        return value

    @property
    def profile(self) -> Profile:
        return PROFILES[self.provider]

    @property
    def api_base_url(self) -> str:
        return self.base_url or self.profile.default_base_url

    def run_dir(self, run_name: str) -> Path:
        return self.output / run_name

    def state_path(self, run_name: str) -> Path:
        return self.state or self.run_dir(run_name) / STATE_NAME
