"""Which candidate statistic separates the missed failures from every healthy run?

``python -m benchmarks.detection.analyse [--logdir DIR ...]`` reads saved benchmark
runs (never trains) and prints, for each candidate statistic of a rule, its most
alarming value over every healthy run (the level a threshold must stay clear of to
raise nothing) against its value on each broken run of the category at the first
point a rule could use (≤ one due interval after onset), and the margin between the
two. A candidate earns a rule only when the margin is clear on every broken run and
the held-out healthy runs (not tuned on) also stay clear.

Statistics are computed on each run's raw series at the metric's own points, as a
rule with smoothing 0 and persistence 1 would see them:

* ``<m>/best``  value ÷ best so far (the current ``baseline="best"`` rules);
* ``<m>/init``  value ÷ median of the first 3 points (``baseline="initial"``);
* ``<m>/step``  value ÷ previous point (the fall per due interval);
* ``<m>/warm``  value ÷ best so far, counted from the 4th point on (best after a warm-up
  that leaves out the random-init rank every healthy run falls from);
* ``gap/...``   the accuracy or loss gap at each eval, and its persistence.
"""

from __future__ import annotations

import argparse
import json
import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from metricreg.reader import read_run

Series = tuple[np.ndarray, np.ndarray]  # steps, values


@dataclass
class Run:
    """One saved benchmark run: its ground truth and its raw series."""

    name: str
    truth: dict
    series: dict[str, Series] = field(default_factory=dict)

    @property
    def healthy(self) -> bool:
        return self.truth.get("category") is None

    @property
    def holdout(self) -> bool:
        return bool(self.truth.get("holdout"))


def load_runs(logdirs: list[str]) -> Iterator[Run]:
    """Every ``<logdir>/<scenario>/seed<k>`` with a truth.json; series as (steps, values)."""
    for logdir in logdirs:
        for scenario in sorted(os.listdir(logdir)):
            sdir = os.path.join(logdir, scenario)
            if not os.path.isdir(sdir):
                continue
            for seed in sorted(os.listdir(sdir)):
                path = os.path.join(sdir, seed)
                truth_file = os.path.join(path, "truth.json")
                if not os.path.isfile(truth_file):
                    continue
                with open(truth_file) as f:
                    truth = json.load(f)
                data = read_run(path)
                series = {tag: (np.asarray(s[0]), np.asarray(s[1], dtype=float)) for tag, s in data.series.items()}
                yield Run(f"{scenario}/{seed}", truth, series)


def _ratio(values: np.ndarray, reference: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(reference > 0, values / reference, np.nan)


def vs_best(values: np.ndarray) -> np.ndarray:
    """value ÷ best (max) so far, the point itself included."""
    return _ratio(values, np.maximum.accumulate(np.nan_to_num(values, nan=-np.inf)))


def vs_initial(values: np.ndarray, points: int = 3) -> np.ndarray:
    """value ÷ median of the first ``points`` values (NaN while the baseline forms)."""
    out = np.full_like(values, np.nan)
    if len(values) > points:
        out[points:] = _ratio(values[points:], np.full(len(values) - points, np.median(values[:points])))
    return out


def vs_previous(values: np.ndarray) -> np.ndarray:
    """value ÷ previous value: the fall over one due interval."""
    out = np.full_like(values, np.nan)
    out[1:] = _ratio(values[1:], values[:-1])
    return out


def vs_best_after_warmup(values: np.ndarray, points: int = 3) -> np.ndarray:
    """value ÷ best so far, both counted from point ``points`` on (NaN during the warm-up)."""
    out = np.full_like(values, np.nan)
    if len(values) > points:
        out[points:] = vs_best(values[points:])
    return out


TRANSFORMS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "best": vs_best,
    "init": vs_initial,
    "step": vs_previous,
    "warm": vs_best_after_warmup,
}


@dataclass(frozen=True)
class Candidate:
    """A statistic that a low-side rule would threshold (lower = more alarming)."""

    name: str
    metric_suffix: str  # tag ends with this (any embeddings key)
    transform: str | None  # key of TRANSFORMS, or None for the raw value
    sign: float = 1.0  # -1: a high-side statistic, negated so that "lower = more alarming" holds

    def values(self, run: Run) -> list[Series]:
        out = []
        for tag, (steps, values) in run.series.items():
            if not tag.startswith("train/") or not tag.endswith(self.metric_suffix):
                continue
            stat = TRANSFORMS[self.transform](values) if self.transform else values.copy()
            out.append((steps, self.sign * stat))
        return out


