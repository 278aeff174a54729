"""Progress tells the truth: counts from the run's events, lines at a steady pace in logs."""

from __future__ import annotations

import io
import json
from itertools import pairwise

import pytest

from batchgen.events import Heartbeat, JobChanged, Notice, RunFinished, RunStarted
from batchgen.progress import LineProgress, Tally, bar_line, duration, progress_for
from batchgen.status import JobStatus as S


def started(pending: int, done: int = 0) -> RunStarted:
    counts = dict.fromkeys(S, 0)
    counts[S.PENDING], counts[S.DONE] = pending, done
    return RunStarted(pending + done, counts)


def move(job: int, old: S, new: S) -> JobChanged:
    return JobChanged(f"j{job}", f"r{job}", old, new)


def lifecycle(job: int) -> list[JobChanged]:
    path = [S.PENDING, S.SUBMITTING, S.SUBMITTED, S.RUNNING, S.DOWNLOADING, S.DONE]
    return [move(job, a, b) for a, b in pairwise(path)]


def test_in_flight_never_exceeds_what_is_held_and_ends_at_zero():
    """Four slots, thirty jobs: in flight stays at most four and is zero at the end."""
    tally = Tally(clock=lambda: 0.0)
    tally.apply(started(30))
    seen = []
    for wave in range(0, 30, 4):
        jobs = range(wave, min(wave + 4, 30))
        for job in jobs:
            for event in lifecycle(job)[:3]:
                tally.apply(event)
        seen.append(tally.in_flight)
        for job in jobs:
            for event in lifecycle(job)[3:]:
                tally.apply(event)
    assert max(seen) == 4 and tally.in_flight == 0
    assert tally.counts[S.DONE] == 30 and tally.finished == 30


def test_rate_and_eta_follow_the_jobs_finished_this_run():
    """Two jobs finished in a minute, eight left: 2 jobs/min, four minutes to go."""
    now = [0.0]
    tally = Tally(clock=lambda: now[0])
    tally.apply(started(10))
    assert tally.eta() is None
    for job in (0, 1):
        for event in lifecycle(job):
            tally.apply(event)
    now[0] = 60.0
    assert round(tally.rate() * 60, 6) == 2.0 and round(tally.eta() or 0) == 240
    assert "2/10 done" in tally.line() and "ETA 4m00s" in tally.line()


def test_a_log_gets_a_line_at_least_every_ten_seconds_and_at_the_end():
    """With stderr not a terminal, heartbeats alone produce a line every interval."""
    now = [0.0]
    out = io.StringIO()
    log = LineProgress(out, interval=10.0, clock=lambda: now[0])
    log(started(3))
    for second in range(1, 61):
        now[0] = float(second)
        log(Heartbeat(slots_cap=4))
    log(RunFinished(dict.fromkeys(S, 0), 60.0))
    lines = out.getvalue().splitlines()
    assert len(lines) == 1 + 6 + 1
    assert all("0/3 done" in line for line in lines)


def test_json_progress_is_one_object_per_line():
    """--progress json writes JSON objects a log collector can read, notices included."""
    out = io.StringIO()
    log = LineProgress(out, as_json=True, clock=lambda: 0.0)
    log(started(2))
    log(Notice("throttled", "warning"))
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    assert records[0]["event"] == "start" and records[0]["waiting"] == 2
    assert records[1] == {**records[1], "event": "notice", "message": "throttled"}


def test_progress_off_still_shows_notices():
    """Turning progress off keeps the warnings a user must read."""
    out = io.StringIO()
    listener = progress_for("off", out)
    listener(started(1))
    listener(Notice("skipped invalid row 'r1'", "warning"))
    assert out.getvalue() == "warning: skipped invalid row 'r1'\n"


def test_a_pipe_gets_plain_lines_not_a_bar():
    """auto mode on a stream that is not a terminal writes plain lines."""
    assert isinstance(progress_for("auto", io.StringIO()), LineProgress)


