"""Health rules: TensorBoard smoothing, thresholds, persistence, batch == live."""

import math
import random

import pytest

import metricreg as mr
from metricreg.health import HealthTracker, evaluate_series, level_of, smooth


def tensorboard_classic_smoothing(ys, w):
    """A direct transcription of TensorBoard's data_transformer.ts classicSmoothing."""
    if all(y == ys[0] for y in ys):
        return list(ys)
    last, n, out = 0.0, 0, []
    for y in ys:
        if not math.isfinite(y):
            out.append(y)
        else:
            last = last * w + (1 - w) * y
            n += 1
            out.append(last / (1 - w**n) if w != 1 else last)
    return out


def test_smoothing_matches_tensorboard():
    rng = random.Random(0)
    ys = [rng.gauss(0, 1) for _ in range(200)]
    ys[10] = float("nan")
    ys[50] = float("inf")
    for w in (0.0, 0.3, 0.6, 0.95):
        got = smooth(ys, w)
        want = tensorboard_classic_smoothing(ys, w) if w else ys
        for a, b in zip(got, want, strict=True):
            assert (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, rel=1e-12)
    assert smooth([2.0] * 5, 0.6) == [2.0] * 5


def test_levels():
    h = mr.Health(warn_below=0.5, critical_below=0.1, warn_above=10, critical_above=100)
    assert level_of(1.0, h)[0] == "ok"
    assert level_of(0.3, h)[:2] == ("warn", "below")
    assert level_of(0.05, h)[:3] == ("critical", "below", 0.1)
    assert level_of(50, h)[:2] == ("warn", "above")
    assert level_of(float("nan"), h)[:2] == ("critical", "nonfinite")


def test_persistence_delays_and_clearing_closes_alerts():
    h = mr.Health(critical_below=1.0, persistence=3)
    values = [5, 0.5, 0.5, 5, 0.5, 0.5, 0.5, 0.5, 5]
    verdict = evaluate_series("t", range(len(values)), values, h)
    assert len(verdict.alerts) == 1
    alert = verdict.alerts[0]
    assert (alert.level, alert.first_step, alert.last_step, alert.active) == ("critical", 6, 7, False)
    assert verdict.status == "ok"


def test_escalation_warn_then_critical():
    h = mr.Health(warn_above=1, critical_above=10, description="d", remedy="r")
    verdict = evaluate_series("loss", [0, 1, 2, 3], [0.5, 2, 20, 30], h)
    levels = [(a.level, a.first_step, a.active) for a in verdict.alerts]
    assert levels == [("warn", 1, True), ("critical", 2, True)]
    assert verdict.status == "critical"
    assert "above the critical threshold 10" in verdict.alerts[1].message
    assert verdict.alerts[1].remedy == "r"


def test_live_tracker_equals_batch_evaluation():
    rng = random.Random(1)
    h = mr.Health(warn_below=0.4, critical_below=0.2, smoothing=0.6, persistence=2)
    values = [max(0.0, 1 - i / 80 + rng.gauss(0, 0.1)) for i in range(120)]
    tracker = HealthTracker("x", h)
    fired = []
    for i, v in enumerate(values):
        fired += [(a.level, a.first_step) for a in tracker.feed(i, v) if a.active]
    batch = evaluate_series("x", range(120), values, h)
    assert fired == [(a.level, a.first_step) for a in batch.alerts]
    assert fired and fired[0][0] == "warn"


def test_smoothing_override_changes_what_fires():
    h = mr.Health(critical_above=1.0)
    values = [0.0] * 10 + [5.0] + [0.0] * 5
    assert evaluate_series("x", range(16), values, h).alerts
    assert not evaluate_series("x", range(16), values, h, smoothing=0.9).alerts
