"""The detection benchmark on a few short real runs: its scoring, and the issue's targets.

Trains seven short scenarios of ``benchmarks.detection`` (the ``--quick`` subset, one
seed each, ~15 s on a 2-core CPU) with a real default Monitor, then:

* checks the scorer on them (a NaN injected at step 300 is detected in stability at
  step 300) and on a synthetic run whose alerts are known exactly;
* asserts the issue's targets on a healthy and a broken scenario: zero alerts on the
  healthy BYOL run; the mid-run BYOL collapse critical in ``collapse``, never before
  onset, within one due interval (100 steps).
"""

from __future__ import annotations

import json

import pytest

pytest.importorskip("torch")
pytest.importorskip("sklearn")

import metricreg as mr
from benchmarks.detection.__main__ import main
from benchmarks.detection.report import markdown, text_tables
from benchmarks.detection.runner import find_runs, jobs_for, train_all
from benchmarks.detection.scenarios import select
from benchmarks.detection.score import score_run, totals
from metricreg.reader import read_run

QUICK = ("byol", "byol-collapse-mid", "byol-lr-kill", "mlp-regularised", "mlp-nan", "two-head-off", "paired-shuffle")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """scenario -> (run directory, truth) of the quick subset, trained once."""
    logdir = tmp_path_factory.mktemp("detruns")
    scenarios = select(QUICK, quick=True)
    assert [s.name for s in scenarios] == list(QUICK)
    train_all(jobs_for(scenarios, str(logdir), seeds=1), processes=1)
    found = find_runs(str(logdir))
    assert len(found) == len(QUICK)
    return {truth["scenario"]: (path, truth) for path, truth in found}


@pytest.fixture(scope="module")
def scores(runs):
    return {name: score_run(path, truth) for name, (path, truth) in runs.items()}


@pytest.mark.slow
def test_nan_injection_is_detected_in_stability_at_its_step(scores):
    s = scores["mlp-nan"]
    assert s.error is None
    assert (s.category, s.onset) == ("stability", 300)
    assert s.detected
    assert s.detection_step == 300  # the NaN loss is sampled at step 300 (every 10) and alarms at once
    assert s.delay == 0
    assert not s.late


@pytest.mark.slow
def test_tables_list_every_scenario(scores):
    text = text_tables(list(scores.values()))
    md = markdown(list(scores.values()))
    for name in QUICK:
        assert name in text
        assert f"`{name}`" in md
    assert "stability@300" in text
    assert "healthy runs with any alert:" in text


# --- the scorer on a run whose alerts are known exactly ------------------------------------------


def _scripted(step):
    """0 until step 50, 1.5 (warn) for steps 50-70, 0 again, then 3 (critical) from step 150."""
    if 50 <= step <= 70:
        return 1.5
    return 3.0 if step >= 150 else 0.0


class Scripted:
    @mr.hookimpl
    def metricreg_register_metrics(self, register):
        health = mr.Health(category="stability", warn_above=1.0, critical_above=2.0)
        register(mr.Metric("bench/scripted", compute=_scripted, every=10, health=health))


def _write_scripted(path):
    with mr.Monitor(str(path), plugins=[Scripted()], builtins=False) as mon:
        for step in range(200):
            mon.step(step)


def test_scorer_counts_false_alerts_before_onset_and_detects_after(tmp_path):
    _write_scripted(tmp_path)
    truth = {"scenario": "scripted", "seed": 0, "category": "stability", "onset": 100}
    s = score_run(str(tmp_path), truth)
    assert s.error is None
    assert (s.false_warn, s.false_critical) == (1, 0)
    [false] = s.false_alerts
    assert (false.tag, false.level, false.first_step, false.value) == ("train/bench/scripted", "warn", 50, 1.5)
    assert s.detected and s.detection_step == 150 and s.delay == 50
    assert not s.late and s.meets_target is False  # the warn before onset misses the target


def test_scorer_counts_every_alert_of_a_healthy_run_as_false(tmp_path):
    _write_scripted(tmp_path)
    s = score_run(str(tmp_path), {"scenario": "scripted", "seed": 0, "category": None, "onset": None})
    assert not s.detected
    assert s.false_warn >= 1 and s.false_critical >= 1
    assert min(a.first_step for a in s.false_alerts) == 50
    assert totals([s]).healthy_alerting == 1


def test_scorer_misses_a_detection_in_the_wrong_category(tmp_path):
    _write_scripted(tmp_path)
    s = score_run(str(tmp_path), {"scenario": "scripted", "seed": 0, "category": "collapse", "onset": 100})
    assert not s.detected and s.delay is None
    assert totals([s]).broken_missed == 1


