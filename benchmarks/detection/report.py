"""The results tables: plain text for the terminal, GitHub markdown for docs/metrics.md, JSON for tools."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import Any

from benchmarks.detection.score import RunScore, ScenarioSummary, Totals, false_causes, summarize, totals

HEADER = ("scenario", "truth", "seeds", "detected", "delay med/max", "false warn", "false crit", "evidence")

# The loop's own measure of whether training worked, shown so that a reader can check the
# ground truth: (info key, label, format).
EVIDENCE = (
    ("decoder_val_psnr", "decoder val PSNR", "{:.1f} dB"),
    ("projection_norm_fall", "emb. norm ×", "{:.2f}"),
    ("val_retrieval_top1", "val top-1", "{:.2f}"),
    ("final_val_accuracy", "val acc", "{:.2f}"),
    ("knn_accuracy", "k-NN acc", "{:.2f}"),
    ("final_val_psnr", "val PSNR", "{:.1f} dB"),
)


def evidence(s: ScenarioSummary) -> str:
    """The median over seeds of the run's evidence, e.g. ``val acc 0.98`` (final value; – if none)."""
    for key, label, fmt in EVIDENCE:
        values = [r.evidence.get(key) for r in s.runs]
        values = [float(v) for v in values if isinstance(v, (int, float))]
        if values:
            return f"{label} {fmt.format(statistics.median(values))}"
    return "–"


def _delay(s: ScenarioSummary) -> str:
    if s.healthy or s.delay_median is None:
        return "–"
    med = s.delay_median
    return f"{med:g}/{s.delay_max}"


def _detected(s: ScenarioSummary) -> str:
    """``k/n`` broken runs detected; stressed runs need no detection, their warns after onset are shown."""
    if s.healthy:
        return "–"
    if s.stressed == s.seeds:
        return f"– ({s.stress_warned}/{s.stressed} warn)"
    return f"{s.detected}/{s.broken_runs}" + (f" (+{s.stressed} stressed)" if s.stressed else "")


def row(s: ScenarioSummary) -> tuple[str, ...]:
    detected = _detected(s)
    name = s.scenario + (" †" if s.errors else "")
    return (name, s.truth, str(s.seeds), detected, _delay(s), str(s.false_warn), str(s.false_critical), evidence(s))


def _groups(summaries: Sequence[ScenarioSummary]) -> dict[str, list[ScenarioSummary]]:
    out: dict[str, list[ScenarioSummary]] = {}
    for s in summaries:
        out.setdefault(s.group + (" (held out)" if s.holdout and "holdout" not in s.group else ""), []).append(s)
    return out


def summary_line(t: Totals) -> str:
    parts = [
        f"healthy runs with any alert: {t.healthy_alerting}/{t.healthy_runs}",
        f"broken runs not detected: {t.broken_missed}/{t.broken_runs}",
        f"detected late (> one due interval): {t.broken_late}/{t.broken_runs}",
        f"broken runs alerting before onset: {t.broken_false_before_onset}/{t.broken_runs}",
    ]
    if t.stressed_runs:
        parts.append(
            f"stressed runs with a critical alert or an alert before onset: {t.stressed_alarmed}/{t.stressed_runs} "
            f"(warned after onset: {t.stressed_warned}/{t.stressed_runs})"
        )
    if t.failed_runs:
        parts.append(f"failed runs (†): {t.failed_runs}")
    return "; ".join(parts) + (" — targets met" if t.targets_met else " — targets missed")