def test_durations_read_as_people_write_them():
    """45s, 3m20s, 1h02m."""
    assert [duration(45), duration(200), duration(3725)] == ["45s", "3m20s", "1h02m"]


def test_a_line_says_when_creates_wait_on_a_throttle_or_a_failing_provider():
    """The heartbeat's pauses show in the line: a throttle first, else failures in a row."""
    tally = Tally(clock=lambda: 0.0)
    tally.apply(started(3))
    tally.apply(Heartbeat(slots_cap=4, paused_for=12.0))
    assert "the provider is failing, creates resume in 12s" in tally.line()
    tally.apply(Heartbeat(slots_cap=4, throttled_for=3.0, paused_for=12.0))
    assert "throttled, creates resume in 3s" in tally.line()
    assert tally.fields()["paused_for_s"] == 12.0


def tally_of(done: int, failed: int, unknown: int, pending: int, now: float = 60.0) -> Tally:
    """A tally that has seen these jobs finish in its first `now` seconds."""
    clock = [0.0]
    tally = Tally(clock=lambda: clock[0])
    tally.apply(started(done + failed + unknown + pending))
    ends = [S.DONE] * done + [S.FAILED] * failed + [S.UNKNOWN] * unknown
    for job, end in enumerate(ends):
        tally.apply(move(job, S.PENDING, end))
    clock[0] = now
    return tally


def test_the_bar_counts_done_out_of_total_with_failures_apart():
    """22 done, 5 failed, 1 unknown of 48: the bar says 22/48 done and draws the failures
    apart from the done jobs (▒), never as progress."""
    line = bar_line(tally_of(22, 5, 1, 20), 80)
    assert line.startswith("22/48 done |")
    bar = line.split("|")[1]
    assert bar.count("▒") == round(6 / 48 * len(bar)) and bar.count("█") == round(
        22 / 48 * len(bar)
    )
    assert "5 failed" in line and "1 unknown" in line


@pytest.mark.parametrize("width", [60, 80, 120])
def test_the_bar_is_whole_and_readable_at_any_width(width):
    """At 60, 80 or 120 columns the line fits, ends with the time left (never cut to
    "unknow"), and keeps at least ten cells of bar."""
    line = bar_line(tally_of(22, 5, 1, 20), width)
    assert len(line) <= width
    assert line.endswith("ETA 43s") and "1 unknown" in line  # 28 ended in 60 s, 20 left
    assert len(line.split("|")[1]) >= 10


def test_no_time_left_is_shown_once_the_run_is_stopping():
    """After Ctrl-C (or any stop) the bar and the lines say "stopping", with no ETA."""
    tally = tally_of(3, 0, 0, 9)
    tally.apply(Heartbeat(slots_cap=4, stopping="interrupted"))
    assert tally.eta() is None
    assert bar_line(tally, 80).endswith("stopping (interrupted)")
    assert "ETA" not in tally.line() and "stopping (interrupted)" in tally.line()


def test_colour_only_where_asked_and_never_in_a_pipe():
    """The bar is coloured on a terminal only: plain text in a pipe, in logs, and in notices."""
    tally = tally_of(2, 1, 0, 3)
    assert "\033[" not in bar_line(tally, 80) and "\033[" in bar_line(tally, 80, colour=True)
    out = io.StringIO()
    listener = progress_for("auto", out)
    listener(started(1))
    listener(Notice("careful", "warning"))
    assert "\033[" not in out.getvalue()


def test_quiet_shows_only_warnings_and_verbose_each_job():
    """-q keeps warnings and drops informative notices; -v adds a line per job change."""
    out = io.StringIO()
    quiet = progress_for("quiet", out)
    quiet(started(1))
    quiet(Notice("kept the earlier video"))
    quiet(Notice("throttled", "warning"))
    assert out.getvalue() == "warning: throttled\n"
    out = io.StringIO()
    verbose = progress_for("off", out, verbose=True)
    verbose(move(1, S.RUNNING, S.FAILED))
    assert out.getvalue() == "r1: running -> failed\n"
