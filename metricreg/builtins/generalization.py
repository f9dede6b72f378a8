"""Generalization gap: training-side scalars against each evaluation.

How it works:

* ``generalization/accumulate`` (every 10 steps, writes nothing) adds every scalar input of
  the step (``loss``, ``accuracy``, ``psnr``, anything given as a Python number or a
  one-element array, except bookkeeping inputs such as ``batch_size`` or ``lr``) to running
  sums kept on the device in ``shared``. Inputs given as callables are not evaluated for
  this (they may be expensive). Training values are therefore a sample every 10 steps.
* ``gap`` runs on every ``eval`` event. For each scalar eval input that also has training
  values since the previous eval of the same split, it writes (under the ``gap`` split):

  - ``gap/<name>``: eval − train for lower-is-better metrics (losses), train − eval for
    higher-is-better ones (accuracy, PSNR, ...): **positive = worse on held-out data**;
  - ``gap/<name>_relative``: that gap / |train mean|;
  - ``gap/<name>_gl`` for loss-like names, in evals without a classification score: Prechelt's
    generalization loss GL = 100·(E_val / min E_val so far − 1) (NaN once the best is ≤ 0).

  - ``gap/<name>_overfit`` for a classification score in [0, 1] (accuracy, F1, ...): the gap
    while the eval loss of the same eval is above its best, else 0 (the gap itself when the
    eval gives no loss).

  Judged: ``<score>_overfit`` (critical above 0.08 for 3 evals), ``psnr`` (critical above 5 dB
  for 3 evals) and GL (critical above 10 for 3 evals). Not judged: the relative gap (it explodes
  as the training loss nears 0) and, for classifiers, GL (their eval loss rises from
  over-confidence alone while accuracy holds: GL 15–40 on healthy interpolating runs).

  The training side is the mean of the sampled training values since the previous eval
  (of that split), so it lags the eval by half an eval interval and carries dropout /
  augmentation: for a clean gap, evaluate a fixed training subset in eval mode and pass its
  value as a training input.

Direction: registered with :func:`metricreg.directions.set_direction`, else by name: a name containing one of
accuracy, acc, psnr, ssim, f1, auc, precision, recall, iou, dice, top1, top5, map, bleu,
rouge, r2, sim, similarity, reward (and none of loss, error, err, mse, mae, nll, ppl, ...)
is higher-is-better; anything else lower-is-better.

Splits: the first eval split seen (usually ``val``) writes ``gap/<name>``; another split S
writes ``gap/S/<name>`` (the same convention as the Health tab's derived gaps in
metricreg.verdict).
"""

from __future__ import annotations

from typing import Any

from metricreg import arrays as A
from metricreg.directions import (
    direction_of,
    is_fraction_score,
    is_loss_like,
)
from metricreg.hookspecs import hookimpl
from metricreg.manifest import CONVENTIONAL, PSNR_GAP, SCORE_GAP
from metricreg.rule_jobs import writer_rule
from metricreg.spec import Health, Metric

WINDOWS_KEY = "generalization/windows"
PRIMARY_KEY = "generalization/primary_split"
_SINCE_START = "*"

#: Inputs that are bookkeeping, not metrics: never accumulated.
EXCLUDE = frozenset(
    {
        "step",
        "epoch",
        "batch_size",
        "microbatch_size",
        "tokens",
        "num_samples",
        "samples",
        "max_norm",
        "momentum",
        "lr",
        "learning_rate",
        "forward_time",
        "backward_time",
        "data_time",
        "step_time",
        "grad_norm",
        "data_range",
        "temperature",
        "weight_decay",
    }
)


def _value(v: Any) -> Any:
    """A scalar input as a Python float or a detached 0-d float array (widest float)."""
    if A.is_array(v):
        xp = A.namespace(v)
        v = A.detach(v)
        if v.ndim:
            v = xp.reshape(v, ())
        return A.to_float(v, xp)
    return float(v)


# Types whose values are never scalars (a model, an optimizer, None): is_scalar_like is False for
# them by type alone, so accumulate skips them with one set lookup a due step. Bounded.
_NEVER_SCALAR: set[type] = set()


# Both run on the writer thread in a single-process run whose scalar inputs are host numbers
# (metricreg.rule_jobs): accumulate on a snapshot of the step's inputs, gap after it in the same
# queue, so each eval reads exactly the windows it would read inline. One group: the windows in
# `shared` are only ever touched by one thread.
@writer_rule(inputs=EXCLUDE, passes=("shared",), group="generalization")
def accumulate(inputs: Any, shared: dict | None = None) -> None:
    """Add this step's scalar inputs to every open training window (writes nothing)."""
    if shared is None:
        return None
    windows = shared.setdefault(WINDOWS_KEY, {_SINCE_START: {}})
    for name in inputs.provided():
        if name in EXCLUDE:
            continue
        raw = inputs.peek(name)
        kind = type(raw)
        if kind in _NEVER_SCALAR:
            continue
        raw = A.host_scalar(raw)  # CPU scalars: float sums, not torch kernels
        if type(raw) is float:
            v: Any = raw
        elif raw is None or not A.is_scalar_like(raw):
            never = kind is bool or (not isinstance(raw, (int, float)) and not A.is_array(raw))
            if never and len(_NEVER_SCALAR) < 64:
                _NEVER_SCALAR.add(kind)
            continue
        else:
            v = _value(raw)
        for window in windows.values():
            acc = window.get(name)
            if acc is None:
                window[name] = [v, 1]
            else:
                acc[0] = acc[0] + v
                acc[1] += 1
    return None


