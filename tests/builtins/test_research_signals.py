"""The issue-12 research signals are informational: shown in the Health tab, never an alert.

A rule needs detection evidence on the benchmark of real runs (DESIGN.md principle 11); until
then each signal carries a Health with a category, title and description and nothing to judge,
not even a non-finite value (α of a rank-one cloud, a KL of +inf, a share of a zero sum are
readings, not failures).
"""

from __future__ import annotations

import numpy as np
import pytest

import metricreg as mr
from metricreg.builtins import distillation, gradient_noise, lidar, loss_parts, reconstruction, representation
from metricreg.health import evaluate_series
from metricreg.spec import Health

MODULES = (representation, distillation, reconstruction, loss_parts, lidar, gradient_noise)


def healths():
    for module in MODULES:
        for metric in module.METRICS:
            if metric.health is None:
                continue
            table = metric.health if not isinstance(metric.health, Health) else {"": metric.health}
            for member, health in table.items():
                yield f"{metric.name}/{member}".rstrip("/"), health


@pytest.mark.parametrize(("name", "health"), list(healths()))
def test_health_is_display_only(name, health):
    assert health.title and health.description and health.category, name
    assert not health.has_thresholds and health.nonfinite is None, name
    verdict = evaluate_series(name, [0, 100, 200, 300], [0.0, float("nan"), float("inf"), -1e9], health)
    assert verdict.alerts == [] and verdict.status == "ok", name


def test_every_scalar_metric_has_a_health_so_it_shows_in_the_tab():
    for module in MODULES:
        for metric in module.METRICS:
            assert metric.kind != "scalar" or metric.health is not None, metric.name


def test_a_run_feeding_every_signal_degenerate_values_raises_no_alert(tmp_path):
    alerts = []

    class Recorder:
        @mr.hookimpl
        def metricreg_on_alert(self, alert, monitor):
            alerts.append(alert)

    rank_one = np.outer(np.arange(64.0), np.ones(8))  # α-ReQ NaN, a dead dimension, VICReg terms at collapse
    one_hot = np.eye(4)[np.zeros(16, dtype=int)]
    student = np.eye(4)[np.ones(16, dtype=int)]  # KL = +inf
    images = np.zeros((4, 1, 8, 8))
    with mr.Monitor(str(tmp_path), plugins=[Recorder()]) as mon:
        for step in range(0, 1001, 100):
            mon.step(
                step,
                embeddings=rank_one,
                teacher_probs=one_hot,
                student_probs=student,
                reconstruction=images,
                image=images,
                losses={"a": 1.0, "b": -1.0},  # shares of a zero sum: NaN
                warmup=True,
            )
    assert [a for a in alerts if not a.tag.startswith(("train/collapse/", "train/prediction/psnr"))] == []
