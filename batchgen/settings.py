"""The settings of a run, from flags and environment, validated once."""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from batchgen.media.qa import QaDepth
from batchgen.progress import Mode
from batchgen.providers import PROFILES, Profile
from batchgen.state.connect import STATE_NAME, database_url

ProviderName = Literal["cometapi", "kling"]


class Settings(BaseModel):
    """Everything a run needs besides the manifest. Credentials are SecretStr: their repr and
    str never show them."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    output: Path = Path("output")
    state: Path | None = None
    database: str | None = None  # a postgresql:// URL: the run's state there, not in a file
    provider: ProviderName = "cometapi"
    base_url: str | None = None  # None: the provider's own
    api_key: SecretStr | None = None  # CometAPI
    access_key: SecretStr | None = None  # Kling
    secret_key: SecretStr | None = None  # Kling
    kling_api_key: SecretStr | None = None  # Kling: an API Key instead of the access/secret keys
    concurrency: int = Field(4, ge=1, le=1000)
    rpm: float | None = Field(None, ge=1, le=1_000_000)  # below 1 a minute, a wait is hours
    task_timeout: float = Field(3600.0, gt=0)
    request_timeout: float = Field(30.0, gt=0, le=3600)
    download_workers: int = Field(4, ge=1, le=64)
    max_video_mb: float = Field(2048.0, gt=0, le=1 << 20)  # a larger download is refused
    qa: QaDepth = "full"  # how each video is checked (media/qa.py)
    skip_invalid: bool = False
    inline_urls: bool = False
    url_timeout: float = Field(60.0, gt=0, le=3600)  # seconds for all of one URL image
    max_cost: float | None = Field(None, ge=0)
    budget: float | None = Field(None, ge=0)  # USD: spent + committed never above it
    prices: Path | None = None  # a price table laid over the package's
    locked: bool = False
    seed: int | None = None
    resend_unfound: float | None = Field(None, gt=0)  # seconds: see --resend-unfound
    retry_moderation: int = Field(0, ge=0, le=10)  # see --retry-moderation
    progress: Mode = "auto"  # see progress.py
    verbose: bool = False  # a line for each job's change too
    callback_url: str | None = None  # sent with every create (needs `listen`)
    listen: str | None = None  # HOST:PORT of the callback receiver (needs `callback_url`)
    callback_secret: SecretStr | None = None  # where the provider signs its callbacks
    # Seconds (min, max) every generation is known to take (the demo's simulator), in place of
    # the table of typical times (runner/generation_times.py).
    known_generation: tuple[float, float] | None = None

    @model_validator(mode="after")
    def _callbacks_in_pairs(self) -> Settings:
        if (self.callback_url is None) != (self.listen is None):
            raise ValueError(
                "--callback-url and --listen go together: the URL the provider calls, and "
                "where this run listens for it (nothing listens unless asked)"
            )
        if self.callback_url is not None:
            callback_path(self.callback_url)
            listen_address(self.listen or "")
        return self

    @model_validator(mode="after")
    def _one_place_for_the_state(self) -> Settings:
        if self.state is not None and self.database is not None:
            raise ValueError(
                "--state names a SQLite file and --database a PostgreSQL database: give one"
            )
        return self

    @field_validator("database")
    @classmethod
    def _postgresql_url(cls, value: str | None) -> str | None:
        if value is not None:
            database_url(value)
        return value

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None:
            http_url(value, "--base-url")
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


MAX_URL = 2000


def http_url(url: str, flag: str) -> None:
    """ValueError naming `flag` unless `url` is an http(s) URL with a host (and a port that
    can be, no blank or control character, at most MAX_URL characters)."""
    shown = url if len(url) <= 60 else f"{url[:57]}..."
    problem = None
    if not url.startswith(("http://", "https://")):
        problem = "must start with http:// or https://"
    elif len(url) > MAX_URL or not url.isprintable() or " " in url:
        problem = f"must be at most {MAX_URL} printable characters, without blanks"
    else:
        try:
            parts = urlsplit(url)
            named = bool(parts.hostname) and (parts.port is None or parts.port > 0)
        except ValueError:
            named = False
        if not named:
            problem = "must name a host (and a port from 1 to 65535, if any)"
    if problem:
        raise ValueError(f"{flag} {problem}, not {shown!r}")


def callback_path(url: str) -> str:
    """The path of a callback URL (http or https, with a host); ValueError otherwise."""
    http_url(url, "--callback-url")
    return urlsplit(url).path or "/"


EVERY_INTERFACE = ("0.0.0.0", "::")


def listen_address(text: str) -> tuple[str, int]:
    """(host, port) of HOST:PORT or [IPV6]:PORT; ValueError otherwise. Every interface is
    listened on only when said in so many words (0.0.0.0 or [::]), never for a missing host."""
    host, _, port = text.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"--listen must be HOST:PORT (e.g. 127.0.0.1:8787), not {text!r}")
    if not host:
        raise ValueError(
            f"--listen {text!r} names no host: say 127.0.0.1:{port} for this machine only "
            f"(behind a reverse proxy or a tunnel), or 0.0.0.0:{port} to listen on every "
            "interface"
        )
    return host, int(port)