@writer_rule(inputs=EXCLUDE, passes=("shared",), group="generalization")
def gap(
    inputs: Any, shared: dict | None = None, state: dict | None = None, split: str = "val"
) -> dict[str, Any] | None:
    """Gaps between this eval's scalar inputs and the training means since the previous eval."""
    if shared is None:
        return None
    state = {} if state is None else state
    windows = shared.setdefault(WINDOWS_KEY, {_SINCE_START: {}})
    window = windows.get(split)
    if window is None:
        window = windows[_SINCE_START]  # first eval of this split: everything since the start
    windows[split] = {}  # the next window for this split starts now
    best = state.setdefault("best", {})
    primary = shared.setdefault(PRIMARY_KEY, split)  # in `shared`: state may be kept per split
    # A classifier's eval loss rises from over-confidence alone while its accuracy holds, so GL is
    # written only for evals without a classification score (regression, reconstruction, SSL).
    classifier = any(is_fraction_score(name) for name in inputs.provided() if name not in EXCLUDE)
    rising = _eval_loss_rising(inputs, state, split) if classifier else None
    out: dict[str, Any] = {}
    for name in inputs.provided():
        acc = window.get(name)
        if acc is None or acc[1] == 0 or name in EXCLUDE:
            continue
        raw = A.host_scalar(inputs[name])  # CPU scalars as floats: the same arithmetic on either thread
        if raw is None or not A.is_scalar_like(raw):
            continue
        v = _value(raw)
        train = acc[0] / acc[1]
        like = v if A.is_array(v) else (train if A.is_array(train) else None)
        xp = A.namespace(like) if like is not None else A.namespace()
        v = A.as_scalar_array(v, like, xp) if like is not None else A.as_scalar_array(v)
        train = A.as_scalar_array(train, like, xp) if like is not None else A.as_scalar_array(train)
        g = train - v if direction_of(name) == "higher_is_better" else v - train
        scale = xp.abs(train)
        rel = xp.where(scale > 0, g / xp.where(scale > 0, scale, 1.0), xp.nan)
        member = name if split == primary else f"{split}/{name}"
        out[member] = g
        out[f"{member}_relative"] = rel
        if is_fraction_score(name):
            # Overfitting: a large score gap *while* the eval loss is above its best. Before the eval
            # loss turns, the model still improves on held-out data, whatever the gap.
            out[f"{member}_overfit"] = g if rising is None else g * A.as_scalar_array(rising, g, xp)
        if is_loss_like(name) and not classifier:
            key = (split, name)
            prev = best.get(key)
            b = v if prev is None else xp.minimum(prev, v)
            best[key] = b
            # Prechelt's GL assumes a positive error: undefined (NaN, not judged) once the best is <= 0.
            out[f"{member}_gl"] = xp.where(b > 0, 100.0 * (v / xp.where(b > 0, b, 1.0) - 1.0), xp.nan)
    return out or None


def _eval_loss_rising(inputs: Any, state: dict, split: str) -> Any:
    """1.0 when this eval's loss is above its best so far, else 0.0 (on the loss's device); None without a loss."""
    names = sorted((n for n in inputs.provided() if is_loss_like(n) and n not in EXCLUDE), key=lambda n: n != "loss")
    for name in names:
        raw = A.host_scalar(inputs[name])  # CPU scalars as floats: the same arithmetic on either thread
        if raw is None or not A.is_scalar_like(raw):
            continue
        v = A.as_scalar_array(_value(raw))  # a 0-d float array on the loss's device, or a numpy float
        xp = A.namespace(v)
        key = ("rise", split, name)
        prev = state.get(key)
        state[key] = v if prev is None else xp.where(v < prev, v, prev)
        return 0.0 if prev is None else A.as_scalar_array(v > prev)
    return None


# Health rules: the manifest's conventions, per member for the common metric names.
_COMMON = [
    "loss",
    "accuracy",
    "acc",
    "psnr",
    "ssim",
    "f1",
    "auc",
    "precision",
    "recall",
    "iou",
    "dice",
    "error",
    "top1",
    "top5",
    "nll",
    "perplexity",
    "mse",
    "mae",
    "ce",
    "cos_mean",
]
_RAW = Health(
    category="generalization",
    direction="lower_is_better",
    description=CONVENTIONAL["gap/*"].description,
    remedy=CONVENTIONAL["gap/*_relative"].remedy,
)


def _health_table() -> dict[str, Health]:
    table: dict[str, Health] = {}
    for name in _COMMON:
        table[name] = PSNR_GAP if name == "psnr" else _RAW
        table[f"{name}_relative"] = CONVENTIONAL["gap/*_relative"]
        if is_fraction_score(name):
            table[f"{name}_overfit"] = SCORE_GAP
        if is_loss_like(name):
            table[f"{name}_gl"] = CONVENTIONAL["gap/*_gl"]
    return table


HEALTH = _health_table()

METRICS = [
    Metric(
        "generalization/accumulate",
        compute=accumulate,
        every=10,
        description="Internal: samples the training-side scalar inputs for the generalization gap (writes nothing).",
    ),
    Metric(
        "gap",
        compute=gap,
        every="eval",
        split="gap",
        health=HEALTH,
        description="Generalization gap at each eval: eval vs the training mean since the previous eval, absolute "
        "(positive = worse on held-out data), relative, and Prechelt's GL for losses.",
    ),
]


@hookimpl
def metricreg_register_metrics(register):
    for metric in METRICS:
        register(metric)
