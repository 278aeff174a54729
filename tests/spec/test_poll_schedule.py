"""The poll schedule learns generation times from what the run sees: slots stay busy, a
provider clock that moves with our polls cannot stretch it. Pure: simulated tasks, no clock."""

from __future__ import annotations

import random

import pytest

from batchgen.runner.generation_times import Kind, Typical, kind_of, typical
from batchgen.runner.policy import PollConfig, PollSchedule, generation_seconds


def follow(schedule: PollSchedule, generation: float) -> tuple[int, float, float | None]:
    """(polls, seconds between the end and the poll that saw it, last running poll)."""
    at, polls, running = schedule.first_delay(), 1, None
    while at < generation:
        running = at
        at += schedule.next_delay(at)
        polls += 1
    return polls, at - generation, running


def run(times: list[float], schedule: PollSchedule, stamped: bool = False) -> tuple[float, float]:
    """Mean polls per task and mean idle share, learning as a run would; `stamped`: the
    provider's updated_at is the time of our poll (a relay stamping its answers)."""
    polls = idle = 0.0
    for t in times:
        n, late, running = follow(schedule, t)
        provider = t + late if stamped else t
        schedule.learn(running, t + late, provider)
        polls, idle = polls + n, idle + late / t
    return polls / len(times), idle / len(times)


@pytest.mark.parametrize(
    ("name", "low", "high"), [("narrow", 0.95, 1.05), ("wide", 2.0, 5.0), ("real", 100, 250)]
)
def test_slots_idle_about_the_target_share_whatever_the_spread(name, low, high):
    """Once times are learned, a task's end is seen within ~5 % of its length, at ≤ 7 polls."""
    rng = random.Random(5)
    times = [rng.uniform(low, high) for _ in range(600)]
    run(times[:100], schedule := PollSchedule())
    polls, idle = run(times[100:], schedule)
    assert idle <= 0.06 and polls <= 7.0, (name, polls, idle)


def test_a_relay_stamping_updated_at_does_not_stretch_the_schedule():
    """With updated_at = the time of the poll, the idle share stays what it is without it."""
    rng = random.Random(7)
    times = [rng.uniform(2.0, 5.0) for _ in range(600)]
    _, honest = run(times, PollSchedule())
    _, stamped = run(times, PollSchedule(), stamped=True)
    assert stamped <= honest * 1.2 + 0.01


def test_a_provider_figure_outside_what_was_seen_is_not_believed():
    """A provider duration past the poll that saw the end (or at it) gives way to the span."""
    assert generation_seconds(2.0, 3.0, 2.4, 1.0) == 2.4
    assert generation_seconds(2.0, 3.0, 3.0, 1.0) == 2.5
    assert generation_seconds(2.0, 3.0, 7.0, 1.0) == 2.5
    assert generation_seconds(None, 3.0, None, 1.0) == 1.5


def test_a_short_task_first_seen_done_keeps_the_providers_figure():
    """0.3 s tasks first polled at 2 s: the provider's 0.3 s is believed, so the schedule
    learns it at once instead of creeping down by half a poll a task (42 s for 60 jobs)."""
    assert generation_seconds(None, 2.0, 0.3, 0.2) == 0.3
    assert generation_seconds(None, 2.0, 2.0, 0.2) == 1.7  # a stamped figure is not believed


def test_before_any_task_finished_polls_grow_from_the_first():
    """Real generations take minutes: ~20 % growth from 0.5 s sees a 200 s task in ~35 polls."""
    polls, late, _ = follow(PollSchedule(), 200.0)
    assert polls <= 36 and late / 200.0 <= 0.2


def test_with_callbacks_polls_wait_past_the_slowest_time_seen():
    """Callbacks report the ends: the first backup poll comes after 1.2 x the slowest seen."""
    schedule = PollSchedule(PollConfig(backup_after=1.2))
    for seconds in (1.0, 1.1, 0.9):
        schedule.observe(seconds)
    assert schedule.first_delay() == pytest.approx(1.32)
    assert follow(schedule, 1.05)[0] == 1


