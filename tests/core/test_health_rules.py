"""Health rules: TensorBoard smoothing, thresholds, persistence, batch == live."""

import math
import random

import pytest

import metricreg as mr
from metricreg.health import HealthTracker, evaluate_series, level_of, smooth
from metricreg.spec import NEVER_CLEARS


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


def test_persistence_delays_and_clearing_needs_calm_points():
    h = mr.Health(critical_below=1.0, persistence=3)
    values = [5, 0.5, 0.5, 5, 0.5, 0.5, 0.5, 0.5, 5, 5, 5]
    verdict = evaluate_series("t", range(len(values)), values, h)
    assert len(verdict.alerts) == 1
    alert = verdict.alerts[0]
    # Fires after 3 points below; clears only after max(2, persistence) = 3 points back above.
    assert (alert.level, alert.first_step, alert.last_step, alert.active) == ("critical", 6, 10, False)
    assert verdict.status == "ok"


def test_escalation_is_one_alert_with_current_and_onset_values():
    h = mr.Health(warn_above=1, critical_above=10, description="d", remedy="r")
    verdict = evaluate_series("loss", [0, 1, 2, 3], [0.5, 2, 20, 30], h)
    assert len(verdict.alerts) == 1
    alert = verdict.alerts[0]
    assert (alert.level, alert.first_step, alert.critical_step, alert.active) == ("critical", 1, 2, True)
    assert (alert.onset_value, alert.value, alert.last_step) == (2, 30, 3)
    assert verdict.status == "critical"
    message = alert.message
    assert "loss = 30 at step 3" in message
    assert "loss = 30 at step 3 (critical when above 10)" in message
    assert "since step 1 (value then 2)" in message and "critical from step 2" in message
    assert alert.remedy == "r"


def test_noisy_series_near_a_threshold_makes_one_episode():
    rng = random.Random(3)
    h = mr.Health(warn_above=1.0)
    values = [1.0 + rng.gauss(0, 0.02) for _ in range(500)]
    verdict = evaluate_series("x", range(500), values, h)
    # Without hysteresis this series crosses the threshold ~250 times.
    assert len(verdict.alerts) <= 3


def test_critical_eases_to_warn_without_a_new_alert():
    h = mr.Health(warn_above=1, critical_above=10)
    verdict = evaluate_series("x", range(7), [0, 20, 20, 5, 5, 5, 5], h)
    assert len(verdict.alerts) == 1
    assert verdict.alerts[0].level == "critical" and verdict.alerts[0].current_level == "warn"
    assert verdict.status == "warn"


def test_relative_to_best_judges_the_run_against_itself():
    h = mr.Health(direction="higher_is_better", baseline="best", warn_below_frac=0.5, critical_below_frac=0.2)
    # A low absolute level that never falls is healthy; the same level after a fall from 1.0 is not.
    flat = evaluate_series("x", range(6), [0.05, 0.06, 0.05, 0.06, 0.05, 0.06], h)
    assert flat.alerts == [] and flat.status == "ok"
    fall = evaluate_series("x", range(6), [0.5, 1.0, 0.9, 0.4, 0.15, 0.1], h)
    assert [(a.level, a.first_step, a.critical_step) for a in fall.alerts] == [("critical", 3, 4)]
    assert "0.2 × best 1" in fall.alerts[0].message


def test_relative_to_initial_waits_for_its_baseline():
    h = mr.Health(direction="lower_is_better", baseline="initial", baseline_points=3, critical_above_frac=3.0)
    verdict = evaluate_series("x", range(6), [1.0, 2.0, 1.5, 3.0, 5.0, 6.0], h)
    # Baseline = median(1, 2, 1.5) = 1.5, so the critical threshold is 4.5.
    assert [(a.level, a.first_step) for a in verdict.alerts] == [("critical", 4)]
    assert verdict.alerts[0].threshold == pytest.approx(4.5)


