"""`main`: expected failures end with their message and exit code, never a traceback."""

from __future__ import annotations

import pytest

from batchgen.cli import cli
from batchgen.errors import AccountError, UsageError
from tests.conftest import run_cli


def raising(error: BaseException):
    """A stand-in for the click group's `main` that fails with `error`."""

    def main(*args, **kwargs):
        raise error

    return main


@pytest.mark.parametrize(
    ("error", "code", "message"),
    [
        (
            ExceptionGroup("task group", [UsageError("manifest not found: x.yaml")]),
            2,
            "manifest not found: x.yaml",
        ),
        (
            BaseExceptionGroup("outer", [ExceptionGroup("inner", [AccountError("1102: balance")])]),
            3,
            "1102: balance",
        ),
    ],
)
def test_an_error_a_task_group_wrapped_ends_with_its_message_and_exit_code(
    monkeypatch, capsys, error, code, message
):
    """A single batchgen error inside (nested) exception groups is shown as itself."""
    monkeypatch.setattr(cli, "main", raising(error))
    assert run_cli("status", ".") == code
    assert capsys.readouterr().err == f"error: {message}\n"


def test_an_unexpected_error_is_not_hidden(monkeypatch):
    """A bug (not a batchgen error) still surfaces with its traceback."""
    group = ExceptionGroup("task group", [RuntimeError("a bug")])
    monkeypatch.setattr(cli, "main", raising(group))
    with pytest.raises(ExceptionGroup):
        run_cli("status", ".")


def test_a_damaged_ledger_is_named_with_what_to_do_not_a_traceback(tmp_path, monkeypatch, capsys):
    """A ledger file SQLite finds malformed (as two runs of an older batchgen could leave it)
    ends `batchgen account` with exit 2 and one message naming the file and what to do."""
    from batchgen.state.ledger import Ledger

    path = tmp_path / "ledger.sqlite"
    with Ledger.open(path) as ledger:
        for n in range(200):
            ledger.note_account(f"acct-{n:03d}", "cometapi", "http://127.0.0.1:9")
    data = bytearray(path.read_bytes())
    page = 4096
    data[2 * page : 4 * page] = b"\xa5" * (2 * page)  # pages of the accounts table
    path.write_bytes(bytes(data))
    monkeypatch.setenv("BATCHGEN_LEDGER", str(path))
    assert run_cli("account") == 2
    err = capsys.readouterr().err
    assert f"the file {path} is damaged" in err and ".recover" in err
    assert "Traceback" not in err
