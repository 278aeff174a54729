"""The poll schedule learns the generation times: few polls per task, little delay after a
task ends. Pure: simulated tasks, no clock."""

from __future__ import annotations

import random

import pytest

from batchgen.policy import PollConfig, PollSchedule


def follow(schedule: PollSchedule, generation: float) -> tuple[int, float]:
    """(polls, seconds between the end and the poll that saw it) for one task."""
    at, polls = schedule.first_delay(), 1
    while at < generation:
        at += schedule.next_delay(at)
        polls += 1
    return polls, at - generation


def run(times: list[float], schedule: PollSchedule) -> tuple[float, float]:
    """Mean polls per task and mean delay as a share of the generation time."""
    polls = delays = 0.0
    for t in times:
        n, late = follow(schedule, t)
        polls, delays = polls + n, delays + late / t
        schedule.observe(t)
    return polls / len(times), delays / len(times)


def test_equal_generation_times_are_caught_by_the_first_poll():
    polls, delay = run([2.0] * 300, PollSchedule())
    assert polls < 1.05
    assert delay < 0.02


@pytest.mark.parametrize("low, high", [(1.0, 10.0), (60.0, 300.0)])
def test_a_wide_spread_costs_under_two_polls_and_slow_tasks_are_seen_soon(low, high):
    rng = random.Random(5)
    schedule = PollSchedule()
    polls, _ = run([rng.uniform(low, high) for _ in range(2000)], schedule)
    assert polls <= 2.0
    slower_than_median = [rng.uniform(schedule.expected, high) for _ in range(500)]
    assert max(follow(schedule, t)[1] / t for t in slower_than_median) < 0.35


def test_a_task_slower_than_any_seen_is_still_polled_at_growing_intervals():
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
    schedule = PollSchedule(PollConfig(fixed_interval=5.0))
    assert schedule.first_delay() == schedule.next_delay(12.0) == 5.0