def test_best_after_warmup_ignores_the_fall_from_the_random_init_level():
    warm = mr.Health(direction="higher_is_better", baseline="best_after_warmup", critical_below_frac=0.4)
    best = mr.Health(direction="higher_is_better", baseline="best", critical_below_frac=0.4)
    # A rank that falls from 0.8 at init to 0.3 during the first 3 points, then holds: healthy.
    healthy = [0.8, 0.4, 0.3, 0.31, 0.32, 0.30, 0.31, 0.32]
    assert evaluate_series("x", range(8), healthy, warm).alerts == []
    assert evaluate_series("x", range(8), healthy, best).alerts  # against the init level it alarms
    # The same run whose rank then falls 3x in one interval (a learning rate x100): critical at once.
    kill = evaluate_series("x", range(8), [0.8, 0.4, 0.3, 0.31, 0.32, 0.10, 0.11, 0.12], warm)
    [alert] = kill.alerts
    assert (alert.level, alert.first_step) == ("critical", 5)
    assert alert.threshold == pytest.approx(0.4 * 0.32)
    assert "best after warm-up 0.32" in alert.message
    with pytest.raises(mr.SpecError, match="direction"):
        mr.Health(baseline="best_after_warmup", critical_below_frac=0.4)


def test_previous_point_baseline_judges_a_jump_within_one_interval():
    jump = mr.Health(baseline="previous", critical_above_frac=4.0)
    # A distance that starts at 0 and grows quadratically (a linear LR warm-up): the first 3 points
    # are not judged (0 -> 1 -> 4 are "infinite" and 4x jumps), later growth is < 4x per point.
    warmup = [0.0, 0.01, 0.04, 0.09, 0.16, 0.25, 0.36]
    assert evaluate_series("d", range(7), warmup, jump).alerts == []
    # Then the weights move 10x further in one interval: critical at that point, judged against
    # the point before, and it stays open (the previous point moves up with the jump).
    sticky = mr.Health(baseline="previous", critical_above_frac=4.0, clear_after=NEVER_CLEARS)
    verdict = evaluate_series("d", range(10), [*warmup, 3.6, 3.7, 3.8], sticky)
    [alert] = verdict.alerts
    assert (alert.level, alert.first_step, alert.active) == ("critical", 7, True)
    assert alert.threshold == pytest.approx(4.0 * 0.36)
    assert "4 × previous point 0.36" in alert.message and verdict.status == "critical"
    # With the default clear_after the same jump is one episode that closes two calm points later.
    [closed] = evaluate_series("d", range(10), [*warmup, 3.6, 3.7, 3.8], jump).alerts
    assert not closed.active and closed.last_step == 9
    # A previous point of 0 (nothing moved yet) gives no verdict: no ratio against nothing.
    assert evaluate_series("d", range(6), [0.0, 0.0, 0.0, 0.0, 0.5, 0.6], jump).alerts == []
    # Non-finite points are skipped by the baseline (nonfinite=None leaves them unjudged).
    quiet_nan = mr.Health(baseline="previous", critical_above_frac=4.0, nonfinite=None)
    assert evaluate_series("d", range(6), [0.0, 0.1, 0.2, 0.3, math.nan, 0.4], quiet_nan).alerts == []


def test_relative_thresholds_need_a_baseline_and_direction():
    with pytest.raises(mr.SpecError, match="baseline"):
        mr.Health(warn_below_frac=0.5)
    with pytest.raises(mr.SpecError, match="direction"):
        mr.Health(baseline="best", warn_below_frac=0.5)
    with pytest.raises(mr.SpecError, match="must be > 0"):
        mr.Health(baseline="initial", warn_above_frac=-1.0)


def test_live_tracker_equals_batch_evaluation():
    rng = random.Random(1)
    h = mr.Health(warn_below=0.4, critical_below=0.2, smoothing=0.6, persistence=2)
    values = [max(0.0, 1 - i / 80 + rng.gauss(0, 0.1)) for i in range(120)]
    tracker = HealthTracker("x", h)
    events = []
    for i, v in enumerate(values):
        events += [(a.change, a.level, a.first_step, i) for a in tracker.feed(i, v)]
    batch = evaluate_series("x", range(120), values, h)
    live = [(a.level, a.first_step, a.critical_step, a.active) for a in tracker.alerts]
    assert live == [(a.level, a.first_step, a.critical_step, a.active) for a in batch.alerts]
    # The live hook saw the episode open as a warn, then escalate (the same alert) to critical.
    assert [e[:2] for e in events[:2]] == [("opened", "warn"), ("escalated", "critical")]
    assert len(batch.alerts) == 1


def test_smoothing_override_changes_what_fires():
    h = mr.Health(critical_above=1.0)
    values = [0.0] * 10 + [5.0] + [0.0] * 5
    assert evaluate_series("x", range(16), values, h).alerts
    assert not evaluate_series("x", range(16), values, h, smoothing=0.9).alerts