def text_tables(scores: Sequence[RunScore], details: bool = False, causes: int = 15) -> str:
    """One table per scenario group, the summary line, and the main false-alert causes."""
    summaries = summarize(scores)
    out: list[str] = []
    for group, rows in _groups(summaries).items():
        cells = [HEADER, *(row(s) for s in rows)]
        widths = [max(len(c[i]) for c in cells) for i in range(len(HEADER))]
        out.append(f"== {group}")
        for i, c in enumerate(cells):
            left = (0, 1, len(HEADER) - 1)  # names and evidence read left to right; numbers align right
            cols = (v.ljust(w) if j in left else v.rjust(w) for j, (v, w) in enumerate(zip(c, widths, strict=True)))
            out.append("  ".join(cols).rstrip())
            if i == 0:
                out.append("  ".join("-" * w for w in widths))
        out.append("")
    out.append(summary_line(totals(scores)))
    top = false_causes(scores)[:causes] if causes else []
    if top:
        out.append("")
        out.append("false alerts by tag (runs, level, earliest step, values at onset):")
        for c in top:
            out.append(
                f"  {c.runs:3d} run(s)  {c.level:<8} {c.tag}  from step {c.first_step_min}, "
                f"value {_num(c.value_min)}..{_num(c.value_max)}  [{', '.join(c.scenarios)}]"
            )
    failed = [s for s in scores if s.error]
    if failed:
        out.append("")
        out.append("failed runs:")
        out.extend(f"  † {s.run}: {s.error}" for s in failed)
    if details:
        out.append("")
        out.append("per run:")
        for s in scores:
            verdict = "meets target" if s.meets_target else "MISSES target"
            det = f", detected at {s.detection_step} (delay {s.delay})" if s.detected and s.broken else ""
            kind = "stressed " if s.stressed else ""
            out.append(f"  {s.run} [{kind}{s.category or 'healthy'}@{s.onset}] {verdict}{det}, {s.alerts} alert(s)")
            if s.outcome:
                o = s.outcome
                out.append(
                    f"      outcome: {o['kind']} ({o['rule']}: {_num(o['value'])} vs floor {_num(o['floor'])}, "
                    f"healthy min {_num(o['healthy_min'])})"
                )
            if s.evidence:
                out.append("      evidence: " + ", ".join(f"{k}={_fmt(v)}" for k, v in s.evidence.items()))
            for a in s.false_alerts:
                out.append(f"      false {a.level:<8} {a.tag} from step {a.first_step}, value {_num(a.value)}")
            for a in s.after_onset[:8]:
                out.append(
                    f"      after onset {a.level:<8} {a.category}: {a.tag} from step {a.first_step}, value {_num(a.value)}"
                )
            if len(s.after_onset) > 8:
                out.append(f"      ... {len(s.after_onset) - 8} more after onset")
            for e in s.metric_errors:
                out.append(f"      metric error: {e}")
    return "\n".join(out)


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _num(v: float) -> str:
    return "nan" if not math.isfinite(v) else f"{v:.4g}"


def markdown(scores: Sequence[RunScore]) -> str:
    """The results as GitHub markdown tables (one per scenario group), for docs/metrics.md."""
    summaries = summarize(scores)
    out: list[str] = []
    for group, rows in _groups(summaries).items():
        out.append(f"**{group}**")
        out.append("")
        out.append("| " + " | ".join(HEADER) + " |")
        out.append("|" + "|".join(["---", "---", "--:", "--:", "--:", "--:", "--:", "---"]) + "|")
        for s in rows:
            cells = list(row(s))
            cells[0] = f"`{cells[0]}`"
            out.append("| " + " | ".join(cells) + " |")
        out.append("")
    out.append(summary_line(totals(scores)) + ".")
    out.append("")
    out.append(
        "detected: runs with a critical alert in the expected category opening at or after the onset; "
        "delay: its first step minus the onset (steps); false warn / false crit: alert episodes, summed over "
        "seeds, that open before the onset (every alert of a healthy run; for a stressed run also every critical "
        "after it); stressed: a fault was injected but the run's recorded outcome stays within the healthy range "
        "(benchmarks/detection/outcome.py), so no detection is required and warns after the onset are shown "
        "apart (runs with one / stressed runs); evidence: the median over seeds of the "
        "final validation accuracy, k-NN probe accuracy (SSL) or validation PSNR: does the ground truth hold?"
    )
    return "\n".join(out) + "\n"


def _plain(x: Any) -> Any:
    """NaN/Inf as strings: strict JSON readers (jq, browsers) reject Python's bare NaN."""
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    return x


def as_json(scores: Sequence[RunScore]) -> dict[str, Any]:
    """Totals, one row per scenario, the false-alert causes and every run's score (strict JSON)."""
    return _plain(_as_json(scores))


def _as_json(scores: Sequence[RunScore]) -> dict[str, Any]:
    t = totals(scores)
    return {
        "totals": {**t.__dict__, "targets_met": t.targets_met},
        "scenarios": [
            {
                "scenario": s.scenario,
                "group": s.group,
                "truth": s.truth,
                "holdout": s.holdout,
                "seeds": s.seeds,
                "detected": None if s.healthy else s.detected,
                "stressed": s.stressed,
                "stress_warned": s.stress_warned,
                "delay_median": s.delay_median,
                "delay_max": s.delay_max,
                "false_warn": s.false_warn,
                "false_critical": s.false_critical,
            }
            for s in summarize(scores)
        ],
        "false_causes": [c.__dict__ for c in false_causes(scores)],
        "runs": [s.to_dict() for s in scores],
    }
