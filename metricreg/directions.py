"""Which way is better for a metric name: one table for the live gap metric and the Health tab.

``direction_of("val/top1_acc")`` is ``"higher_is_better"``; losses, errors and anything unknown
are ``"lower_is_better"``. ``set_direction`` declares a name the tables do not know.
"""

from __future__ import annotations

import re

HIGHER_TOKENS = frozenset(
    [
        "accuracy",
        "acc",
        "psnr",
        "ssim",
        "msssim",
        "f1",
        "auc",
        "auroc",
        "auprc",
        "precision",
        "recall",
        "iou",
        "miou",
        "dice",
        "top1",
        "top5",
        "map",
        "bleu",
        "rouge",
        "rougel",
        "meteor",
        "cider",
        "r2",
        "sim",
        "similarity",
        "cos",
        "cosine",
        "reward",
        "return",
        "score",
    ]
)
LOWER_TOKENS = frozenset(
    [
        "loss",
        "error",
        "err",
        "mse",
        "mae",
        "rmse",
        "nll",
        "ppl",
        "perplexity",
        "wer",
        "cer",
        "lpips",
        "fid",
        "bpd",
        "bpc",
        "kl",
        "ce",
        "xent",
        "cost",
        "regret",
    ]
)
LOSS_TOKENS = frozenset({"loss", "nll", "ce", "xent"})
#: Classification scores: fractions in [0, 1], so an absolute train/eval gap means the same on any
#: task, and their presence marks a classifier, whose eval loss rises from over-confidence alone.
FRACTION_TOKENS = frozenset(
    ["accuracy", "acc", "top1", "top5", "f1", "auc", "auroc", "auprc", "precision", "recall", "iou", "miou", "dice"]
)

_DIRECTIONS: dict[str, str] = {}


def set_direction(name: str, direction: str) -> None:
    """Declare whether a scalar input is ``"higher_is_better"`` or ``"lower_is_better"`` for the gap."""
    if direction not in ("higher_is_better", "lower_is_better"):
        raise ValueError(f"direction must be 'higher_is_better' or 'lower_is_better', got {direction!r}")
    _DIRECTIONS[name] = direction


def tokens(name: str) -> set[str]:
    return {t for t in re.split(r"[^a-z0-9]+", name.lower()) if t}


def direction_of(name: str) -> str:
    """``higher_is_better`` or ``lower_is_better`` for a metric name (registered, else by name)."""
    if name in _DIRECTIONS:
        return _DIRECTIONS[name]
    found = tokens(name)
    if found & LOWER_TOKENS:
        return "lower_is_better"
    if found & HIGHER_TOKENS:
        return "higher_is_better"
    return "lower_is_better"


def is_loss_like(name: str) -> bool:
    return bool(tokens(name) & LOSS_TOKENS)


def is_fraction_score(name: str) -> bool:
    """A classification score in [0, 1] (accuracy, top-1, F1, AUC, IoU, ...)."""
    found = tokens(name)
    return bool(found & FRACTION_TOKENS) and not (found & LOWER_TOKENS)
