"""Health rules: one implementation for live alerts, the Health tab and the CLI.

A series of (step, value) points is smoothed with TensorBoard's exact debiased
EMA (so the rule sees what the chart shows), each smoothed point is given a
level (ok / warn / critical) against the metric's thresholds (absolute, or
relative to the run's own baseline), and a level must persist for
``Health.persistence`` consecutive points before an alert fires. One excursion
is one alert episode: it escalates in place and clears only after
``clear_after`` points back inside the thresholds by a hysteresis margin.
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


def _breach(value: float, threshold: float | None, bound: str, margin: float) -> bool:
    """Whether ``value`` is beyond ``threshold``; ``margin`` (a fraction of it) widens the breach zone."""
    if threshold is None:
        return False
    slack = margin * abs(threshold)
    return value < threshold + slack if bound == "below" else value > threshold - slack


def level_of(
    value: float, health: Health, baseline: float | None = None, margin: float = 0.0
) -> tuple[str, str | None, float | None]:
    """(level, bound, threshold) of one already-smoothed value.

    ``baseline`` activates the relative thresholds (``*_frac`` × baseline); the
    threshold returned is always absolute. ``margin`` > 0 counts values within
    that fraction of a threshold as still beyond it (hysteresis when clearing).
    """
    if not math.isfinite(value):
        return (health.nonfinite or OK), ("nonfinite" if health.nonfinite else None), None
    relative = baseline is not None and math.isfinite(baseline) and baseline > 0 and health.has_relative
    for level in (CRITICAL, WARN):
        for bound in ("above", "below"):
            threshold = getattr(health, f"{level}_{bound}")
            if _breach(value, threshold, bound, margin):
                return level, bound, threshold
            frac = getattr(health, f"{level}_{bound}_frac") if relative else None
            if frac is not None and _breach(value, frac * baseline, bound, margin):
                return level, bound, frac * baseline
    return OK, None, None


@dataclass(eq=False)
class Alert:
    """One episode of a series beyond a threshold: it opens, may escalate, and clears.

    ``level`` is the highest level the episode reached (a warn that escalated
    is one critical alert), ``current_level`` where it stands now. ``value``
    is the latest judged value; ``onset_value`` the one at ``first_step``.
    ``change`` says what the last ``HealthTracker.feed`` did to it: "opened",
    "escalated", "eased" (critical back to warn) or "cleared".
    """

    tag: str
    level: str
    bound: str  # "above", "below" or "nonfinite"
    threshold: float | None
    value: float
    first_step: int
    last_step: int
    active: bool
    category: str = "other"
    metric: str | None = None
    description: str = ""
    remedy: str = ""
    run: str | None = None
    onset_value: float | None = None
    onset_level: str | None = None
    critical_step: int | None = None
    current_level: str | None = None
    baseline: float | None = None
    basis: str = ""  # how the threshold was formed, e.g. "0.3 × best 0.61"
    change: str = "opened"

    @property
    def message(self) -> str:
        if self.bound == "nonfinite":
            what = f"{self.level} when non-finite"
        else:
            rule = f"{self.threshold:.4g}" if self.threshold is not None else "?"
            if self.basis:
                rule += f" = {self.basis}"
            what = f"{self.level} when {self.bound} {rule}"
        now = f"{self.tag} = {_fmt(self.value)} at step {self.last_step}"
        opened = self.onset_level or self.level
        then = f"(value then {_fmt(self.onset_value)})"
        onset = f"{opened} since step {self.first_step} {then}"
        if not self.active:
            onset = f"{opened} from step {self.first_step} to {self.last_step} {then}"
        escalated = (
            f", critical from step {self.critical_step}"
            if self.critical_step is not None and self.critical_step != self.first_step
            else ""
        )
        return f"{now} ({what}); {onset}{escalated}"

    def to_dict(self) -> dict:
        data = asdict(self)
        data["message"] = self.message
        return data


def _fmt(value: float | None) -> str:
    if value is None:
        return "?"
    return f"{value:.4g}"


class HealthTracker:
    """Incremental evaluation of one series: feed points, get alert changes.

    ``feed`` returns the alerts that opened, escalated, eased or cleared with
    this point, so the live Monitor can call the ``metricreg_on_alert`` hook
    exactly then. The batch evaluator feeds the same tracker, so the tab, the
    CLI and the live alerts always agree.
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
        self._calm = 0  # consecutive points below the open episode's current level (with hysteresis)
        self._clear_after = health.clear_after or max(2, health.persistence)
        self._early: list[float] = []
        self._previous: float | None = None
        self.baseline: float | None = None
        self.level = OK
        self.alerts: list[Alert] = []
        self._open: Alert | None = None
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

    def _update_baseline(self, value: float) -> None:
        """The run's own reference level for the relative thresholds."""
        health = self.health
        if not health.has_relative or not math.isfinite(value):
            return
        if health.baseline == "initial":
            if len(self._early) < health.baseline_points:
                self._early.append(value)
                if len(self._early) == health.baseline_points:
                    ordered = sorted(self._early)
                    mid = len(ordered) // 2
                    self.baseline = ordered[mid] if len(ordered) % 2 else 0.5 * (ordered[mid - 1] + ordered[mid])
            return
        if health.baseline == "previous":
            # Judged against the point before, once the first baseline_points points are in: a
            # quantity that starts at 0 and grows (distance from initialisation) jumps by large
            # factors over its first few points in every healthy run.
            self.baseline = self._previous if len(self._early) >= health.baseline_points else None
            if len(self._early) < health.baseline_points:
                self._early.append(value)
            self._previous = value
            return
        if health.baseline == "best_after_warmup" and len(self._early) < health.baseline_points:
            self._early.append(value)  # the warm-up: no baseline, so no relative verdict yet
            return
        better = max if health.direction == "higher_is_better" else min
        self.baseline = value if self.baseline is None else better(self.baseline, value)

    def _basis(self, bound: str, threshold: float | None) -> str:
        if threshold is None or self.baseline is None or not self.health.has_relative:
            return ""
        for level in (CRITICAL, WARN):
            frac = getattr(self.health, f"{level}_{bound}_frac")
            if frac is not None and math.isclose(frac * self.baseline, threshold, rel_tol=1e-12):
                what = {"best": "best", "initial": "initial", "previous": "previous point"}.get(
                    self.health.baseline, "best after warm-up"
                )
                return f"{frac:g} × {what} {self.baseline:.4g}"
        return ""

    def feed(self, step: int, value: float) -> list[Alert]:
        value = float(value)
        smoothed = self._smoothed(value)
        self.last_value, self.last_smoothed, self.last_step = value, smoothed, step
        self._update_baseline(smoothed)
        point_level, bound, threshold = level_of(smoothed, self.health, self.baseline)
        for lvl in (WARN, CRITICAL):
            self._streak[lvl] = self._streak[lvl] + 1 if _RANK[point_level] >= _RANK[lvl] else 0
        persistence = 1 if bound == "nonfinite" else self.health.persistence
        reached = OK
        for lvl in (CRITICAL, WARN):
            if self._streak[lvl] >= persistence:
                reached = lvl
                break
        changes: list[Alert] = []
        episode = self._open
        if episode is None:
            if reached != OK and bound is not None:
                episode = Alert(
                    tag=self.tag,
                    level=reached,
                    bound=bound,
                    threshold=threshold,
                    value=smoothed,
                    first_step=step,
                    last_step=step,
                    active=True,
                    category=self.health.category,
                    description=self.health.description,
                    remedy=self.health.remedy,
                    onset_value=smoothed,
                    onset_level=reached,
                    critical_step=step if reached == CRITICAL else None,
                    current_level=reached,
                    baseline=self.baseline,
                    basis=self._basis(bound, threshold),
                    **self._fields,  # type: ignore[arg-type]
                )
                self._open = episode
                self._calm = 0
                self.alerts.append(episode)
                changes.append(episode)
            self.level = reached
            return changes
        # An episode is open: update it, escalate, ease, or clear with hysteresis.
        episode.value, episode.last_step, episode.baseline = smoothed, step, self.baseline
        current = episode.current_level or episode.level
        if _RANK[reached] > _RANK[current]:
            episode.current_level = reached
            if _RANK[reached] > _RANK[episode.level]:
                episode.level = reached
                episode.bound, episode.threshold = bound or episode.bound, threshold
                episode.basis = self._basis(episode.bound, threshold)
                if reached == CRITICAL and episode.critical_step is None:
                    episode.critical_step = step
                episode.change = "escalated"
                changes.append(episode)
            self._calm = 0
        else:
            strict_level = level_of(smoothed, self.health, self.baseline, margin=self.health.hysteresis)[0]
            self._calm = self._calm + 1 if _RANK[strict_level] < _RANK[current] else 0
            if self._calm >= self._clear_after:
                self._calm = 0
                if _RANK[reached] <= _RANK[OK] and _RANK[strict_level] <= _RANK[OK]:
                    episode.active = False
                    episode.current_level = OK
                    episode.change = "cleared"
                    self._open = None
                    changes.append(episode)
                else:
                    episode.current_level = WARN
                    episode.change = "eased"
                    changes.append(episode)
        self.level = episode.current_level if episode.active else OK
        return changes


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
