"""Judge trained runs exactly as ``metricreg report`` does, and score them against their ground truth.

A run is read with :func:`metricreg.reader.read_run` and judged by
:func:`metricreg.verdict.evaluate_run` with ``smoothing=None`` (each rule's own
smoothing and persistence: the verdict of the tab, the CLI and the live alerts).
By default the thresholds are those of the installed metricreg (:func:`installed_rules`)
rather than the ones recorded in the run when it was trained, so that a saved
benchmark can be re-judged after every rule change.
Then, per run:

* **detected**: an alert in the expected category that is *critical* at or after the
  onset (it became critical then; an episode that opened as a warn counts from its
  escalation); its ``delay`` is that step minus the onset;
* **false alerts**: every alert (any category) whose episode opens before the onset,
  at the level it had reached before the onset; for a healthy run, every alert at its
  highest level. Warn and critical are counted apart, and each one is listed (tag,
  level, first step, value at that step) for calibration;
* **late**: detected more than one due interval of the responsible metric after the
  onset (collapse, EMA, stability: 100 steps at the defaults);
* **stressed** runs (an injected fault whose recorded outcome stays within the healthy
  range, :mod:`.outcome`): no detection required; every critical alert, before or after
  the onset, is a false alarm; warns after the onset are counted apart (``stress_warns``).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from benchmarks.detection.scenarios import DUE_INTERVAL
from metricreg.reader import read_run

CRITICAL, WARN = "critical", "warn"


@dataclass(frozen=True)
class AlertRecord:
    """One alert episode as the scorer saw it.

    ``level`` is the highest level the episode reached; ``critical_step`` the step it
    became critical (None if it never did). An episode that opens as a warn and
    escalates is one alert (metricreg >= the issue-8 rules); older rules opened a
    separate critical episode, which reads the same here.
    """

    tag: str
    category: str
    level: str
    first_step: int
    value: float  # at first_step (the onset value) where the rules record it
    active: bool
    critical_step: int | None = None

    @classmethod
    def of(cls, alert: Any) -> AlertRecord:
        value = getattr(alert, "onset_value", None)
        if value is None:
            value = getattr(alert, "value", math.nan)
        level = str(alert.level)
        critical = getattr(alert, "critical_step", None)
        if critical is None and level == CRITICAL:
            critical = int(alert.first_step)
        return cls(
            tag=str(alert.tag),
            category=str(alert.category),
            level=level,
            first_step=int(alert.first_step),
            value=float(value) if value is not None else math.nan,
            active=bool(getattr(alert, "active", False)),
            critical_step=int(critical) if critical is not None else None,
        )

    def before(self, onset: int) -> AlertRecord:
        """This episode as it stood before ``onset``: critical only if it escalated before then."""
        critical = self.critical_step is not None and self.critical_step < onset
        return replace(self, level=CRITICAL if critical else WARN)


@dataclass
class RunScore:
    """The score of one run against its ground truth."""

    run: str
    scenario: str
    group: str
    seed: int
    category: str | None  # expected; None = healthy
    onset: int | None
    holdout: bool = False
    detected: bool = False
    detection_step: int | None = None
    delay: int | None = None
    late: bool = False
    false_alerts: list[AlertRecord] = field(default_factory=list)
    after_onset: list[AlertRecord] = field(default_factory=list)  # broken runs: what fired from the onset on
    alerts: int = 0
    metric_errors: list[str] = field(default_factory=list)
    error: str | None = None  # training or reading failed: the run counts as missed
    evidence: dict[str, Any] = field(default_factory=dict)  # the loop's info: does the ground truth hold?
    stressed: bool = False  # injected, but the evidence is within the healthy range (outcome.resolve_outcomes)
    outcome: dict[str, Any] = field(default_factory=dict)  # how that was decided: rule, value, floor, kind

    @property
    def healthy(self) -> bool:
        return self.category is None

    @property
    def broken(self) -> bool:
        return self.category is not None and not self.stressed

    @property
    def kind(self) -> str:
        return "healthy" if self.healthy else "stressed" if self.stressed else "broken"

    @property
    def stress_critical(self) -> list[AlertRecord]:
        """Stressed runs: alerts that became critical at or after the onset (false alarms)."""
        if not self.stressed:
            return []
        return [a for a in self.after_onset if a.critical_step is not None]

    @property
    def stress_warns(self) -> list[AlertRecord]:
        """Stressed runs: alerts opened at or after the onset that stayed warns (reported, not penalised)."""
        if not self.stressed:
            return []
        return [a for a in self.after_onset if a.critical_step is None]

    @property
    def false_warn(self) -> int:
        return sum(a.level == WARN for a in self.false_alerts)

    @property
    def false_critical(self) -> int:
        return sum(a.level == CRITICAL for a in self.false_alerts) + len(self.stress_critical)

    @property
    def meets_target(self) -> bool:
        """Healthy: no alert. Broken: critical in its category, nothing before onset, not late.

        Stressed: nothing before the onset and no critical alert after it (warns are allowed).
        """
        if self.error:
            return False
        if self.healthy:
            return not self.false_alerts
        if self.stressed:
            return not self.false_alerts and not self.stress_critical
        return self.detected and not self.late and not self.false_alerts

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.update(
            kind=self.kind,
            false_warn=self.false_warn,
            false_critical=self.false_critical,
            stress_warn=len(self.stress_warns),
            meets_target=self.meets_target,
        )
        return out


def score_alerts(
    alerts: Iterable[AlertRecord], category: str | None, onset: int | None
) -> tuple[bool, int | None, list[AlertRecord]]:
    """(detected, first detection step, false alerts) of some alerts against a ground truth."""
    alerts = sorted(alerts, key=lambda a: (a.first_step, a.tag, a.level))
    if category is None:
        return False, None, list(alerts)
    if onset is None:
        raise ValueError(f"a broken run (category {category!r}) needs an onset step")
    false = [a.before(onset) for a in alerts if a.first_step < onset]
    hits = [
        a.critical_step
        for a in alerts
        if a.category == category and a.critical_step is not None and a.critical_step >= onset
    ]
    first = min(hits) if hits else None
    return first is not None, first, false


RuleTable = dict[str, dict[str, Any]]  # metric name -> its manifest "health" table


def installed_rules() -> RuleTable:
    """The health tables of every metric the installed metricreg registers (as ``metricreg plugins`` sees them)."""
    from metricreg.config import load_config
    from metricreg.plugins import get_plugin_manager
    from metricreg.registry import collect

    registry = collect(get_plugin_manager(), load_config(None))
    return {row["name"]: row["health"] for row in registry.describe()}


def with_rules(manifest: Any, rules: RuleTable) -> Any:
    """A copy of a run's manifest whose metrics carry ``rules`` (metrics the rules do not know keep theirs).

    A run records the thresholds it was trained with; re-judging it after a rule
    change needs today's. What a metric *computes* is in the saved values, so a
    change there (or a new metric) still needs the run trained again.
    """
    if not getattr(manifest, "present", False):
        return manifest
    data = dict(manifest.data)
    data["metrics"] = [
        {**m, "health": rules[m["name"]]} if m.get("name") in rules else m for m in data.get("metrics", [])
    ]
    return type(manifest)(data)


def score_run(path: str, truth: dict[str, Any], run: str | None = None, rules: RuleTable | None = None) -> RunScore:
    """Read and judge one run directory (as ``metricreg report`` does) and score it against ``truth``.

    ``rules`` (from :func:`installed_rules`) replaces the thresholds recorded in the
    run's manifest; None judges with the recorded ones, exactly as ``metricreg report``.
    """
    name = run or f"{truth['scenario']}/seed{truth['seed']}"
    category = truth.get("category")
    onset = truth.get("onset")
    score = RunScore(
        run=name,
        scenario=truth["scenario"],
        group=truth.get("group", ""),
        seed=int(truth.get("seed", 0)),
        category=category,
        onset=onset,
        holdout=bool(truth.get("holdout", False)),
        evidence=dict(truth.get("info") or {}),
    )
    if truth.get("error"):
        score.error = "training failed: " + str(truth["error"]).strip().splitlines()[-1]
        return score
    if category is not None and onset is None:
        score.error = "no onset: the run never reached the point its ground truth is defined by"
        return score
    try:
        data = read_run(path, name)
        if rules is not None:
            data.manifest = with_rules(data.manifest, rules)
        verdict = data.evaluate(None)
    except Exception as exc:  # an unreadable run is a missed run, not a crash of the benchmark
        score.error = f"judging failed: {type(exc).__name__}: {exc}"
        return score
    records = [AlertRecord.of(a) for a in verdict.alerts]
    score.alerts = len(records)
    score.detected, score.detection_step, score.false_alerts = score_alerts(records, category, onset)
    if category is not None:
        score.after_onset = sorted((a for a in records if a.first_step >= onset), key=lambda a: a.first_step)
    if score.detected:
        score.delay = score.detection_step - onset
        interval = DUE_INTERVAL.get(category)
        score.late = interval is not None and score.delay > interval
    score.metric_errors = [f"{e['metric']}: {e.get('last_message', '')}" for e in verdict.errors]
    return score


@dataclass
class ScenarioSummary:
    """One row of the results table: a scenario over its seeds."""

    scenario: str
    group: str
    truth: str
    holdout: bool
    runs: list[RunScore]

    @property
    def seeds(self) -> int:
        return len(self.runs)

    @property
    def healthy(self) -> bool:
        return self.runs[0].healthy

    @property
    def stressed(self) -> int:
        """How many of the runs are stressed (injected, outcome within the healthy range)."""
        return sum(r.stressed for r in self.runs)

    @property
    def broken_runs(self) -> int:
        return sum(r.broken for r in self.runs)

    @property
    def stress_warned(self) -> int:
        """Stressed runs with a warn after the onset."""
        return sum(bool(r.stress_warns) for r in self.runs)

    @property
    def detected(self) -> int:
        return sum(r.detected for r in self.runs if r.broken)

    @property
    def delays(self) -> list[int]:
        return [r.delay for r in self.runs if r.delay is not None and r.broken]

    @property
    def delay_median(self) -> float | None:
        return statistics.median(self.delays) if self.delays else None

    @property
    def delay_max(self) -> int | None:
        return max(self.delays) if self.delays else None

    @property
    def false_warn(self) -> int:
        return sum(r.false_warn for r in self.runs)

    @property
    def false_critical(self) -> int:
        return sum(r.false_critical for r in self.runs)

    @property
    def runs_with_false_alerts(self) -> int:
        return sum(bool(r.false_alerts) for r in self.runs)

    @property
    def errors(self) -> int:
        return sum(r.error is not None for r in self.runs)


def summarize(scores: Sequence[RunScore], truths: dict[str, str] | None = None) -> list[ScenarioSummary]:
    """Group run scores by scenario, in first-seen order."""
    by: dict[str, list[RunScore]] = {}
    for s in scores:
        by.setdefault(s.scenario, []).append(s)
    out = []
    for name, runs in by.items():
        first = runs[0]
        onsets = sorted({r.onset for r in runs if r.onset is not None})
        where = "?" if not onsets else str(onsets[0]) if len(onsets) == 1 else f"{onsets[0]}–{onsets[-1]}"
        truth = (truths or {}).get(name) or ("healthy" if first.healthy else f"{first.category}@{where}")
        stressed = sum(r.stressed for r in runs)
        if stressed == len(runs):
            truth = f"stressed ({truth})"
        elif stressed:
            truth = f"{truth} ({stressed}/{len(runs)} stressed)"
        out.append(ScenarioSummary(name, first.group, truth, first.holdout, sorted(runs, key=lambda r: r.seed)))
    return out


@dataclass
class Totals:
    """The summary line: how far the rules are from the issue's targets."""

    healthy_runs: int = 0
    healthy_alerting: int = 0
    broken_runs: int = 0
    broken_missed: int = 0
    broken_late: int = 0
    broken_false_before_onset: int = 0
    stressed_runs: int = 0
    stressed_alarmed: int = 0  # a critical alert, or any alert before onset
    stressed_warned: int = 0  # a warn after onset (reported, not a miss)
    failed_runs: int = 0

    @property
    def targets_met(self) -> bool:
        return not (
            self.healthy_alerting
            or self.broken_missed
            or self.broken_late
            or self.broken_false_before_onset
            or self.stressed_alarmed
            or self.failed_runs
        )


