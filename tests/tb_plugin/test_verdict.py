"""metricreg.verdict and metricreg.reader: the run verdict shared by the tab and the CLI."""

from __future__ import annotations

import math

import numpy as np
import pytest

from metricreg.health import evaluate_series
from metricreg.manifest import Manifest
from metricreg.reader import find_runs, read_logdir
from metricreg.spec import Health
from metricreg.verdict import (
    downsample_indices,
    evaluate_run,
    gap_pairs,
    has_conventional_tags,
    judge_series,
    summarize_run,
)


@pytest.mark.parametrize("seed", range(40))
def test_judge_series_shortcut_agrees_with_evaluate_series(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 60))
    values = rng.normal(0.0, 1.0, n).cumsum() * rng.choice([0.01, 0.3, 1.0])
    if seed % 5 == 0:
        values[rng.integers(0, n)] = rng.choice([np.nan, np.inf, -np.inf])
    if seed % 7 == 0:
        values[:] = 0.5  # constant: TensorBoard leaves it unsmoothed
    steps = np.arange(n) * 10
    health = Health(
        category="x",
        warn_above=float(rng.choice([0.5, 1.0, 5.0])),
        critical_above=float(rng.choice([5.0, 10.0])),
        warn_below=-0.5 if seed % 2 else None,
        persistence=int(rng.integers(1, 4)),
        smoothing=float(rng.choice([0.0, 0.6])),
    )
    for smoothing in (None, 0.0, 0.9):
        status, alerts = judge_series("t", steps, values, health, smoothing, run="r")
        exact = evaluate_series("t", steps.tolist(), values.tolist(), health, smoothing, run="r")
        assert status == exact.status
        assert repr([a.to_dict() for a in alerts]) == repr([a.to_dict() for a in exact.alerts])


def test_judge_series_edge_at_threshold_uses_the_exact_path():
    health = Health(warn_below=0.5, smoothing=0.6)
    values = np.array([0.5, 0.5000000001, 0.5, 0.5])
    status, _ = judge_series("t", np.arange(4), values, health)
    assert status == evaluate_series("t", range(4), values.tolist(), health).status
    assert judge_series("t", np.arange(0), np.array([]), health) == ("none", [])


def test_downsample_indices_keeps_shape_and_spikes():
    values = np.sin(np.linspace(0, 20, 10_000))
    values[4321] = 50.0
    values[777] = np.nan
    values[8888] = -np.inf
    idx = np.asarray(downsample_indices(values, 300))
    assert len(idx) <= 300
    assert idx[0] == 0 and idx[-1] == 9999
    assert np.all(np.diff(idx) > 0)
    assert {4321, 777, 8888} <= set(idx.tolist())
    assert list(downsample_indices(values[:10], 300)) == list(range(10))
    assert len(downsample_indices(values, 3)) <= 3


def test_gap_pairs_and_directions():
    tags = ["train/loss", "val/loss", "test/loss", "train/accuracy", "val/accuracy", "val/only", "lr", "train/x"]
    pairs = {p.prefix: p for p in gap_pairs(tags)}
    assert set(pairs) == {"gap/loss", "gap/test/loss", "gap/accuracy"}
    assert pairs["gap/loss"].eval_tag == "val/loss" and pairs["gap/loss"].direction == "lower_is_better"
    assert pairs["gap/accuracy"].direction == "higher_is_better"
    assert has_conventional_tags(tags)
    assert has_conventional_tags(["gap/loss_relative"])
    assert not has_conventional_tags(["train/loss", "lr", "val/other"])


def test_generalization_gap_arithmetic():
    series = {
        "train/loss": ([0, 1, 2, 3, 4, 5], [4.0, 2.0, 2.0, 1.0, 1.0, 1.0], [0.0] * 6),
        "val/loss": ([2, 5], [3.0, 4.0], [10.0, 11.0]),
        "train/acc": ([0, 5], [0.8, 0.9], [0.0, 0.0]),
        "val/acc": ([5], [0.6], [0.0]),
    }
    verdict = evaluate_run("r", None, series)
    got = {m.tag: m for m in verdict.metrics}
    gap = got["gap/loss"]
    # step 2: 3 - mean(4, 2, 2) = 0.333..; step 5: 4 - mean(1, 1, 1) = 3
    assert gap.steps.tolist() == [2, 5]
    assert gap.values.tolist() == pytest.approx([3 - 8 / 3, 3.0])
    assert gap.wall_times.tolist() == [10.0, 11.0]
    assert got["gap/loss_relative"].values.tolist() == pytest.approx([(3 - 8 / 3) / (8 / 3), 3.0])
    assert got["gap/loss_relative"].status == "ok"  # informational
    # accuracy: train mean(0.8, 0.9) - val 0.6 = +0.25 (positive = worse), a single point: no alert yet
    assert got["gap/acc"].values.tolist() == pytest.approx([0.25])
    assert "gap/acc_gl" not in got and "gap/loss_gl" not in got  # a classifier: no GL at all
    assert got["train/loss"].category == "generalization" and got["train/loss"].status == "none"
    assert not verdict.has_manifest and verdict.derived_gaps