def collapse_candidates() -> list[Candidate]:
    out = []
    for metric in ("std", "norm", "rankme", "effective_rank"):
        for transform in ("best", "init", "step"):
            out.append(Candidate(f"{metric}/{transform}", f"/collapse/{metric}", transform))
    for metric in ("rankme", "effective_rank"):  # dimensional collapse after a warm-up (byol-lr-kill)
        out.append(Candidate(f"{metric}/warm", f"/collapse/{metric}", "warm"))
    out.append(Candidate("std (raw)", "/collapse/std", None))
    out.append(Candidate("-mean_cos (raw)", "/collapse/mean_cos", None, sign=-1.0))
    # The collapse_scale members (runs trained after they were added: /work/detruns-calib).
    out.append(Candidate("-vicreg_var (raw)", "/collapse_scale/vicreg_var", None, sign=-1.0))
    for transform in ("best", "step"):
        out.append(Candidate(f"dim_std_mean/{transform}", "/collapse_scale/dim_std_mean", transform))
    out.append(Candidate("dim_std_min/best", "/collapse_scale/dim_std_min", "best"))
    return out


def _nanmin(a: np.ndarray) -> float:
    a = a[np.isfinite(a)]
    return float(a.min()) if a.size else math.nan


def healthy_worst(run: Run, cand: Candidate) -> float:
    """The most alarming value a healthy run reaches (minimum over every point)."""
    vals = [_nanmin(v) for _, v in cand.values(run)]
    vals = [v for v in vals if not math.isnan(v)]
    return min(vals) if vals else math.nan


def broken_at(run: Run, cand: Candidate, due: int) -> tuple[float, float]:
    """(least alarming pre-onset value's minimum, most alarming value in [onset, onset + due])."""
    onset = int(run.truth["onset"])
    before, after = [], []
    for steps, v in cand.values(run):
        pre = v[steps < onset]
        post = v[(steps >= onset) & (steps <= onset + due)]
        before.append(_nanmin(pre) if pre.size else math.nan)
        after.append(_nanmin(post) if post.size else math.nan)
    pick = [a for a in after if not math.isnan(a)]
    pre = [b for b in before if not math.isnan(b)]
    return (min(pre) if pre else math.nan, min(pick) if pick else math.nan)


def _scenario(run: Run) -> str:
    return run.name.split("/")[0]


def report_collapse(runs: list[Run], due: int = 100, only: list[str] | None = None) -> None:
    """Per candidate and scenario: healthy runs' most alarming value vs broken runs' value after onset."""
    healthy = [r for r in runs if r.healthy]
    broken = [r for r in runs if r.truth.get("category") == "collapse"]
    print(f"== collapse: {len(healthy)} healthy runs ({sum(r.holdout for r in healthy)} held out; those without")
    print(f"   `embeddings` have no row), {len(broken)} broken")
    print("   healthy row: the most alarming value (min over every point and seed); broken row: the least")
    print(f"   alarming seed's min over [onset, onset+{due}] (what a threshold must lie above), and its min")
    print("   before onset (what it must lie below). A threshold t separates when broken < t <= healthy.")
    for cand in collapse_candidates():
        if only and cand.name not in only:
            continue
        rows: dict[str, tuple[str, float, float]] = {}
        for r in healthy:
            v = healthy_worst(r, cand)
            if math.isnan(v):
                continue
            kind = "healthy (held out)" if r.holdout else "healthy"
            old = rows.get(_scenario(r), (kind, math.inf, math.nan))
            rows[_scenario(r)] = (kind, min(old[1], v), math.nan)
        for r in broken:
            pre, post = broken_at(r, cand, due)
            if math.isnan(post):
                continue
            old = rows.get(_scenario(r), ("broken@" + str(r.truth["onset"]), -math.inf, math.inf))
            pre_min = min(old[2], pre) if not math.isnan(pre) else old[2]
            rows[_scenario(r)] = (old[0], max(old[1], post), pre_min)
        if not rows:
            continue
        floor = min((v for k, v, _ in rows.values() if k.startswith("healthy")), default=math.nan)
        tuned = min((v for k, v, _ in rows.values() if k == "healthy"), default=math.nan)
        print(f"\n  {cand.name}: healthy floor {floor:.4g} (tuned-on only: {tuned:.4g})")
        for name, (kind, value, pre) in sorted(rows.items(), key=lambda x: (x[1][0].startswith("broken"), x[0])):
            if kind.startswith("healthy"):
                print(f"    {name:24s} {kind:19s} min {value:9.4g}")
                continue
            sep = value < floor and not pre < floor
            margin = floor / value if value > 0 and floor > 0 else math.nan
            pre_s = f"{pre:9.4g}" if math.isfinite(pre) else "        -"
            print(
                f"    {name:24s} {kind:19s} max {value:9.4g}  pre-onset min {pre_s}  "
                f"healthy floor / this ×{margin:5.3g}  {'SEPARATES' if sep else 'overlaps'}"
            )


