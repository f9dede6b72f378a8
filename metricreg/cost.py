"""What each metric costs the training thread, and a watchdog for a metric that hangs.

Measured only on due steps (the only steps that run metrics), with two clock reads per
metric call, so the non-due hot path pays nothing. The time includes the lazy inputs
the metric was the first to ask for: that is what the training loop waited for.

The writer thread writes each metric's mean milliseconds per call as the scalar
``_metricreg/cost/<metric>`` (shown by ``metricreg report`` and in the Scalars tab),
and checks, on every round, whether ``Monitor.step`` has been inside one metric for
longer than ``hang_after`` seconds. Python cannot pre-empt a hung metric; it can say
which one it is.
"""

from __future__ import annotations

import logging
from time import perf_counter

log = logging.getLogger("metricreg")

COST_PREFIX = "_metricreg/cost/"


class CostMeter:
    """Per-metric call count, total and worst time on the training thread."""

    def __init__(self, budget: float, hang_after: float) -> None:
        if not budget > 0:
            raise ValueError(f"cost_budget must be a positive number of seconds, got {budget!r}")
        if not hang_after > 0:
            raise ValueError(f"hang_after must be a positive number of seconds, got {hang_after!r}")
        self.budget = budget
        self.hang_after = hang_after
        self.calls: dict[str, int] = {}
        self.total: dict[str, float] = {}
        self.worst: dict[str, float] = {}
        self.over_budget: set[str] = set()
        self._running: tuple[str, str, int, float] | None = None  # metric, plugin, step, start
        self._hung: tuple[str, str, int, float] | None = None

    # --- training thread ---------------------------------------------------------------------

    def start(self, metric: str, plugin: str, step: int) -> None:
        self._running = (metric, plugin, step, perf_counter())

    def stop(self) -> None:
        running, self._running = self._running, None
        if running is None:
            return
        metric, plugin, step, started = running
        elapsed = perf_counter() - started
        self.calls[metric] = self.calls.get(metric, 0) + 1
        self.total[metric] = self.total.get(metric, 0.0) + elapsed
        if elapsed > self.worst.get(metric, 0.0):
            self.worst[metric] = elapsed
        if elapsed > self.budget and metric not in self.over_budget:
            self.over_budget.add(metric)
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

    # --- writer thread -----------------------------------------------------------------------

    def mean_ms(self) -> dict[str, tuple[int, float]]:
        """metric -> (calls, mean milliseconds per call), a consistent-enough copy for the writer."""
        for _ in range(3):
            try:
                calls = dict(self.calls)
                total = dict(self.total)
                break
            except RuntimeError:  # resized by the training thread while copied: try again
                continue
        else:
            return {}
        return {m: (n, 1000.0 * total.get(m, 0.0) / n) for m, n in calls.items() if n}

    def check_hung(self) -> None:
        """Log once when step() has been inside one metric call longer than ``hang_after``."""
        running = self._running
        if running is None or running is self._hung:
            return
        elapsed = perf_counter() - running[3]
        if elapsed > self.hang_after:
            self._hung = running
            metric, plugin, step, _ = running
            log.warning(
                "metricreg: Monitor.step() has been inside metric %r (plugin %r) for %.0f s at step %d; training "
                "is blocked there (a Python metric cannot be interrupted). If it never returns, disable it in config.",
                metric,
                plugin,
                elapsed,
                step,
            )
