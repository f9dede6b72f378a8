"""DueTable answers what the per-metric check answered: the same metrics, at the same steps, in order."""

from __future__ import annotations

import random
from dataclasses import dataclass

import metricreg as mr
from metricreg.due import DueTable
from metricreg.schedules import NEVER, Every, LogSpaced, Predicate, Schedule


@dataclass(eq=True)
class Odd(Schedule):
    """An unhashable user schedule (eq without frozen): due at odd steps."""

    def next_due(self, step: int) -> int:
        return step if step % 2 else step + 1

    def describe(self) -> str:
        return "odd steps"


@dataclass
class Fake:
    schedule: Schedule
    disabled: bool = False


def reference(metrics, steps):
    """The per-metric check the Monitor made before: next due per metric, advanced when run."""
    next_due = [m.schedule.next_due(0) if not isinstance(m.schedule, Predicate) else None for m in metrics]
    out = []
    for step in steps:
        due = []
        for i, metric in enumerate(metrics):
            if next_due[i] is None:
                due.append(metric)
            elif next_due[i] <= step:
                next_due[i] = metric.schedule.next_due(step + 1)
                due.append(metric)
        out.append((due, min((d for d in next_due if d is not None), default=NEVER)))
    return out


def test_due_metrics_match_the_per_metric_check_on_skipping_steps():
    schedules = [Every(10), Every(100), Every(10), Every(100, start=99), LogSpaced(4, 50), Every(7, start=3)]
    metrics = [Fake(s) for s in schedules] + [Fake(Predicate(lambda s: s % 13 == 0)), Fake(Odd()), Fake(Odd())]
    rng = random.Random(0)
    steps, step = [], 0
    while step < 3000:  # every step at first, then jumps of up to 40 steps (a loop that calls step() rarely)
        steps.append(step)
        step += 1 if step < 300 else rng.randint(1, 40)
    table = DueTable(metrics)
    assert len(table.cohorts) == 7 and table.predicates  # Every(10) and Every(100) shared; each Odd alone
    for step, (due, next_due) in zip(steps, reference(metrics, steps), strict=True):
        assert table.due(step) == due, step  # same metrics, table order
        assert table.next_due() == table.next == next_due, step


def test_a_cohort_whose_metrics_are_all_disabled_no_longer_makes_steps_due():
    a, b, c = Fake(Every(5)), Fake(Every(5)), Fake(Every(7))
    table = DueTable([a, b, c])
    table.due(0)
    assert table.next_due() == 5
    table.disabled(a)
    assert table.next_due() == 5  # b still runs every 5
    table.disabled(b)
    assert table.next_due() == table.next == 7


def test_a_monitor_with_a_disabled_metric_stops_stopping_at_its_steps(tmp_path):
    calls = []

    def broken(loss):
        raise ValueError("broken")

    def counted(loss):
        calls.append(loss)

    class Plugin:
        @mr.hookimpl
        def metricreg_register_metrics(self, register):
            register(mr.Metric("broken", compute=broken, every=3))
            register(mr.Metric("counted", compute=counted, every=10))

    with mr.Monitor(tmp_path, plugins=[Plugin()], builtins=False, max_failures=2) as mon:
        for step in range(31):
            mon.step(step, loss=float(step))
        assert mon.errors["broken"]["disabled"] and mon.errors["broken"]["count"] == 2
        assert mon.is_due(40) and not mon.is_due(33)  # only "counted" is left: due at 40, not at 33
    assert calls == [0.0, 10.0, 20.0, 30.0]


def test_a_metric_whose_input_is_missing_runs_once_it_is_given_or_derivable(tmp_path, caplog):
    """The due lists leave out metrics that cannot run with the step's input names; they run again as soon as
    the inputs are there, given or derived (``total`` from ``parts``), and the skip is reported once."""
    calls = []

    class Plugin:
        @mr.hookimpl
        def metricreg_register_inputs(self, register):
            register("total", lambda parts: sum(parts))

        @mr.hookimpl
        def metricreg_register_metrics(self, register):
            register(mr.Metric("masked", compute=lambda mask, step: calls.append(("masked", step)), every=1))
            register(mr.Metric("summed", compute=lambda total, step: calls.append(("summed", step)), every=1))

    caplog.set_level("DEBUG", logger="metricreg")
    with mr.Monitor(tmp_path, plugins=[Plugin()], builtins=False, inputs=["parts", "mask"]) as mon:
        for step in range(4):
            mon.step(step, loss=1.0)
        mon.step(4, loss=1.0, mask=1)
        mon.step(5, loss=1.0, parts=[1, 2])
        mon.step(6, total=3, mask=1)
        mon.step(7, loss=1.0)
    assert calls == [("masked", 4), ("summed", 5), ("masked", 6), ("summed", 6)]  # derived at 5, given at 6
    assert caplog.text.count("masked skipped at step 0: input 'mask' not given") == 1
    assert caplog.text.count("summed skipped at step 0: input 'total' not given") == 1
    assert "skipped at step 2" not in caplog.text
