"""Stability: non-finite indicators, Lightning spike rule, plateau rules, loss trend."""

from __future__ import annotations

import math

import numpy as np
import pytest

from metricreg.builtins import stability as S
from tests.builtins.conftest import close, value, values


def reference_spikes(losses: list[float], window: int = 10, rtol: float = 2.0) -> list[float]:
    """The Lightning SpikeDetection rule, written plainly over a list."""
    flags = []
    for i, v in enumerate(losses):
        if not math.isfinite(v):
            flags.append(1.0)
            continue
        if i < window:
            flags.append(0.0)
            continue
        prev = [x for x in losses[i - window : i] if math.isfinite(x)]
        mean = sum(prev) / len(prev)
        flags.append(float(v > losses[i - 1] and abs(v - mean) >= rtol * abs(mean)))
    return flags


def test_spike_rule_matches_reference(fw):
    rng = np.random.default_rng(0)
    losses = list(1.0 + 0.05 * rng.standard_normal(40))
    losses[15] = 5.0  # a spike
    losses[16] = 4.0  # still high but better than the previous value: not a spike
    losses[30] = float("nan")
    state: dict = {}
    got = [values(S.spikes(fw.array(np.float64(v)), state)) for v in losses]
    assert [g["detected"] for g in got] == reference_spikes(losses)
    assert got[15]["detected"] == 1.0 and got[16]["detected"] == 0.0
    assert close(got[15]["ratio"], 5.0 / np.mean(losses[5:15]), fw.rtol)
    assert close(got[-1]["rate"], 2 / 40, fw.rtol)
    assert "ratio" not in got[0]


def test_nonfinite_indicators(fw):
    assert value(S.nonfinite_loss(fw.array(np.float64(1.0)))) == 0.0
    assert value(S.nonfinite_loss(fw.array(np.float64(np.inf)))) == 1.0
    assert value(S.nonfinite_loss(fw.array(np.array([1.0, np.nan])))) == 1.0  # per-sample losses
    assert value(S.nonfinite_grads(fw.array(np.float32(np.nan)))) == 1.0
    assert S.nonfinite_grads(None) is None
    assert value(S.nonfinite_loss(2.0)) == 0.0


def test_plateau_counts_steps_since_the_smoothed_loss_improved(fw):
    state: dict = {}
    out = []
    for i, step in enumerate(range(0, 5000, 50)):
        loss = max(1.0 - 0.01 * i, 0.8)  # improves for 20 evaluations, then flat from step 1000
        out.append(value(S.plateau(fw.array(np.float64(loss)), step, state)))
    assert out[:20] == [0.0] * 20
    # The EMA approaches the flat level geometrically, so "improvements" stop ~1,000 steps later.
    assert 2000 < out[-1] < 3000 and out[-1] - out[-11] == 500
    # Informational: a plateau alone is no failure (healthy runs converge), so no threshold.
    assert not S.HEALTH_PLATEAU.has_thresholds
    assert math.isnan(value(S.plateau(fw.array(np.float64(np.nan)), 5000, state)))


def test_eval_plateau_reduce_lr_on_plateau_rule(fw):
    state: dict = {}
    series = [1.0, 0.9, 0.95, 0.89999, 0.85, 0.86, 0.86]
    got = [value(S.eval_plateau(fw.array(np.float64(v)), state)) for v in series]
    # 0.89999 is not below 0.9·(1 − 1e-4): no improvement.
    assert got == [0.0, 0.0, 1.0, 2.0, 0.0, 1.0, 2.0]


def test_loss_trend_is_a_relative_least_squares_slope(fw):
    state: dict = {}
    steps = list(range(0, 1000, 50))
    rng = np.random.default_rng(2)
    losses = [2.0 + 0.001 * s + 0.01 * rng.standard_normal() for s in steps]
    got = None
    for s, v in zip(steps, losses, strict=True):
        got = S.loss_trend(fw.array(np.float64(v)), s, state)
    slope = np.polyfit(steps, losses, 1)[0]
    assert close(value(got), slope * 1000 / np.mean(np.abs(losses)), fw.rtol)
    assert S.loss_trend(1.0, 0, {}) is None  # needs 3 points


def test_progress_lost_is_scale_free_and_quiet_until_the_run_has_learned(fw):
    def run(losses):
        state: dict = {}
        return [value(S.progress_lost(fw.array(np.float64(x)), state)) for x in losses]

    learn = [2.3] * 5 + list(np.linspace(2.3, 0.1, 40)) + [0.1] * 20
    healthy = run(learn + [0.1] * 40)
    diverged = run(learn + [2.3] * 40)
    assert max(healthy) < 0.01
    assert diverged[-1] > 0.9  # back where it started
    # The same shape on a negative-cosine loss in [-1, 0] (scale-free) ...
    assert run([-0.1] * 5 + [-0.9] * 30 + [-0.1] * 30)[-1] > 0.9
    # ... and a run that never learned reads 0, not "diverged".
    assert max(run([2.3 + 0.01 * (i % 3) for i in range(60)])) == 0.0
    assert S.HEALTH_PROGRESS.critical_above == 0.5 and S.HEALTH_PROGRESS.nonfinite is None


def test_spikes_ignore_tripling_a_near_zero_loss(fw):
    state: dict = {}
    flags = []
    losses = [2.3] * 5 + [0.001] * 20 + [0.004] + [0.001] * 5 + [1.5]
    for x in losses:
        flags.append(value(S.spikes(fw.array(np.float64(x)), state)["detected"]))
    assert flags[25] == 0.0  # 4x a loss of 0.001 moves it by 0.003: noise, not a spike
    assert flags[-1] == 1.0  # 0.001 -> 1.5 is a spike (more than 5% of the initial 2.3)


def test_eval_drop_measures_the_fall_of_each_score_from_its_best():
    from metricreg.inputs import Inputs

    state: dict = {}

    def ev(**raw):
        return S.eval_drop(Inputs(raw, {}, {"step": 0, "event": "eval", "shared": {}}), state)

    assert ev(loss=0.5, accuracy=0.9) == {"accuracy": 0.0}
    assert ev(loss=0.4, accuracy=0.95)["accuracy"] == 0.0
    out = ev(loss=2.3, accuracy=0.1, f1=0.1)
    assert out["accuracy"] == pytest.approx(0.85) and out["f1"] == 0.0
    assert ev(loss=0.3) is None  # no classification score: nothing to judge


def test_progress_lost_restarts_when_a_warm_up_ends(fw):
    """A loss term switched on after a warm-up makes the total jump by design (the HNeRV seed)."""
    state: dict = {}
    out = []
    for i in range(80):
        warm = i < 40
        loss = (1.0 - 0.02 * i) if warm else 2.0 - 0.005 * (i - 40)  # the CLIP term joins at 40
        out.append(value(S.progress_lost(fw.array(np.float64(loss)), state, warmup=warm)))
    assert max(out) < 0.5 and out[:40] == [0.0] * 40
    # Without the flag the same series reads as lost progress.
    state = {}
    plain = [value(S.progress_lost(fw.array(np.float64(1.0 - 0.02 * i if i < 40 else 2.0)), state)) for i in range(80)]
    assert max(plain) > 0.5