def totals(scores: Iterable[RunScore]) -> Totals:
    t = Totals()
    for s in scores:
        if s.error:
            t.failed_runs += 1
        if s.healthy:
            t.healthy_runs += 1
            t.healthy_alerting += bool(s.false_alerts)
        elif s.stressed:
            t.stressed_runs += 1
            t.stressed_alarmed += bool(s.false_alerts or s.stress_critical)
            t.stressed_warned += bool(s.stress_warns)
        else:
            t.broken_runs += 1
            t.broken_missed += not s.detected
            t.broken_late += s.late
            t.broken_false_before_onset += bool(s.false_alerts)
    return t


@dataclass
class FalseCause:
    """A tag that raised false alerts: how often, at which level, from when, at which values."""

    tag: str
    level: str
    runs: int
    scenarios: list[str]
    first_step_min: int
    value_min: float
    value_max: float


def false_causes(scores: Iterable[RunScore]) -> list[FalseCause]:
    """False alerts grouped by (tag, level), most runs first: where calibration should look."""
    by: dict[tuple[str, str], list[tuple[RunScore, AlertRecord]]] = {}
    for s in scores:
        for a in [*s.false_alerts, *s.stress_critical]:
            by.setdefault((a.tag, a.level), []).append((s, a))
    out = []
    for (tag, level), pairs in by.items():
        values = [a.value for _, a in pairs if math.isfinite(a.value)]
        out.append(
            FalseCause(
                tag=tag,
                level=level,
                runs=len({s.run for s, _ in pairs}),
                scenarios=sorted({s.scenario for s, _ in pairs}),
                first_step_min=min(a.first_step for _, a in pairs),
                value_min=min(values) if values else math.nan,
                value_max=max(values) if values else math.nan,
            )
        )
    return sorted(out, key=lambda c: (-c.runs, c.level != CRITICAL, c.tag))