def test_gl_and_a_rising_eval_loss_without_a_classification_score():
    steps = list(range(0, 60))
    series = {
        "train/loss": (steps, [1.0 / (1 + s) for s in steps], [0.0] * 60),
        "val/loss": ([9, 19, 29, 39, 49, 59], [3.0, 2.0, 2.1, 2.3, 2.5, 2.6], [0.0] * 6),
    }
    verdict = evaluate_run("r", None, series)
    gl = next(m for m in verdict.metrics if m.tag == "gap/loss_gl")
    # Prechelt GL: 100 * (E / min E so far - 1)
    assert gl.values.tolist() == pytest.approx([0.0, 0.0, 5.0, 15.0, 25.0, 30.0])
    # Warn above 5 for 3 evals: from step 49 (5.0000001, 15, 25); critical above 10 for 3: at step 59.
    (alert,) = verdict.alerts
    assert (alert.tag, alert.level, alert.first_step, alert.critical_step) == ("gap/loss_gl", "critical", 49, 59)
    assert "warn since step 49 (value then 25), critical from step 59" in alert.message


def test_nan_in_training_window_makes_the_gap_nonfinite():
    series = {"train/loss": ([0, 1], [1.0, math.nan], [0, 0]), "val/loss": ([1], [2.0], [0])}
    verdict = evaluate_run("r", None, series)
    gap = next(m for m in verdict.metrics if m.tag == "gap/loss")
    assert math.isnan(gap.values[0]) and gap.status == "critical"
    assert any(a.bound == "nonfinite" for a in verdict.alerts)


def test_existing_gap_tags_win_and_manifest_runs_do_not_derive():
    series = {
        "train/loss": ([0, 1], [1.0, 1.0], [0, 0]),
        "val/loss": ([1], [5.0], [0]),
        "gap/loss_relative": ([1], [0.1], [0]),
    }
    verdict = evaluate_run("r", None, series)
    rel = next(m for m in verdict.metrics if m.tag == "gap/loss_relative")
    assert rel.values.tolist() == [pytest.approx(0.1)] and not rel.derived_from
    with_manifest = evaluate_run("r", Manifest({"version": 1, "metrics": [{"name": "x"}]}), series)
    assert not with_manifest.derived_gaps
    assert evaluate_run("r", None, series, derive_gaps=False).derived_gaps is False


def test_internal_tags_are_skipped_and_dropped_is_reported():
    series = {"_metricreg/dropped": ([5], [3.0], [0]), "gap/x": ([0], [1.0], [0])}
    verdict = evaluate_run("r", None, series)
    assert [m.tag for m in verdict.metrics] == ["gap/x"]
    assert verdict.dropped == 3 and verdict.summary()["dropped"] == 3


@pytest.mark.parametrize("bad", [-0.1, 1.0, math.nan, math.inf, True])
def test_bad_smoothing_raises(bad):
    with pytest.raises(ValueError):
        evaluate_run("r", None, {}, smoothing=bad)


def test_empty_run():
    verdict = evaluate_run("r", None, {})
    assert verdict.status == "none" and verdict.categories == [] and verdict.last_step is None
    summary = summarize_run("r", None, {})
    assert summary["status"] == "none" and summary["worst_alert"] is None


def test_reader_finds_runs_like_tensorboard(health_logdir):
    runs = find_runs(health_logdir.path)
    assert set(runs) == {*health_logdir.listed, health_logdir.unrelated}
    data = read_logdir(health_logdir.path)
    collapse = data[health_logdir.collapse]
    assert collapse.has_manifest
    assert "collapse" in collapse.manifest.metrics
    assert collapse.series["train/collapse/rankme"][0].tolist()[:3] == [0, 20, 40]
    flaky = data[health_logdir.flaky]
    assert flaky.errors["flaky/score"]["disabled"] is True
    assert not data[health_logdir.plain].has_manifest
    with pytest.raises(FileNotFoundError):
        find_runs(health_logdir.path + "/nope")


def test_reader_verdicts_match_the_tab(health_logdir, harness):
    """The CLI path (reader + verdict) and the tab (data provider + verdict) agree exactly."""
    rows = {r["run"]: r for r in harness.runs()["runs"]}
    for run, data in read_logdir(health_logdir.path).items():
        summary = data.evaluate().summary()
        if run == health_logdir.unrelated:
            assert run not in rows and summary["status"] == "none"
            continue
        assert summary["status"] == rows[run]["status"], run
        assert summary["categories"] == rows[run]["categories"], run
        assert summary["alert_count"] == rows[run]["alert_count"], run
        assert summary["error_count"] == rows[run]["error_count"], run
