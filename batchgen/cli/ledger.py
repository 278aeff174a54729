"""`batchgen runs` and `batchgen account`: what the account ledger knows (state/ledger.py)."""

from __future__ import annotations

import json
from typing import Any

import click

from batchgen.cli import command_summary
from batchgen.cli.options import database_option, json_option, provider_options, settings_from
from batchgen.errors import UsageError
from batchgen.results.accounts import account_lines, accounts_json, runs_json, runs_lines
from batchgen.state.ledger import Ledger, ledger_path


@click.command(short_help=command_summary("runs"))
@json_option("the runs")
@database_option
def runs(as_json: bool, database: str | None) -> None:
    """Every run the account ledger knows (it records each run started on this machine, in
    ~/.local/state/batchgen/ledger.sqlite or BATCHGEN_LEDGER; with --database, every run
    kept in that database): name, state, jobs per status, money spent, last active."""
    with Ledger.open(database) as ledger:
        found = runs_json(ledger)
    if as_json:
        click.echo(json.dumps(found, indent=2))
    else:
        click.echo("\n".join(runs_lines(found)))


@click.command(short_help=command_summary("account"))
@click.option(
    "--slots",
    type=click.IntRange(0, 10_000),
    help="Set the account's cap on tasks in flight, shared by all its runs on this machine "
    "(0: learn it from the provider's 1303 answers again). Needs the account's credentials.",
)
@json_option("the accounts")
@database_option
@provider_options
def account(slots: int | None, as_json: bool, database: str | None, **flags: Any) -> None:
    """Each account's slots (the cap, and which runs hold them) and what its tasks cost today
    and in total. With credentials, only that account (the ledger holds a fingerprint of them,
    never the key)."""
    named = None
    if _has_credentials(flags):
        from batchgen import pipeline  # a run's modules: only to name an account by its keys

        named = pipeline.account(settings_from(**flags)).fingerprint
    elif slots is not None:
        raise UsageError(
            "--slots needs the account's credentials: --api-key (or COMETAPI_KEY), or the "
            "Kling keys"
        )
    with Ledger.open(database) as ledger:
        if slots is not None and named is not None:
            settings = settings_from(**flags)
            ledger.note_account(named, settings.provider, settings.api_base_url)
            ledger.set_slots(named, slots or None)
        found = accounts_json(ledger, named)
    if as_json:
        click.echo(json.dumps(found, indent=2))
        return
    if slots is not None:
        click.echo(f"slots of account {named[:12] if named else ''}: {slots or 'learned'}")
    click.echo("\n".join(account_lines(found)))
    click.echo(f"(ledger: {ledger.db.shown if database else ledger_path()})")


def _has_credentials(flags: dict[str, Any]) -> bool:
    names = ("api_key", "kling_api_key", "access_key", "secret_key")
    return any(flags.get(name) for name in names)
