"""Health rules: one implementation for live alerts, the Health tab and the CLI.

A series of (step, value) points is smoothed with TensorBoard's exact debiased
EMA (so the rule sees what the chart shows), each smoothed point is given a
level (ok / warn / critical) against the metric's thresholds, and a level must
persist for ``Health.persistence`` consecutive points before an alert fires.
The batch evaluator simply feeds the incremental one, so both always agree.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

from metricreg.spec import Health

OK, WARN, CRITICAL = "ok", "warn", "critical"
_RANK = {None: -1, "none": -1, OK: 0, WARN: 1, CRITICAL: 2}
TENSORBOARD_DEFAULT_SMOOTHING = 0.6


def worst(levels: Iterable[str | None]) -> str | None:
    """The most severe of some levels (None when there are none)."""
    best: str | None = None
    for level in levels:
        if _RANK.get(level, -1) > _RANK.get(best, -1):
            best = level
    return best


def smooth(values: Sequence[float], weight: float) -> list[float]:
    """TensorBoard's classicSmoothing, point for point.

    Debiased EMA over point index; non-finite points pass through and leave the
    state untouched; a constant series is returned unchanged.
    """
    values = [float(v) for v in values]
    if not values or weight <= 0:
        return values
    first = values[0]
    if all(v == first for v in values):
        return values
    out: list[float] = []
    last, n = 0.0, 0
    for v in values:
        if not math.isfinite(v):
            out.append(v)
            continue
        last = last * weight + (1 - weight) * v
        n += 1
        out.append(last / (1 - weight**n) if weight != 1 else last)
    return out


def level_of(value: float, health: Health) -> tuple[str, str | None, float | None]:
    """(level, bound, threshold) of one already-smoothed value."""
    if not math.isfinite(value):
        return (health.nonfinite or OK), ("nonfinite" if health.nonfinite else None), None
    if health.critical_above is not None and value > health.critical_above:
        return CRITICAL, "above", health.critical_above
    if health.critical_below is not None and value < health.critical_below:
        return CRITICAL, "below", health.critical_below
    if health.warn_above is not None and value > health.warn_above:
        return WARN, "above", health.warn_above
    if health.warn_below is not None and value < health.warn_below:
        return WARN, "below", health.warn_below
    return OK, None, None


@dataclass
class Alert:
    """One episode of a metric beyond a threshold."""

    tag: str
    level: str
    bound: str  # "above", "below" or "nonfinite"
    threshold: float | None
    value: float  # the (smoothed) value when the alert fired
    first_step: int
    last_step: int
    active: bool
    category: str = "other"
    metric: str | None = None
    description: str = ""
    remedy: str = ""
    run: str | None = None

    @property
    def message(self) -> str:
        if self.bound == "nonfinite":
            what = f"is non-finite ({self.value})"
        else:
            what = f"= {self.value:.6g} is {self.bound} the {self.level} threshold {self.threshold:.6g}"
        state = "since" if self.active else "from"
        until = "" if self.active else f" to {self.last_step}"
        return f"{self.tag} {what} ({state} step {self.first_step}{until})"

    def to_dict(self) -> dict:
        data = asdict(self)
        data["message"] = self.message
        return data


class HealthTracker:
    """Incremental evaluation of one series: feed points, get alert changes.

    ``feed`` returns the alerts that fired or cleared with this point, so the
    live Monitor can call the ``metricreg_on_alert`` hook exactly then.
    """

    def __init__(self, tag: str, health: Health, smoothing: float | None = None, **alert_fields: object) -> None:
        self.tag = tag
        self.health = health
        self.weight = health.smoothing if smoothing is None else smoothing
        self._fields = alert_fields
        self._ema, self._n = 0.0, 0
        self._first_value: float | None = None
        self._all_equal = True
        self._streak = {WARN: 0, CRITICAL: 0}
        self.level = OK
        self.alerts: list[Alert] = []
        self._open: dict[str, Alert] = {}
        self.last_value: float | None = None
        self.last_smoothed: float | None = None
        self.last_step: int | None = None

    def _smoothed(self, value: float) -> float:
        if self.weight <= 0 or not math.isfinite(value):
            return value
        if self._first_value is None:
            self._first_value = value
        elif value != self._first_value:
            self._all_equal = False
        self._ema = self._ema * self.weight + (1 - self.weight) * value
        self._n += 1
        if self._all_equal:
            return value  # TensorBoard returns a constant series unchanged
        return self._ema / (1 - self.weight**self._n)

    def feed(self, step: int, value: float) -> list[Alert]:
        value = float(value)
        smoothed = self._smoothed(value)
        self.last_value, self.last_smoothed, self.last_step = value, smoothed, step
        point_level, bound, threshold = level_of(smoothed, self.health)
        for lvl in (WARN, CRITICAL):
            self._streak[lvl] = self._streak[lvl] + 1 if _RANK[point_level] >= _RANK[lvl] else 0
        persistence = 1 if bound == "nonfinite" else self.health.persistence
        new_level = OK
        for lvl in (CRITICAL, WARN):
            if self._streak[lvl] >= persistence:
                new_level = lvl
                break
        changes: list[Alert] = []
        # Close episodes whose level no longer holds.
        for lvl in list(self._open):
            if _RANK[new_level] < _RANK[lvl]:
                alert = self._open.pop(lvl)
                alert.active = False
                changes.append(alert)
            else:
                self._open[lvl].last_step = step
        # Open an episode for the level now reached (escalation keeps the lower one open).
        if new_level != OK and new_level not in self._open and bound is not None:
            alert = Alert(
                tag=self.tag,
                level=new_level,
                bound=bound,
                threshold=threshold if new_level == point_level else _threshold_for(self.health, new_level, bound),
                value=smoothed,
                first_step=step,
                last_step=step,
                active=True,
                category=self.health.category,
                description=self.health.description,
                remedy=self.health.remedy,
                **self._fields,  # type: ignore[arg-type]
            )
            self._open[new_level] = alert
            self.alerts.append(alert)
            changes.append(alert)
        self.level = new_level
        return changes


def _threshold_for(health: Health, level: str, bound: str) -> float | None:
    if bound == "nonfinite":
        return None
    primary = getattr(health, f"{level}_{bound}")
    if primary is not None:
        return primary
    return getattr(health, f"{'critical' if level == WARN else WARN}_{bound}")


@dataclass
class SeriesVerdict:
    """The judgement of one whole series, as the tab and the CLI show it."""

    tag: str
    status: str  # level of the latest point after persistence
    alerts: list[Alert]
    smoothed: list[float]
    last_step: int | None
    last_value: float | None


def evaluate_series(
    tag: str,
    steps: Sequence[int],
    values: Sequence[float],
    health: Health,
    smoothing: float | None = None,
    **alert_fields: object,
) -> SeriesVerdict:
    """Judge a whole series with exactly the rules the live tracker uses."""
    tracker = HealthTracker(tag, health, smoothing, **alert_fields)
    smoothed: list[float] = []
    for step, value in zip(steps, values, strict=True):
        tracker.feed(int(step), value)
        smoothed.append(tracker.last_smoothed if tracker.last_smoothed is not None else float("nan"))
    return SeriesVerdict(
        tag=tag,
        status=tracker.level,
        alerts=tracker.alerts,
        smoothed=smoothed,
        last_step=tracker.last_step,
        last_value=tracker.last_value,
    )