def test_rejudging_with_changed_rules_uses_them_instead_of_the_recorded_ones(tmp_path):
    _write_scripted(tmp_path)
    truth = {"scenario": "scripted", "seed": 0, "category": "stability", "onset": 100}
    looser = mr.Health(category="stability", warn_above=2.5, critical_above=2.9)
    s = score_run(str(tmp_path), truth, rules={"bench/scripted": {"": looser.to_dict()}})
    assert s.false_alerts == []  # the 1.5 excursion at step 50 is no longer an alert
    assert s.detected and s.detection_step == 150
    recorded = score_run(str(tmp_path), truth)  # rules=None: the thresholds the run was written with
    assert recorded.false_warn == 1


def test_judge_cli_check_exits_1_only_when_a_target_is_missed(tmp_path, capsys):
    run = tmp_path / "scripted" / "seed0"
    _write_scripted(run)
    truth = {"scenario": "scripted", "seed": 0, "category": "stability", "onset": 100}
    (run / "truth.json").write_text(json.dumps(truth))
    report = tmp_path / "scores.json"
    assert main(["judge", "--logdir", str(tmp_path), "--json", str(report)]) == 0  # no --check: always 0
    assert "stability@100" in capsys.readouterr().out
    assert main(["judge", "--logdir", str(tmp_path), "--check"]) == 1  # the warn at step 50 precedes onset
    [scored] = json.loads(report.read_text())["runs"]
    assert [(a["tag"], a["level"], a["first_step"]) for a in scored["false_alerts"]] == [
        ("train/bench/scripted", "warn", 50)
    ]
    # Onset 50: nothing before it, critical at 150 = exactly one due interval later: on target.
    (run / "truth.json").write_text(json.dumps({**truth, "onset": 50}))
    assert main(["judge", "--logdir", str(tmp_path), "--check"]) == 0
    # Onset 40: the critical comes 110 steps later, more than one interval: late.
    (run / "truth.json").write_text(json.dumps({**truth, "onset": 40}))
    assert main(["judge", "--logdir", str(tmp_path), "--check"]) == 1
    assert "detected late (> one due interval): 1/1" in capsys.readouterr().out


# --- the targets (expected to fail until the rules are recalibrated) --------------------


@pytest.mark.slow
def test_target_healthy_byol_raises_no_alert(scores):
    s = scores["byol"]
    assert s.error is None
    assert s.false_alerts == [], [f"{a.level} {a.tag}@{a.first_step}={a.value:.4g}" for a in s.false_alerts]


@pytest.mark.slow
def test_target_byol_collapse_is_critical_in_collapse_within_one_interval(scores):
    s = scores["byol-collapse-mid"]
    assert s.error is None
    assert s.detected, "no critical collapse alert after onset"
    assert s.delay <= 100
    assert s.false_alerts == [], [f"{a.level} {a.tag}@{a.first_step}={a.value:.4g}" for a in s.false_alerts]


@pytest.mark.slow
def test_a_learning_rate_x100_in_byol_is_critical_in_stability_and_its_rank_fall_stays_informational(runs, scores):
    # Adam 1e-3 -> 0.1 at step 300: the weights move, in one interval, many times further than in
    # the whole run before (optimization/init_distance's jump rule, stability), while RankMe/d falls
    # ~3x. A healthy 2-class classifier's penultimate features lose as much rank (bc-slow-penultimate:
    # 0.34x its best after warm-up), so rankme_ratio has no rule: no collapse alert, only the chart.
    s = scores["byol-lr-kill"]
    assert s.error is None
    assert (s.category, s.onset) == ("stability", 300)
    assert s.detected and s.delay <= 100
    assert any(a.tag == "train/optimization/init_distance" and a.level == "critical" for a in s.after_onset)
    assert not any(a.category == "collapse" for a in s.after_onset)
    assert s.false_alerts == [], [f"{a.level} {a.tag}@{a.first_step}={a.value:.4g}" for a in s.false_alerts]
    steps, values = read_run(runs["byol-lr-kill"][0]).series["train/collapse/rankme_ratio"][:2]
    at = list(steps).index(300)
    assert values[at + 1] < 0.5 * values[at]


@pytest.mark.slow
def test_a_head_cut_off_from_its_loss_is_critical_in_optimization_at_onset(scores):
    s = scores["two-head-off"]
    assert s.error is None
    assert (s.category, s.onset) == ("optimization", 300)
    assert s.detected and s.delay == 0  # heads are due every 100 steps; the decoder's gradient is 0 from 300
    assert s.false_alerts == [], [f"{a.level} {a.tag}@{a.first_step}={a.value:.4g}" for a in s.false_alerts]


@pytest.mark.slow
def test_misaligned_pairs_are_critical_in_prediction_within_one_interval(scores):
    s = scores["paired-shuffle"]
    assert s.error is None
    assert (s.category, s.onset) == ("prediction", 300)
    assert s.detected and s.delay <= 100
    assert s.false_alerts == [], [f"{a.level} {a.tag}@{a.first_step}={a.value:.4g}" for a in s.false_alerts]
