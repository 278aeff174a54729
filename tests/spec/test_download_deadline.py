"""Downloads before the provider forgets: a video made but not yet downloaded shows, in
`status`, the day the provider clears it (30 days after its task ended), with a warning from
seven days before."""

from __future__ import annotations

import json

import pytest

from batchgen.jobs import make_job
from batchgen.results.overview import overview_of
from batchgen.state.changes import Accepted, Generated, Submitting
from batchgen.state.store import Store
from batchgen.status import JobStatus
from tests.conftest import run_cli

DAY_MS = 86_400_000
NOW = 1_800_000_000.0  # Unix seconds


def state_with_a_video_made_days_ago(tmp_path, days: float) -> Store:
    """A state with one job done at the provider `days` before NOW, not downloaded, and one
    still pending."""
    store = Store.open(tmp_path / "run" / "state.sqlite")
    made, waiting = (make_job({"prompt": f"p{i}", "image": "x"}, f"r{i}") for i in range(2))
    store.add_jobs([made, waiting])
    ended = int(NOW * 1000 - days * DAY_MS)
    store.apply(made.job_id, Submitting(f"bg-{made.job_id}", 1.0))
    store.apply(made.job_id, Accepted("task-1", JobStatus.SUBMITTED, ended - 60_000))
    store.apply(made.job_id, Generated("https://cdn.example/v.mp4", "5", "1", ended))
    return store


@pytest.mark.parametrize(("days", "left", "warned"), [(2, 28, False), (24, 6, True)])
def test_status_shows_when_an_undownloaded_video_expires_and_warns_within_a_week(
    tmp_path, days, left, warned
):
    """Made 2 days ago: 28 days left, said plainly; made 24 days ago: 6 left, a warning."""
    with state_with_a_video_made_days_ago(tmp_path, days) as store:
        view = overview_of(store, 20, now=NOW, run_command="`batchgen run m.yaml`")
    line = next(line for line in view.lines(lambda _: "") if "not downloaded yet" in line)
    assert f"({left} day(s) left)" in line and "`batchgen run m.yaml` downloads them" in line
    assert line.startswith("warning: ") is warned
    assert view.as_json(lambda _: "")["not_downloaded"]["warning"] is warned


def test_status_of_a_run_with_everything_downloaded_says_nothing_of_deadlines(tmp_path):
    """No video waits for its download: no deadline line, and zero in --json."""
    with Store.open(tmp_path / "state.sqlite") as store:
        store.add_jobs([make_job({"prompt": "p", "image": "x"}, "r")])
        view = overview_of(store, 20, now=NOW)
    assert not any("not downloaded" in line for line in view.lines(lambda _: ""))
    assert view.as_json(lambda _: "")["not_downloaded"]["videos"] == 0


def test_status_command_prints_the_deadline(tmp_path, capsys):
    """`batchgen status RUN` prints the line, and `--json` the figures."""
    state_with_a_video_made_days_ago(tmp_path, 1).close()
    assert run_cli("status", tmp_path / "run") == 0
    assert "not downloaded yet: 1 video(s) made and paid for" in capsys.readouterr().out
    assert run_cli("status", tmp_path / "run", "--json") == 0
    assert json.loads(capsys.readouterr().out)["not_downloaded"]["videos"] == 1
