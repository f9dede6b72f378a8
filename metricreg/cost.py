"""What each metric costs the training thread, and a watchdog for a metric that hangs.

Measured only on due steps (the only steps that run metrics), with two clock reads per
metric call, so the non-due hot path pays nothing. The time includes the lazy inputs
the metric was the first to ask for: that is what the training loop waited for.

The writer thread writes each metric's mean milliseconds per call as the scalar
``_metricreg/cost/<metric>`` (shown by ``metricreg report`` and in the Scalars tab),
and checks, on every round, whether ``Monitor.step`` has been inside one metric for
longer than ``hang_after`` seconds. Python cannot pre-empt a hung metric; it can say
which one it is. Both reports (over budget, hung) are also written to the run as the JSON
record ``_metricreg/cost`` (see :meth:`CostMeter.record`), so the Health tab shows them
while the training thread is still stuck.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from time import perf_counter
from typing import Any

log = logging.getLogger("metricreg")

COST_PREFIX = "_metricreg/cost/"
COST_TAG = "_metricreg/cost"  # the JSON record of budget, over-budget and hung metrics


class CostMeter:
    """Per-metric call count, total and worst time on the training thread.

    The Monitor times each due metric itself (:meth:`slot`, :attr:`running`, :meth:`finish`):
    two clock reads and three list updates, inline in its dispatch loop, since a method call
    per metric and per due step is a measurable part of what the defaults cost a CPU step.
    :meth:`start`/:meth:`stop` do the same for any other caller.
    """

    def __init__(self, budget: float, hang_after: float) -> None:
        if not budget > 0:
            raise ValueError(f"cost_budget must be a positive number of seconds, got {budget!r}")
        if not hang_after > 0:
            raise ValueError(f"hang_after must be a positive number of seconds, got {hang_after!r}")
        self.budget = budget
        self.hang_after = hang_after
        #: a call longer than this needs :meth:`finish` (over budget, or back from a hang)
        self.alarm = min(budget, hang_after)
        self._slots: dict[str, list[float]] = {}  # metric -> [calls, total s, worst s]
        self.over_budget: set[str] = set()
        #: (metric, plugin, step, start) of the call in progress; read by the writer's hang check
        self.running: tuple[str, str, int, float] | None = None
        self._hung: tuple[str, str, int, float] | None = None
        # metric -> {"plugin", "over_budget": {...}, "hung": {...}}: each report made once, then kept.
        self.reports: dict[str, dict[str, Any]] = {}
        self.version = 0  # bumped on every change to ``reports`` (the writer writes the record then)

    # --- training thread ---------------------------------------------------------------------

    def slot(self, metric: str) -> list[float]:
        """The [calls, total seconds, worst seconds] accumulator of ``metric`` (made once, then kept)."""
        return self._slots.setdefault(metric, [0, 0.0, 0.0])

    def start(self, metric: str, plugin: str, step: int) -> None:
        self.running = (metric, plugin, step, perf_counter())

    def stop(self) -> None:
        running, self.running = self.running, None
        if running is None:
            return
        elapsed = perf_counter() - running[3]
        acc = self.slot(running[0])
        acc[1] += elapsed
        acc[0] += 1
        if elapsed > acc[2]:
            acc[2] = elapsed
        if elapsed > self.alarm:
            self.finish(running, elapsed)

    def finish(self, running: tuple[str, str, int, float], elapsed: float) -> None:
        """A call that took longer than :attr:`alarm`: report it over budget, or back from a hang (once each)."""
        metric, plugin, step, _ = running
        if running is self._hung:  # it came back: say so, with how long it took
            self._report(metric, plugin, "hung", {"step": step, "seconds": elapsed, "returned": True})
        if elapsed > self.budget and metric not in self.over_budget:
            self.over_budget.add(metric)
            self._report(metric, plugin, "over_budget", {"step": step, "ms": 1000.0 * elapsed})
            log.warning(
                "metricreg: metric %r (plugin %r) took %.3f s of the training thread at step %d, over its "
                "budget of %.3f s per call (reported once; its mean cost is in the run as %s%s). "
                "Run it less often (config every=...) or disable it.",
                metric,
                plugin,
                elapsed,
                step,
                self.budget,
                COST_PREFIX,
                metric,
            )

    def _report(self, metric: str, plugin: str, kind: str, detail: dict[str, Any]) -> None:
        entry = dict(self.reports.get(metric) or {"plugin": plugin})
        entry[kind] = detail
        self.reports[metric] = entry  # replaced whole: a reader never sees a half-made entry
        self.version += 1

    def record(self) -> dict[str, Any]:
        """The ``_metricreg/cost`` record: budget, hang limit and each reported metric."""
        for _ in range(3):
            try:
                reports = dict(self.reports)
                break
            except RuntimeError:  # resized by the other thread while copied: try again
                continue
        else:
            reports = {}
        return {"budget_ms": 1000.0 * self.budget, "hang_after_s": self.hang_after, "metrics": reports}

    # --- writer thread -----------------------------------------------------------------------

    def mean_ms(self) -> dict[str, tuple[int, float]]:
        """metric -> (calls, mean milliseconds per call), a consistent-enough copy for the writer."""
        for _ in range(3):
            try:
                slots = list(self._slots.items())
                break
            except RuntimeError:  # resized by the training thread while copied: try again
                continue
        else:
            return {}
        out = {}
        for metric, acc in slots:
            calls, total = int(acc[0]), acc[1]  # a read torn by an update is off by one call at most
            if calls:
                out[metric] = (calls, 1000.0 * total / calls)
        return out

    def check_hung(self) -> None:
        """Log once when step() has been inside one metric call longer than ``hang_after``."""
        running = self.running
        if running is None or running is self._hung:
            return
        elapsed = perf_counter() - running[3]
        if elapsed > self.hang_after:
            self._hung = running
            metric, plugin, step, _ = running
            self._report(metric, plugin, "hung", {"step": step, "seconds": elapsed, "returned": False})
            log.warning(
                "metricreg: Monitor.step() has been inside metric %r (plugin %r) for %.0f s at step %d; training "
                "is blocked there (a Python metric cannot be interrupted). If it never returns, disable it in config.",
                metric,
                plugin,
                elapsed,
                step,
            )


# --- reading a run back (the Health tab's ``/run`` and ``metricreg report``) -------------------


def run_costs(series: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Each metric's latest mean milliseconds per call from ``{tag: (steps, values, ...)}``, costliest first."""
    costs = []
    for tag, data in series.items():
        steps, values = data[0], data[1]
        if tag.startswith(COST_PREFIX) and len(values) and math.isfinite(float(values[-1])):
            costs.append({"metric": tag[len(COST_PREFIX) :], "mean_ms": float(values[-1]), "step": int(steps[-1])})
    return sorted(costs, key=lambda c: (-c["mean_ms"], c["metric"]))


