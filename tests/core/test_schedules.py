"""Schedules: next_due must agree with a brute-force reading of is_due."""

import itertools

import pytest

import metricreg as mr
from metricreg.schedules import NEVER, Predicate, as_schedule


def brute_next(schedule, step, limit=20000):
    for s in range(step, limit):
        if schedule.is_due(s):
            return s
    return NEVER


@pytest.mark.parametrize("n,start", [(1, 0), (7, 0), (100, 0), (10, 35)])
def test_every_due_steps(n, start):
    sched = mr.every(n, start=start)
    due = [s for s in range(0, 400) if sched.is_due(s)]
    assert due == [s for s in range(start, 400, n)]
    for step in range(0, 400, 3):
        assert sched.next_due(step) == brute_next(sched, step)


def test_log_spaced_is_dense_early_and_capped_later():
    sched = mr.log_spaced(per_decade=10, max_every=100)
    due = [s for s in range(0, 3000) if sched.is_due(s)]
    assert due[:6] == [0, 1, 2, 3, 4, 5]
    gaps = [b - a for a, b in itertools.pairwise(due)]
    assert max(gaps) <= 100
    assert gaps == sorted(gaps)  # spacing never shrinks
    assert due[-1] >= 2900
    for step in range(0, 3000, 37):
        assert sched.next_due(step) == brute_next(sched, step, 4000)


def test_on_event_counts_occurrences():
    sched = mr.on("eval", 2)
    assert sched.event == "eval"
    assert [c for c in range(6) if sched.is_due(c)] == [0, 2, 4]


@pytest.mark.parametrize("bad", [0, -5, 1.5, True, "often"])
def test_bad_schedules_are_rejected(bad):
    with pytest.raises((TypeError, ValueError)):
        as_schedule(bad)


def test_predicate_schedule_checks_every_step():
    sched = as_schedule(lambda s: s % 3 == 1)
    assert isinstance(sched, Predicate)
    assert [s for s in range(10) if sched.is_due(s)] == [1, 4, 7]
