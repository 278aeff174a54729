"""`batchgen simulate`: the built-in Kling simulator served on a loopback port, every setting
of SimulatorConfig an option."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from batchgen.cli import command_summary
from batchgen.cli.options import FINITE, latency_option
from batchgen.errors import UsageError

F = TypeVar("F", bound=Callable[..., Any])

VIDEO_FAULTS = {
    "html": "downloads answered 200 with an HTML page instead of the video",
    "black": "videos whose every frame is black",
    "frozen": "videos whose every frame is the same",
    "short": "videos far shorter than asked",
    "undecodable": "videos whose frame data is mostly garbage",
    "aspect": "videos of another shape than the input image",
    "mute": "videos without audio although sound was asked",
    "missing-video": "tasks that succeed with no video in their result",
}


def video_fault_options(command: F) -> F:
    """--html-rate, --black-rate, ...: the simulator's video faults."""
    for name, meaning in reversed(VIDEO_FAULTS.items()):
        command = click.option(
            f"--{name}-rate",
            type=FINITE,
            default=0.0,
            show_default=True,
            help=f"Share of {meaning}.",
        )(command)
    return command


@click.command(short_help=command_summary("simulate"))
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    type=click.Choice(["127.0.0.1", "localhost", "::1"]),
    help="Loopback address to listen on (the simulator never listens elsewhere).",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8765,
    show_default=True,
    help="Port to listen on; 0 picks a free one.",
)
@click.option(
    "--profile",
    type=click.Choice(["cometapi", "kling"]),
    default="cometapi",
    show_default=True,
    help="Provider to imitate: CometAPI's relay (/kling/v1/…, bearer key) or Kling's own API "
    "(/v1/…, JWT, list and external-id look-up).",
)
@latency_option("Generation time range in seconds (min max).")
@click.option(
    "--slots", type=int, default=4, show_default=True, help="Concurrent tasks before 1303."
)
@click.option("--rpm", type=int, help="Answer 1302 above this many API requests a minute.")
@click.option("--api-key", help="cometapi: the only bearer key accepted [default: any].")
@click.option(
    "--access-key",
    default="sim-access",
    show_default=True,
    help="kling: the access key a JWT must name as `iss` (a test value).",
)
@click.option(
    "--secret-key",
    default="sim-secret",
    show_default=True,
    help="kling: the HS256 secret JWTs are signed with (a test value).",
)
@click.option("--account-error", type=int, help="Answer every create with this code (1000-1304).")
@click.option(
    "--lookup-form",
    type=click.Choice(["path", "query", "none"]),
    help="Where a look-up by external_task_id is answered: in the path, in the query string, "
    "or nowhere [default: nowhere, the stingiest documented behaviour].",
)
@click.option(
    "--refuses-reused-ids/--accepts-reused-ids",
    default=None,
    help="Whether a create reusing an external_task_id is refused (1201) [default: accepted, "
    "and charged again].",
)
@click.option(
    "--reused-id-message",
    default="external_task_id already exists",
    show_default=True,
    help="The message of that refusal.",
)
@click.option(
    "--slots-as-failed-task",
    is_flag=True,
    help="With every slot taken, accept a create and fail its task with 'parallel task over "
    "resource pack limit' (a relay) instead of answering 1303.",
)
@click.option(
    "--fail-mode",
    type=click.Choice(["random", "prompt"]),
    default="random",
    show_default=True,
    help="random: each generation fails with --fail-rate; prompt: moderation refuses the same "
    "prompts every time.",
)
@click.option("--wrapped-answers", is_flag=True, help="Answer queries in new-api's wrapper (E40).")
@click.option(
    "--null-fields", is_flag=True, help="Nulls where objects are expected in tasks (E38)."
)
@click.option(
    "--kling-api-key",
    default="sim-kling-api-key",
    show_default=True,
    help="kling: an API Key accepted beside the JWT (a test value); GET /tasks needs it.",
)
@click.option(
    "--tasks-show-legacy",
    is_flag=True,
    help="kling: GET /tasks lists the /v1 tasks too [default: it does not, as nothing says].",
)
@click.option(
    "--reports-cash", is_flag=True, help="Finished tasks report their cost in cash (billing[])."
)
@click.option(
    "--refused-models",
    multiple=True,
    help="Answer creates naming this model with 1201 'model is not supported' (repeatable).",
)
@click.option(
    "--lists-tasks/--no-task-list",
    default=None,
    help="Whether GET on the route lists the account's tasks [default: kling yes, cometapi no].",
)
@click.option(
    "--fail-rate", type=FINITE, default=0.0, show_default=True, help="Share of failed generations."
)
@click.option(
    "--error-rate",
    type=FINITE,
    default=0.0,
    show_default=True,
    help="Share of API requests answered 5xx without being processed.",
)
@click.option(
    "--reset-before-accept-rate",
    type=FINITE,
    default=0.0,
    show_default=True,
    help="Share of creates dropped before the task is recorded.",
)
@click.option(
    "--reset-after-accept-rate",
    type=FINITE,
    default=0.0,
    show_default=True,
    help="Share of creates recorded whose answer is then dropped.",
)
@click.option(
    "--gateway-timeout-rate",
    type=FINITE,
    default=0.0,
    show_default=True,
    help="Share of creates processed, then answered 524 with an HTML page.",
)
@click.option(
    "--malformed-answer-rate",
    type=FINITE,
    default=0.0,
    show_default=True,
    help="Share of accepted creates answered 200 with cut-off JSON or an HTML page.",
)
@click.option(
    "--slow-rate", type=FINITE, default=0.0, show_default=True, help="Share of slow answers."
)
@click.option(
    "--slow-seconds",
    type=FINITE,
    default=5.0,
    show_default=True,
    help="How late a slow answer comes.",
)
@click.option(
    "--response-delay",
    type=FINITE,
    default=0.0,
    show_default=True,
    help="Seconds added to every API answer.",
)
@click.option(
    "--retry-after",
    type=int,
    help="Seconds in a Retry-After header that about half the throttling 429s carry.",
)
@click.option(
    "--not-found-grace",
    type=FINITE,
    default=0.0,
    show_default=True,
    help="Seconds a new task answers 'not found' (a lagging store).",
)
@click.option(
    "--updated-at-mode",
    type=click.Choice(["task", "query", "overflow"]),
    default="task",
    show_default=True,
    help="updated_at: when the task last changed, when it was queried, or 10^300 ms.",
)
@click.option(
    "--truncate-rate",
    type=FINITE,
    default=0.0,
    show_default=True,
    help="Share of downloads cut short.",
)
@click.option("--url-ttl", type=FINITE, help="Seconds before a video URL expires [default: never].")
@click.option("--video-bytes", type=int, help="Pad every video to about this many bytes.")
@click.option("--callback-secret", help="Sign callbacks (Standard Webhooks) with this secret.")
@click.option(
    "--callback-drop-rate",
    type=FINITE,
    default=0.0,
    show_default=True,
    help="Share of status-change callbacks never sent.",
)
@click.option(
    "--callback-delay",
    type=FINITE,
    default=0.0,
    show_default=True,
    help="Seconds between a status change and its callback.",
)
@click.option(
    "--seed", type=int, default=0, show_default=True, help="Seed for latencies, ids and faults."
)
@video_fault_options
def simulate(host: str, port: int, **options: Any) -> None:
    """Serve the Kling simulator on a loopback port until Ctrl-C: the API of CometAPI's relay
    or of Kling's own (--profile), with latency, slots, limits and faults as switches."""
    from batchgen.simulator import PortUnavailable, SimulatorConfig, serve

    try:
        config = SimulatorConfig(**options)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    try:
        serve(config, host=host, port=port)
    except PortUnavailable as exc:
        raise UsageError(f"{exc}; choose another with --port") from None
