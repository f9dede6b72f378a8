"""rankme_ratio is informational: a healthy classifier's features lose as much rank as a collapse.

A 2-class MLP on breast cancer (AdamW 3e-5, penultimate features as ``embeddings``, README's
quickstart) reads rankme_ratio 0.367 -> 0.076 over 6,000 steps as its two classes separate
(neural collapse toward C - 1 directions), with validation accuracy 0.95: the withdrawn rule
(critical below 0.4x its best after a 3-point warm-up) called that CRITICAL. The benchmark's
``bc-slow-penultimate`` scenario keeps the real runs; this pins the rule down in milliseconds.
"""

from __future__ import annotations

import numpy as np

import metricreg as mr
from metricreg.builtins.collapse import HEALTH
from metricreg.health import evaluate_series
from metricreg.spec import RELATIVE_KEYS

STEPS = list(range(0, 6001, 100))
# The healthy classifier's series: warm-up points near 0.37, then a gradual geometric fall to 0.076.
DECLINE = [0.367, 0.36, 0.362, 0.365, *np.geomspace(0.365, 0.076, len(STEPS) - 4).tolist()]


def test_rankme_ratio_has_no_thresholds():
    h = HEALTH["rankme_ratio"]
    assert h.category == "collapse"
    assert h.baseline is None
    for name in ("warn_above", "warn_below", "critical_above", "critical_below", *RELATIVE_KEYS):
        assert getattr(h, name) is None, name


def test_a_gradual_rank_loss_of_a_healthy_classifier_raises_no_alert():
    assert evaluate_series("train/collapse/rankme_ratio", STEPS, DECLINE, HEALTH["rankme_ratio"]).alerts == []
    # The withdrawn rule called the same series critical (so this series does exercise it).
    withdrawn = mr.Health(direction="higher_is_better", baseline="best_after_warmup", critical_below_frac=0.4)
    assert [a.level for a in evaluate_series("x", STEPS, DECLINE, withdrawn).alerts] == ["critical"]


def test_complete_collapse_still_has_its_absolute_floor():
    # Only dimensional collapse went informational: RankMe near 1 is collapse whatever the model.
    verdict = evaluate_series("train/collapse/rankme", [0, 100, 200], [40.0, 12.0, 1.2], HEALTH["rankme"])
    assert [(a.level, a.first_step) for a in verdict.alerts] == [("critical", 200)]
