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
