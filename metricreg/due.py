"""Which step metrics are due: one schedule check per distinct schedule, not one per metric.

Why: the ~50 default metrics share about ten schedules (every 10, 20, 50, 100, 1000 steps...).
Checking each metric's next due step and advancing it costs the training thread ~15 µs a due
step (a loop over every metric and a ``next_due`` call per due one, then a minimum over all of
them); here metrics with equal schedules form one cohort, whose due step is checked and
advanced once, and the due metrics of each combination of due cohorts are listed once, in
table order (the order the Monitor runs and writes them in).

The answer is the one the per-metric check gave: a metric with a periodic schedule is due at
the first step at or after its next due step (so a loop that skips steps still runs it, late),
and its next due step is then ``schedule.next_due(step + 1)``. Predicate schedules are asked at
every step by the Monitor itself: they are in every list.

The lists also leave out the metrics that cannot run with the step's input names (a required
input neither given nor derivable: psnr without images, masking without a mask), which the
Monitor would otherwise visit and skip at every due step; ``runnable`` answers that, once per
combination of due cohorts and input names (a loop passes the same names at every step).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from metricreg.schedules import NEVER, Predicate

_MAX_LISTS = 256  # distinct combinations of due cohorts kept (a handful in practice)


class Cohort:
    """The metrics of one schedule: their common next due step and how many are still enabled."""

    __slots__ = ("alive", "index", "next_due", "schedule")

    def __init__(self, index: int, schedule: Any) -> None:
        self.index = index
        self.schedule = schedule
        self.next_due = schedule.next_due(0)
        self.alive = 0


class DueTable:
    """The step metrics (objects with ``schedule`` and ``disabled``), grouped by schedule."""

    def __init__(
        self, metrics: Sequence[Any], runnable: Callable[[Any, tuple[str, ...], int], bool] | None = None
    ) -> None:
        self.metrics = list(metrics)
        self._runnable = runnable  # (metric, input names, step): False leaves it out of the step's list
        self.cohorts: list[Cohort] = []
        self._member_of: list[Cohort | None] = []  # per metric, in table order; None: a predicate
        by_schedule: dict[Any, Cohort] = {}
        for metric in self.metrics:
            schedule = metric.schedule
            if isinstance(schedule, Predicate):
                self._member_of.append(None)
                continue
            try:
                key: Any = (type(schedule), schedule)
                cohort = by_schedule.get(key)
            except TypeError:  # an unhashable schedule is a cohort of its own
                key, cohort = id(schedule), None
            if cohort is None:
                cohort = by_schedule[key] = Cohort(len(self.cohorts), schedule)
                self.cohorts.append(cohort)
            cohort.alive += 1
            self._member_of.append(cohort)
        self.predicates = any(cohort is None for cohort in self._member_of)
        self.next = self.next_due()  # as of the last due(): the Monitor's next due step without a second loop
        self._lists: dict[tuple[tuple[int, ...], tuple[str, ...]], list[Any]] = {}

    def due(self, position: int, names: tuple[str, ...] = ()) -> list[Any]:
        """The metrics due at ``position`` that can run with input ``names`` (predicates included, disabled
        ones not filtered), in table order.

        Advances each due cohort's next due step: call once per step that reaches the metrics.
        """
        key: list[int] = []
        soonest = NEVER
        for cohort in self.cohorts:
            if cohort.next_due <= position:
                cohort.next_due = cohort.schedule.next_due(position + 1)
                key.append(cohort.index)
            if cohort.next_due < soonest and cohort.alive:
                soonest = cohort.next_due
        self.next = soonest
        found = self._lists.get((tuple(key), names))
        if found is None:
            found = self._list(tuple(key), names, position)
        return found

    def _list(self, key: tuple[int, ...], names: tuple[str, ...], position: int) -> list[Any]:
        due = set(key)
        runnable = self._runnable
        found = [
            metric
            for metric, cohort in zip(self.metrics, self._member_of, strict=True)
            if cohort is None or (cohort.index in due and (runnable is None or runnable(metric, names, position)))
        ]
        if len(self._lists) < _MAX_LISTS:
            self._lists[key, names] = found
        return found

    def next_due(self) -> int:
        """The earliest next due step of a cohort with an enabled metric (NEVER if none)."""
        return min((cohort.next_due for cohort in self.cohorts if cohort.alive), default=NEVER)

    def disabled(self, metric: Any) -> None:
        """``metric`` was disabled for good: a cohort left without enabled metrics no longer counts."""
        for candidate, cohort in zip(self.metrics, self._member_of, strict=True):
            if candidate is metric and cohort is not None:
                cohort.alive -= 1
                self.next = self.next_due()
                return