def test_a_task_slower_than_any_seen_is_still_polled_at_growing_intervals():
    """Past the slowest time seen, intervals grow with the time waited, up to the maximum."""
    schedule = PollSchedule()
    for _ in range(50):
        schedule.observe(2.0)
    waits = []
    at = schedule.first_delay()
    while at < 100:
        wait = schedule.next_delay(at)
        waits.append(wait)
        at += wait
    assert waits == sorted(waits)
    assert waits[-1] <= PollConfig().max_interval
    assert len(waits) < 40


def test_the_fixed_baseline_polls_at_its_interval():
    """The naive baseline of the benches polls every N seconds whatever it learned."""
    schedule = PollSchedule(PollConfig(fixed_interval=5.0))
    assert schedule.first_delay() == schedule.next_delay(12.0) == 5.0


def test_tasks_that_all_take_the_same_time_are_seen_by_one_poll_at_their_end():
    """Every generation 2 s: the first poll comes at 2 s, not a spacing later (idle 0)."""
    schedule = PollSchedule()
    for _ in range(20):
        schedule.observe(2.0)
    assert schedule.first_delay() == pytest.approx(2.0)
    assert follow(schedule, 2.0)[:2] == (1, 0.0)


def test_a_trusted_provider_clock_is_believed_at_the_end_of_the_span():
    """Once a provider figure fell strictly inside a seen span, a task seen done by its first
    poll, right at its end, keeps the provider's time: the schedule does not creep earlier."""
    schedule = PollSchedule()
    assert schedule.learn(None, 2.2, 2.0) not in (2.0, 2.2)  # not yet trusted: the fallback
    schedule.learn(1.8, 2.2, 2.0)
    assert schedule.provider_clock_trusted
    assert schedule.learn(None, 2.01, 2.0) == 2.0
    assert schedule.learn(None, 2.0, 2.02) == 2.0  # never past what was seen


def test_times_guessed_before_the_clock_was_trusted_are_learned_again_once_it_is():
    """Every task 0.3 s on the provider's clock, ended about 0.29 s after the create's answer
    on ours (the run's figures of the short shape of bench/poll_shapes.py). The first tasks,
    seen done by their first poll, are guessed 1.5 polls early while the provider's figure is
    doubted; once a figure inside a seen span earns trust, those guesses are learned again
    from their figures, and every later task is seen by one poll at its end, not two."""
    schedule = PollSchedule()
    for seen_done in (0.337, 0.343, 0.305, 0.312):  # done at their first poll, figure near it
        schedule.learn(None, seen_done, 0.3)
    assert not schedule.provider_clock_trusted
    assert schedule.first_delay() < 0.29  # the guesses: the first poll comes before the end
    schedule.learn(0.294, 0.356, 0.3)  # running at one poll, done at the next: the figure inside
    assert schedule.provider_clock_trusted
    assert schedule.first_delay() == pytest.approx(0.3)
    assert follow(schedule, 0.29)[0] == 1


def test_a_figure_well_before_the_first_poll_that_saw_the_task_done_earns_trust():
    """A task found done by its first poll at 0.5 s, the provider saying 0.3 s: a clock stamped
    by our queries would say about 0.5, so the figure is the task's own; the next tasks are
    polled at 0.3 s, once."""
    schedule = PollSchedule()
    assert schedule.learn(None, 0.505, 0.3) == 0.3
    assert schedule.provider_clock_trusted
    assert schedule.first_delay() == pytest.approx(0.3)
    assert follow(schedule, 0.29)[0] == 1
    stamped = PollSchedule()
    stamped.learn(None, 0.505, 0.5)  # at the span's end: what a stamping relay says
    assert not stamped.provider_clock_trusted


def test_a_stamping_relay_never_earns_trust():
    """updated_at = the time of our poll: the figure is at the end of every span, never inside."""
    rng = random.Random(3)
    times = [rng.uniform(2.0, 5.0) for _ in range(300)]
    schedule = PollSchedule()
    run(times, schedule, stamped=True)
    assert not schedule.provider_clock_trusted