def report_accuracy_gap(runs: list[Run]) -> None:
    """The accuracy-gap rule (SCORE_GAP) re-run with other smoothing / persistence on every run that has it."""
    from dataclasses import replace

    from metricreg.health import evaluate_series
    from metricreg.manifest import SCORE_GAP

    tag = "gap/accuracy"
    with_gap = [r for r in runs if tag in r.series and r.truth.get("category") in (None, "generalization")]
    healthy = [r for r in with_gap if r.healthy]
    broken = [r for r in with_gap if not r.healthy]
    if not healthy or not broken:
        return
    print(f"\n== {tag}: the rule (critical > {SCORE_GAP.critical_above}, persistence {SCORE_GAP.persistence}) with")
    print(f"   other smoothing / persistence; {len(healthy)} healthy runs, {len(broken)} overfitting runs")
    print("   healthy max: the largest raw gap any healthy run reaches; per overfitting run: the eval step")
    print("   the rule turns critical (onset = the eval with the lowest validation loss).")
    hmax = max(float(np.nanmax(r.series[tag][1])) for r in healthy) if healthy else math.nan
    print(f"   healthy max raw gap {hmax:.4g}; overfitting runs' gaps:")
    for r in broken:
        steps, v = r.series[tag]
        print(
            f"    {r.name:26s} onset {r.truth['onset']}: "
            + " ".join(f"{int(a)}:{b:.3f}" for a, b in zip(steps[:8], v[:8], strict=True))
        )
    for smoothing in (0.0, 0.6, 0.8):
        for persistence in (1, 2, 3, 4, 5, 6):
            rule = replace(SCORE_GAP, smoothing=smoothing, persistence=persistence)
            false = sum(bool(evaluate_series(tag, *r.series[tag], rule).alerts) for r in healthy)
            cells = []
            for r in broken:
                alerts = [a for a in evaluate_series(tag, *r.series[tag], rule).alerts if a.level == "critical"]
                step = min((a.critical_step or a.first_step) for a in alerts) if alerts else None
                delay = "missed" if step is None else f"{step - int(r.truth['onset']):+d}"
                cells.append(f"{r.name.split('/')[1]} {delay:>6s}")
            print(
                f"    smoothing {smoothing:.1f} persistence {persistence}: healthy runs alerting {false}/{len(healthy)}; "
                f"delay vs onset: {', '.join(cells)}"
            )
    # The gap gated by Prechelt's GL > 0: it counts only once the validation loss is above its best.
    cells = []
    for r in broken:
        step = _gated_gap_step(r, tag, SCORE_GAP.critical_above, SCORE_GAP.persistence)
        delay = "missed" if step is None else f"{step - int(r.truth['onset']):+d}"
        cells.append(f"{r.name.split('/')[1]} {delay:>6s}")
    print(
        f"    gated (gap > {SCORE_GAP.critical_above} for {SCORE_GAP.persistence} evals AND val/loss above its best):"
        f" healthy runs alerting 0/{len(healthy)} (the gap alone never crosses); delay vs onset: {', '.join(cells)}"
    )


def _gated_gap_step(run: Run, tag: str, threshold: float, persistence: int) -> int | None:
    """First eval where the gap has been above ``threshold`` for ``persistence`` evals and val/loss is no new best."""
    steps, gap = run.series[tag]
    if "val/loss" not in run.series:
        return None
    vsteps, vloss = run.series["val/loss"]
    best, streak, by_step = math.inf, 0, dict(zip(vsteps.tolist(), vloss.tolist(), strict=True))
    for step, g in zip(steps.tolist(), gap.tolist(), strict=True):
        loss = by_step.get(step, math.nan)
        above_best = loss > best
        best = min(best, loss) if math.isfinite(loss) else best
        streak = streak + 1 if g > threshold else 0
        if streak >= persistence and above_best:
            return int(step)
    return None


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.detection.analyse", description=__doc__.split("\n")[0])
    p.add_argument("--logdir", nargs="+", default=["/work/detruns2"], help="saved benchmark runs (several: pooled)")
    p.add_argument("--due", type=int, default=100, help="the due interval a detection must fall within")
    p.add_argument("--candidate", nargs="+", metavar="NAME", help="only these collapse candidates (e.g. norm/best)")
    args = p.parse_args(argv)
    runs = list(load_runs(args.logdir))
    report_collapse(runs, args.due, args.candidate)
    report_accuracy_gap(runs)


if __name__ == "__main__":
    main()
