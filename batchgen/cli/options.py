"""The options and arguments several commands share, each defined once, and the Settings made
from them (pydantic's model, loaded by the commands that make one: `status` does not)."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import click

from batchgen.media.qa import QA_DEPTHS
from batchgen.progress import MODES
from batchgen.state.connect import database_url

if TYPE_CHECKING:
    from batchgen.settings import Settings

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_OUTPUT = Path("output")
SECRET_FLAGS = ("api_key", "access_key", "secret_key", "kling_api_key", "callback_secret")


class Finite(click.FloatRange):
    """A float in a range that is a number: `inf`, `-inf` and `nan` are refused by name (a
    range alone lets `inf` past a minimum, and `nan` past both ends)."""

    name = "float"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


FINITE = Finite()
MAX_RPM = 1_000_000


def compose(*decorators: Callable[[Any], Any]) -> Callable[[F], F]:
    """One decorator applying `decorators` in the order they would be written above a def."""

    def apply(command: F) -> F:
        return functools.reduce(lambda f, decorate: decorate(f), reversed(decorators), command)

    return apply


manifest_argument = click.argument("manifest", type=click.Path(path_type=Path, dir_okay=False))
target_argument = click.argument(
    "target", metavar="MANIFEST|RUN|STATE", type=click.Path(path_type=Path, exists=True)
)


def output_option(*names: str, dest: str = "output") -> Callable[[F], F]:
    """The folder holding one sub-folder per run (`-o`, or `names` where `-o` means more)."""
    return click.option(
        *(names or ("--output", "-o")),
        dest,
        type=click.Path(path_type=Path, file_okay=False),
        default=DEFAULT_OUTPUT,
        show_default=True,
        help="Folder that holds one sub-folder per run.",
    )


def latency_option(help: str) -> Callable[[F], F]:
    """The simulator's generation time range, MIN MAX seconds (demo and simulate)."""
    return click.option(
        "--latency",
        type=(FINITE, FINITE),
        metavar="MIN MAX",
        default=(1.0, 3.0),
        show_default=True,
        help=help,
    )


state_option = click.option(
    "--state",
    type=click.Path(path_type=Path, dir_okay=False),
    help="State file [default: OUTPUT/RUN/state.sqlite].",
)


