"""Prediction cosine / NMSE per level of a hierarchical model (multi-level JEPA predictors).

Inputs: ``predictions`` and ``targets`` given as dicts keyed by level (``{"l0": p0, "l1": p1}``,
matching keys), or directly ``prediction_pairs`` = {level: (prediction, target)}. The derived
input ``prediction_pairs`` pairs the two dicts; with plain arrays it is None and only the
single-pair ``prediction/cosine`` / ``prediction/nmse`` run (unchanged).

=========================================  ==================================================================
tag (``train/…``)                          definition (as ``prediction/cosine`` and ``prediction/nmse``)
=========================================  ==================================================================
``levels/<level>/cosine/{mean,std,min,     row-wise cosine between the level's prediction and target
max}``
``levels/<level>/nmse``                    Σ‖p − t‖² / Σ‖t − t̄‖² of the level
=========================================  ==================================================================

Every 100 steps, informational (no rule). Same cost and route as the single pair, once per level:
host data (numpy, torch CPU) is copied on the training thread and computed on the writer thread.
Not reduced across ranks (a fan-out's keys are known only from the data): rank 0's values.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from metricreg.builtins import prediction
from metricreg.hookspecs import hookimpl
from metricreg.spec import Health, Metric

LEVELS_EVERY = 100


def derive_pairs(predictions: Any, targets: Any) -> dict[Any, tuple[Any, Any]] | None:
    """{level: (prediction, target)} when both inputs are dicts with the same keys; None for plain arrays."""
    p_dict, t_dict = isinstance(predictions, Mapping), isinstance(targets, Mapping)
    if not p_dict and not t_dict:
        return None
    if p_dict != t_dict:
        which, other = ("predictions", "targets") if p_dict else ("targets", "predictions")
        raise ValueError(
            f"{which} is a dict of levels but {other} is a {type(targets if p_dict else predictions).__name__}: pass both as dicts with the same keys"
        )
    missing_t = [k for k in predictions if k not in targets]
    missing_p = [k for k in targets if k not in predictions]
    if missing_t or missing_p:
        raise ValueError(
            f"predictions and targets must have the same levels: only in predictions {missing_t}, "
            f"only in targets {missing_p}"
        )
    return {k: (predictions[k], targets[k]) for k in predictions}


def _pair(pair: Any) -> tuple[Any, Any] | None:
    if pair is None:
        return None
    if isinstance(pair, Sequence) and not isinstance(pair, str) and len(pair) == 2:
        return pair[0], pair[1]
    raise ValueError(
        f"prediction_pairs: each level must be a (prediction, target) pair, got {type(pair).__name__}"
        + (f" of length {len(pair)}" if isinstance(pair, Sequence) else "")
        + "; pass {level: (prediction, target)}"
    )


def level_cosine(prediction_pairs: Any) -> dict[str, Any] | None:
    """prediction/cosine of one level (the Monitor fans out over the levels)."""
    pair = _pair(prediction_pairs)
    return None if pair is None else prediction.cosine(*pair)


def level_nmse(prediction_pairs: Any) -> Any:
    """prediction/nmse of one level (the Monitor fans out over the levels)."""
    pair = _pair(prediction_pairs)
    return None if pair is None else prediction.nmse(*pair)


HEALTH_COSINE = Health(
    category="prediction",
    title="prediction cosine per level",
    description="Cosine similarity between each level's predictions and targets (mean, std, min, max over "
    "rows). Informational: deeper levels typically sit lower than level 0.",
    nonfinite=None,
)
HEALTH_NMSE = Health(
    category="prediction",
    title="normalised MSE per level",
    description="Σ‖p − t‖² / Σ‖t − t̄‖² for each level: 0 is perfect, 1 is no better than the mean target. "
    "Informational (no rule).",
    nonfinite=None,
)

METRICS = [
    Metric(
        "levels/cosine",
        compute=level_cosine,
        every=LEVELS_EVERY,
        health=HEALTH_COSINE,
        fan_out="prediction_pairs",
        description=HEALTH_COSINE.description,
    ),
    Metric(
        "levels/nmse",
        compute=level_nmse,
        every=LEVELS_EVERY,
        health=HEALTH_NMSE,
        fan_out="prediction_pairs",
        description=HEALTH_NMSE.description,
    ),
]


@hookimpl
def metricreg_register_inputs(register):
    register("prediction_pairs", derive_pairs)


@hookimpl
def metricreg_register_metrics(register):
    for metric in METRICS:
        register(metric)