PRO_5S = ("kling-v2-5-turbo", "pro", "5")
PRO_10S = ("kling-v2-5-turbo", "pro", "10")


def test_the_table_gives_a_range_and_its_source_for_every_kind():
    """A 5 s pro clip is expected in 100–250 s (kling-api.md E27), a 10 s one twice that."""
    assert (typical(PRO_5S).low, typical(PRO_5S).high) == (100.0, 250.0)
    assert "E27" in typical(PRO_5S).source
    assert (typical(PRO_10S).low, typical(PRO_10S).high) == (200.0, 500.0)
    assert "inferred" in typical(PRO_10S).source
    assert kind_of({"model_name": "kling-v3", "duration": "5"}) == ("kling-v3", "", "5")


def test_a_kind_never_seen_is_polled_across_its_expected_range():
    """Trusted range 100–250 s, three polls: at 150, 200 and 250 s, then growing."""
    schedule = PollSchedule(PollConfig(hedge=False, expected=lambda kind: typical(PRO_5S)))
    at, polls = schedule.first_delay(PRO_5S), []
    while at < 320:
        polls.append(at)
        at += schedule.next_delay(at, PRO_5S)
    assert polls == pytest.approx([150.0, 200.0, 250.0, 300.0])


def test_a_table_far_too_slow_costs_the_first_task_a_few_polls():
    """The table says minutes, tasks take 1 s: the climb from 0.5 s sees the first within 20 %
    of its end; once learned, the next tasks are seen within two polls."""
    schedule = PollSchedule()
    polls, late, running = follow_kind(schedule, 1.0, PRO_5S)
    assert polls <= 5 and late <= 0.2
    schedule.learn(running, 1.0 + late, 1.0, PRO_5S)
    polls, late, _ = follow_kind(schedule, 1.0, PRO_5S)
    assert polls <= 2 and late <= 0.15


def test_one_task_asks_for_its_siblings_until_a_first_one_ends():
    """While climbing, a task is not asked about at an age a sibling was found running at."""
    schedule = PollSchedule()
    schedule.seen_running(1.2, PRO_5S)
    assert schedule.covered(1.0, PRO_5S) and schedule.covered(1.2, PRO_5S)
    assert schedule.covered(1.3, PRO_5S)  # within half a step: due at the same time
    assert not schedule.covered(1.4, PRO_5S)
    assert not schedule.covered(1.0, PRO_10S)
    schedule.observe(1.5, PRO_5S)
    assert not schedule.covered(1.0, PRO_5S)


def test_a_kind_not_seen_yet_is_expected_as_the_kinds_seen_compare_with_the_table():
    """5 s clips end at 1.75 s, a hundredth of their range's middle: 10 s clips are expected
    in 2–5 s, and their first poll comes at 3 s."""
    schedule = PollSchedule()
    schedule.observe(1.75, PRO_5S)
    assert schedule.expected(PRO_10S) == pytest.approx(3.5)
    assert schedule.first_delay(PRO_10S) == pytest.approx(3.0)


def test_the_demos_known_range_sees_a_first_wave_at_about_two_polls_a_task():
    """Generations of 1–3 s, a range known beforehand: three polls across it, two on average."""
    schedule = PollSchedule(PollConfig(hedge=False, expected=lambda kind: Typical(1, 3, "demo")))
    rng = random.Random(11)
    polls = [follow_kind(schedule, rng.uniform(1.0, 3.0), PRO_5S)[0] for _ in range(400)]
    assert sum(polls) / len(polls) <= 2.2


def follow_kind(
    schedule: PollSchedule, generation: float, kind: Kind
) -> tuple[int, float, float | None]:
    """(polls, seconds between the end and the poll that saw it, last running poll)."""
    at, polls, running = schedule.first_delay(kind), 1, None
    while at < generation:
        running = at
        at += schedule.next_delay(at, kind)
        polls += 1
    return polls, at - generation, running