class DatabaseUrl(click.ParamType[str, Any]):
    """A postgresql:// URL (its password never shown back)."""

    name = "url"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        try:
            return database_url(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


database_option = click.option(
    "--database",
    type=DatabaseUrl(),
    metavar="URL",
    envvar="BATCHGEN_DATABASE_URL",
    help="Keep the run's state in this PostgreSQL database (postgresql://USER@HOST/DB; one "
    "schema per run) instead of a state file; needs batchgen[postgres] "
    "(env BATCHGEN_DATABASE_URL).",
)


def json_option(what: str) -> Callable[[F], F]:
    return click.option("--json", "as_json", is_flag=True, help=f"Print {what} as JSON.")


prices_option = click.option(
    "--prices",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="Price table (JSON, same shape as the package's) laid over the built-in one.",
)

provider_choice = click.option(
    "--provider",
    type=click.Choice(["cometapi", "kling"]),
    envvar="BATCHGEN_PROVIDER",
    default="cometapi",
    show_default=True,
    help="cometapi: CometAPI's Kling relay; kling: Kling's own API (env BATCHGEN_PROVIDER).",
)

provider_options = compose(
    provider_choice,
    click.option(
        "--base-url",
        envvar="BATCHGEN_BASE_URL",
        help="API base URL [default: the provider's: https://api.cometapi.com, "
        "https://api-singapore.klingai.com] (env BATCHGEN_BASE_URL).",
    ),
    click.option(
        "--api-key",
        envvar="COMETAPI_KEY",
        show_envvar=True,
        help="CometAPI key (prefer the COMETAPI_KEY environment variable).",
    ),
    click.option(
        "--kling-api-key",
        envvar="KLING_API_KEY",
        show_envvar=True,
        help="Kling API Key, instead of the access and secret keys (prefer the KLING_API_KEY "
        "environment variable).",
    ),
    click.option(
        "--access-key",
        envvar="KLING_ACCESS_KEY",
        show_envvar=True,
        help="Kling access key (prefer the KLING_ACCESS_KEY environment variable).",
    ),
    click.option(
        "--secret-key",
        envvar="KLING_SECRET_KEY",
        show_envvar=True,
        help="Kling secret key (prefer the KLING_SECRET_KEY environment variable).",
    ),
)


class Duration(click.ParamType[float, Any]):
    """A length of time: seconds, or a number with s, m or h ("90s", "30m", "2h")."""

    name = "duration"
    UNITS: ClassVar[dict[str, float]] = {"s": 1.0, "m": 60.0, "h": 3600.0}

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        if isinstance(value, float):
            return value
        text = str(value).strip().lower()
        scale = self.UNITS.get(text[-1:], None)
        number = text[:-1] if scale else text
        try:
            seconds = float(number) * (scale or 1.0)
        except ValueError:
            self.fail(f"{value!r} is not a duration such as 90s, 30m or 2h", param, ctx)
        if not 0 < seconds < 10**9:
            self.fail(f"{value!r} must be more than 0 s", param, ctx)
        return seconds


request_timeout_option = click.option(
    "--request-timeout",
    type=Finite(min=0.1, max=3600),
    default=30.0,
    show_default=True,
    help="Seconds to wait for one API answer.",
)

url_timeout_option = click.option(
    "--url-timeout",
    type=Finite(min=1, max=3600),
    default=60.0,
    show_default=True,
    help="Seconds to download all of one URL image (--inline-urls), however slow the server.",
)

concurrency_option = click.option(
    "--concurrency",
    "-c",
    type=click.IntRange(1, 1000),
    default=4,
    show_default=True,
    help="Provider task slots to use at most.",
)

skip_invalid_option = click.option(
    "--skip-invalid",
    is_flag=True,
    help="Run the valid rows and list the invalid ones instead of refusing.",
)
inline_urls_option = click.option(
    "--inline-urls", is_flag=True, help="Download URL images and send them as base64."
)

tuning_options = compose(
    concurrency_option,
    click.option(
        "--rpm",
        type=Finite(min=1, max=MAX_RPM),
        help="Cap on API requests per minute (at least 1).",
    ),
    click.option(
        "--task-timeout",
        type=Finite(min=1, max=30 * 86400),
        default=3600.0,
        show_default=True,
        help="Seconds to wait for one generation before reporting it as timed out.",
    ),
    request_timeout_option,
    click.option(
        "--max-video-mb",
        type=Finite(min=0.001, max=1 << 20),
        default=2048.0,
        show_default=True,
        help="Refuse a video download larger than this (a provider serving an endless body).",
    ),
    click.option(
        "--qa",
        type=click.Choice(QA_DEPTHS),
        default="full",
        show_default=True,
        help="How each video is checked before its job is done. full: its keyframes and "
        "P-frames decoded (black, frozen and damaged frames found). keyframes: its keyframes "
        "alone, far less decoding (black judged on them only; a clip with one keyframe is "
        "never called frozen; damage between keyframes not seen). off: no check, the videos "
        "are listed as unchecked (a later run that checks checks them where they are). "
        "`verify --qa full` checks a run's videos again where a shallower check looked.",
    ),
    skip_invalid_option,
    inline_urls_option,
    url_timeout_option,
    click.option("--seed", type=int, help="Seed for retry jitter (reproducible runs)."),
    click.option(
        "--retry-moderation",
        type=click.IntRange(0, 10),
        default=0,
        show_default=True,
        help="Send a job refused by the provider's moderation again, for a new generation, up "
        "to this many times (each try is paid; some prompts are refused for good).",
    ),
    click.option(
        "--resend-unfound",
        type=Duration(),
        help="For unattended runs: send again the unknown jobs (a create whose answer was "
        "lost) that no look-up has found for this long, e.g. 30m. Each may be paid twice: the "
        "provider may hold its first task and not show it.",
    ),
    click.option(
        "--progress",
        type=click.Choice(MODES),
        default="auto",
        show_default=True,
        help="auto: a bar on a terminal, else a plain line every 10 s (stderr); json: a JSON "
        "object per line on stdout, alone there; off: notices and the summary; quiet: -q.",
    ),
    click.option("--no-progress", "progress", flag_value="off", help="The same as --progress off."),
    click.option(
        "--quiet",
        "-q",
        "progress",
        flag_value="quiet",
        help="No progress and no informative notices: warnings and the summary only.",
    ),
    click.option("--verbose", "-v", is_flag=True, help="Also a line for each job's change."),
)

run_options = compose(
    output_option(), state_option, database_option, provider_options, tuning_options
)
# adopt and reconcile load the manifest and ask the provider, and run nothing: no run tuning.
settle_options = compose(
    output_option(),
    state_option,
    database_option,
    provider_options,
    request_timeout_option,
    skip_invalid_option,
    inline_urls_option,
)


def settings_from(**flags: Any) -> Settings:
    """Settings from the flags of a command (secrets wrapped so that they never show)."""
    from pydantic import SecretStr, ValidationError

    from batchgen.settings import Settings

    secrets = {name: flags.pop(name, None) for name in SECRET_FLAGS}
    hidden = {name: SecretStr(value) for name, value in secrets.items() if value}
    try:
        return Settings(**hidden, **flags)
    except ValidationError as exc:
        problems = "; ".join(error["msg"].removeprefix("Value error, ") for error in exc.errors())
        raise click.UsageError(problems) from None
