"""The "stressed" ground truth: an injected fault whose recorded outcome stays within the healthy range.

No training: the scorer's rules on runs whose alerts and evidence are known exactly,
and the judge command on a scripted run that poses as ``byol-lr10`` beside a healthy twin.
"""

from __future__ import annotations

import json

import pytest

import metricreg as mr
from benchmarks.detection.__main__ import main
from benchmarks.detection.outcome import OutcomeCheck, resolve_outcomes
from benchmarks.detection.report import markdown, text_tables
from benchmarks.detection.scenarios import BY_NAME
from benchmarks.detection.score import AlertRecord, RunScore, summarize, totals

CHECK = {"inj": OutcomeCheck("twin", key="knn_accuracy", margin=0.05)}


def _twin(seed: int, knn: float) -> RunScore:
    return RunScore(f"twin/seed{seed}", "twin", "g", seed, None, None, evidence={"knn_accuracy": knn})


def _injected(seed: int, knn: float, *alerts: AlertRecord) -> RunScore:
    s = RunScore(f"inj/seed{seed}", "inj", "g", seed, "stability", 1000, evidence={"knn_accuracy": knn})
    s.after_onset = list(alerts)
    s.alerts = len(alerts)
    return s


WARN = AlertRecord("train/ema/weight_norm_ratio", "ema", "warn", 1100, 1.2, False)
CRIT = AlertRecord("train/optimization/update_ratio", "optimization", "critical", 1000, 0.17, False, 1000)


def test_a_run_within_the_margin_of_its_healthy_twins_is_stressed_and_its_warns_are_no_miss():
    runs = [_twin(0, 0.92), _twin(1, 0.94), _injected(0, 0.875, WARN)]
    resolve_outcomes(runs, CHECK)
    s = runs[-1]
    assert s.stressed and s.kind == "stressed"
    assert s.outcome["floor"] == pytest.approx(0.87) and s.outcome["kind"] == "stressed"
    assert s.meets_target  # not detected, and nothing is required
    assert (s.false_warn, s.false_critical, len(s.stress_warns)) == (0, 0, 1)
    t = totals(runs)
    assert (t.broken_runs, t.stressed_runs, t.stressed_warned, t.stressed_alarmed) == (0, 1, 1, 0)
    assert t.targets_met


def test_a_critical_alert_on_a_stressed_run_is_a_false_alarm_even_after_onset():
    runs = [_twin(0, 0.92), _injected(0, 0.91, CRIT)]
    resolve_outcomes(runs, CHECK)
    s = runs[-1]
    assert s.stressed and not s.meets_target
    assert s.false_critical == 1 and s.stress_critical == [CRIT]
    t = totals(runs)
    assert t.stressed_alarmed == 1 and not t.targets_met
    [row] = [r for r in summarize(runs) if r.scenario == "inj"]
    assert row.truth == "stressed (stability@1000)" and row.false_critical == 1


def test_a_run_below_the_margin_is_broken_and_must_be_detected():
    runs = [_twin(0, 0.92), _twin(1, 0.94), _injected(0, 0.869, WARN)]
    resolve_outcomes(runs, CHECK)
    s = runs[-1]
    assert s.broken and not s.stressed and s.outcome["kind"] == "broken"
    assert not s.meets_target  # a warn is not a detection
    t = totals(runs)
    assert (t.broken_runs, t.broken_missed, t.stressed_runs) == (1, 1, 0)


def test_without_its_healthy_twin_the_outcome_is_undecided_and_says_which_twin():
    runs = [_injected(0, 0.91)]
    resolve_outcomes(runs, CHECK)
    assert not runs[0].stressed
    assert "no healthy 'twin' runs" in runs[0].error
    assert totals(runs).failed_runs == 1


def test_tables_show_stressed_rows_apart():
    runs = [_twin(0, 0.92), _injected(0, 0.91, WARN), _injected(1, 0.90)]
    resolve_outcomes(runs, CHECK)
    text, md = text_tables(runs), markdown(runs)
    assert "stressed (stability@1000)" in text and "– (1/2 warn)" in text
    assert "stressed runs with a critical alert or an alert before onset: 0/2 (warned after onset: 1/2)" in text
    assert "`inj`" in md and "stressed" in md


def test_outcome_check_rejects_bad_settings():
    with pytest.raises(ValueError, match="margin"):
        OutcomeCheck("byol", margin=-0.1)
    with pytest.raises(ValueError, match="healthy twin"):
        OutcomeCheck("")


def test_byol_lr10_is_judged_by_outcome_against_healthy_byol():
    assert BY_NAME["byol-lr10"].outcome == OutcomeCheck("byol")
    assert BY_NAME["byol-lr-kill"].outcome == OutcomeCheck("byol")


# --- the judge command on a scripted run posing as byol-lr10 ---------------------------------------


class Scripted:
    """warn (1.5) at steps 50-70, critical (3) from step 150."""

    @mr.hookimpl
    def metricreg_register_metrics(self, register):
        health = mr.Health(category="stability", warn_above=1.0, critical_above=2.0)
        value = lambda step: 1.5 if 50 <= step <= 70 else 3.0 if step >= 150 else 0.0  # noqa: E731
        register(mr.Metric("bench/scripted", compute=value, every=10, health=health))


def _run(path, truth, steps=200):
    path.mkdir(parents=True)
    with mr.Monitor(str(path), plugins=[Scripted()], builtins=False) as mon:
        for step in range(steps):
            mon.step(step)
    (path / "truth.json").write_text(json.dumps(truth))


def test_judge_decides_stressed_from_both_logdirs_and_check_fails_on_its_critical(tmp_path, capsys):
    healthy, injected = tmp_path / "healthy", tmp_path / "new"
    _run(
        healthy / "byol" / "seed0",
        {"scenario": "byol", "seed": 0, "category": None, "info": {"knn_accuracy": 0.92}},
        40,
    )
    truth = {"scenario": "byol-lr10", "seed": 0, "category": "stability", "onset": 100, "info": {"knn_accuracy": 0.91}}
    _run(injected / "byol-lr10" / "seed0", truth)
    report = tmp_path / "scores.json"
    # Alone, the injected run cannot be decided: its healthy twin is not there.
    assert main(["judge", "--logdir", str(injected), "--check"]) == 1
    assert "outcome undecided" in capsys.readouterr().out
    # With it: stressed; the warn at 50 precedes the onset and the critical at 150 is a false alarm.
    assert main(["judge", "--logdir", str(healthy), str(injected), "--check", "--json", str(report)]) == 1
    assert "stressed (stability@100)" in capsys.readouterr().out
    scored = {r["scenario"]: r for r in json.loads(report.read_text())["runs"]}["byol-lr10"]
    assert (scored["kind"], scored["false_warn"], scored["false_critical"]) == ("stressed", 1, 1)
    assert scored["outcome"]["floor"] == pytest.approx(0.87)