def parse_record(data: Any) -> dict[str, Any]:
    """A ``_metricreg/cost`` record, checked: ValueError naming the bad field otherwise."""
    if not isinstance(data, Mapping):
        raise ValueError(f"cost record must be a JSON object, got {type(data).__name__}")
    for key in ("budget_ms", "hang_after_s"):
        value = data.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise ValueError(f"cost record: {key} must be a number, got {value!r:.60}")
    metrics = data.get("metrics") or {}
    if not isinstance(metrics, Mapping) or not all(isinstance(v, Mapping) for v in metrics.values()):
        raise ValueError("cost record: metrics must map each metric to an object")
    for metric, entry in metrics.items():
        for kind in ("over_budget", "hung"):
            if entry.get(kind) is not None and not isinstance(entry.get(kind), Mapping):
                raise ValueError(f"cost record of {str(metric)[:80]!r}: {kind} must be an object")
    return {"budget_ms": data.get("budget_ms"), "hang_after_s": data.get("hang_after_s"), "metrics": dict(metrics)}


def cost_view(series: Mapping[str, Any], record: Mapping[str, Any] | None) -> dict[str, Any]:
    """What the Health tab shows about cost: ``cost`` (per metric, costliest first, a metric hung right
    now before everything), ``cost_ms_total`` (the latest means summed: one due call of each) and the
    budget. Each row says whether the metric went over budget or hung (``None`` when it did not)."""
    record = record or {}
    reports: Mapping[str, Any] = record.get("metrics") or {}
    rows = {c["metric"]: c for c in run_costs(series)}
    for metric in reports:  # a metric hung in its first call has no mean yet
        rows.setdefault(metric, {"metric": metric, "mean_ms": None, "step": None})
    total = sum(c["mean_ms"] for c in rows.values() if c["mean_ms"] is not None)
    for metric, row in rows.items():
        report = reports.get(metric) or {}
        row["plugin"] = report.get("plugin")
        row["share"] = row["mean_ms"] / total if row["mean_ms"] is not None and total > 0 else None
        row["over_budget"] = report.get("over_budget")
        row["hung"] = report.get("hung")

    def order(row: dict[str, Any]) -> tuple:
        hung_now = bool(row["hung"]) and not row["hung"].get("returned", False)
        return (not hung_now, -(row["mean_ms"] if row["mean_ms"] is not None else -1.0), row["metric"])

    return {
        "cost": sorted(rows.values(), key=order),
        "cost_ms_total": total,
        "cost_budget_ms": record.get("budget_ms"),
        "cost_hang_after_s": record.get("hang_after_s"),
    }
