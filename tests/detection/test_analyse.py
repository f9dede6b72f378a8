"""benchmarks.detection.analyse: the statistics the issue-8 thresholds were chosen from."""

from __future__ import annotations

import math

import numpy as np
import pytest

from benchmarks.detection.analyse import (
    Candidate,
    Run,
    _gated_gap_step,
    broken_at,
    healthy_worst,
    vs_best,
    vs_best_after_warmup,
    vs_initial,
    vs_previous,
)


def test_ratios_against_best_initial_and_previous_point():
    v = np.array([1.0, 4.0, 2.0, 0.4])
    np.testing.assert_allclose(vs_best(v), [1.0, 1.0, 0.5, 0.1])
    np.testing.assert_allclose(vs_previous(v)[1:], [4.0, 0.5, 0.2])
    assert math.isnan(vs_previous(v)[0])
    init = vs_initial(v, points=3)  # baseline median(1, 4, 2) = 2
    assert np.isnan(init[:3]).all() and init[3] == pytest.approx(0.2)


def test_best_after_warmup_ignores_the_random_init_level():
    # The rank falls from its random-init 8 to 3 in healthy warm-up, then a kill halves it.
    v = np.array([8.0, 5.0, 4.0, 3.0, 3.5, 1.4])
    warm = vs_best_after_warmup(v, points=3)
    assert np.isnan(warm[:3]).all()
    np.testing.assert_allclose(warm[3:], [1.0, 1.0, 0.4])
    assert vs_best(v)[3] == pytest.approx(3 / 8)  # against the init level the warm-up itself alarms


def _run(norm, category=None, onset=None):
    steps = np.arange(0, 100 * len(norm), 100)
    truth = {"category": category, "onset": onset}
    return Run("s/seed0", truth, {"train/collapse/norm": (steps, np.asarray(norm, dtype=float))})


def test_healthy_worst_and_broken_value_after_onset():
    cand = Candidate("norm/best", "/collapse/norm", "best")
    assert healthy_worst(_run([1.0, 2.0, 1.0, 2.0]), cand) == pytest.approx(0.5)
    pre, post = broken_at(_run([1.0, 10.0, 9.0, 0.5, 0.1], "collapse", 300), cand, due=100)
    assert pre == pytest.approx(0.9) and post == pytest.approx(0.01)  # min over [300, 400]: 0.1 / 10


def test_gated_gap_waits_for_the_validation_loss_to_leave_its_best():
    steps = np.array([0, 50, 100, 150, 200])
    run = Run(
        "o/seed0",
        {"category": "generalization", "onset": 150},
        {
            "gap/accuracy": (steps, np.array([0.0, 0.1, 0.1, 0.1, 0.1])),
            "val/loss": (steps, np.array([2.0, 1.0, 0.5, 0.4, 0.45])),  # best at 150
        },
    )
    # Above 0.08 for 3 evals at step 150, but 150 is a new best: the first eval past its best is 200.
    assert _gated_gap_step(run, "gap/accuracy", 0.08, 3) == 200
