"""DINO-style self-distillation signals (informational): teacher entropy and KL(P_t‖P_s).

DINO (Caron et al. 2021, §5.3 and Fig. 7) reads collapse from two numbers: the entropy of the
teacher's output distribution H(P_t) and the KL divergence KL(P_t‖P_s), which add up to the
training loss H(P_t, P_s). Uniform collapse (centering without sharpening) drives H(P_t) to
log K; one-dimension collapse (sharpening without centering) drives it to 0; either way the KL
falls to 0, because the student then matches a constant teacher.

Inputs (all optional: nothing is computed unless a teacher and a student distribution are given):

* ``teacher_probs`` / ``student_probs``: (n, K) probabilities (or (..., K), flattened to rows);
* or ``teacher_logits`` / ``student_logits`` with ``teacher_temp`` / ``student_temp`` (default
  1.0) and the teacher's ``teacher_center`` c (DINO's centering, default 0):
  P_t = softmax((t − c)/τ_t), P_s = softmax(s/τ_s). Probabilities and logits can be mixed.

Family ``dino`` (every 100 steps), per-sample values averaged over the rows:

* ``teacher_entropy``: meanᵢ −Σₖ P_t log P_t (nats; 0 log 0 = 0);
* ``kl``: meanᵢ Σₖ P_t (log P_t − log P_s) (+inf where the student gives 0 to a teacher class).

No health thresholds (see docs/metrics.md, "Research signals"). CPU inputs are copied on the
training thread and computed on the writer thread; device arrays stay on their device.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np

from metricreg import arrays as A
from metricreg.hookspecs import hookimpl
from metricreg.spec import Health, Metric

MEMBERS = ("teacher_entropy", "kl")

HEALTH: dict[str, Health] = {
    "teacher_entropy": Health(
        category="ema",
        nonfinite=None,
        title="teacher entropy H(P_t)",
        description="Mean entropy of the teacher's output distribution (nats): → log K at uniform collapse "
        "(centering without sharpening), → 0 at one-dimension collapse (sharpening without centering). "
        "Informational: no health rule until the detection benchmark shows one that stays quiet.",
    ),
    "kl": Health(
        category="ema",
        nonfinite=None,
        title="KL(P_t ‖ P_s)",
        description="Mean KL divergence from the teacher's to the student's distribution; H(P_t) + KL is "
        "the DINO loss. → 0 when the student only matches a constant teacher (collapse). Informational.",
    ),
}

_DISTRIBUTIONS = ("teacher_probs", "student_probs", "teacher_logits", "student_logits")


def _log_probs(xp: Any, probs: Any, logits: Any, temp: Any, center: Any = None) -> Any:
    """Row-wise log-probabilities, from logits by a stable log-softmax or from probabilities by log."""
    if logits is not None:
        x = A.to_float(A.as_matrix(logits, None, xp), xp)
        if center is not None:
            x = x - (A.to_float(center, xp) if A.is_array(center) else center)
        x = x / (A.to_float(temp, xp) if A.is_array(temp) else temp)
        x = x - xp.max(x, axis=1, keepdims=True)
        return x - xp.log(xp.sum(xp.exp(x), axis=1, keepdims=True))
    p = A.to_float(A.as_matrix(probs, None, xp), xp)
    return xp.log(p)  # log 0 = −inf: masked by the teacher's zeros below, +inf KL otherwise


def dino_terms(
    xp: Any,
    teacher_probs: Any = None,
    student_probs: Any = None,
    teacher_logits: Any = None,
    student_logits: Any = None,
    teacher_temp: Any = 1.0,
    student_temp: Any = 1.0,
    teacher_center: Any = None,
) -> dict[str, Any]:
    """H(P_t) and KL(P_t‖P_s), averaged over rows, on the inputs' device."""
    log_t = _log_probs(xp, teacher_probs, teacher_logits, teacher_temp, teacher_center)
    log_s = _log_probs(xp, student_probs, student_logits, student_temp)
    p_t = xp.exp(log_t)
    live = p_t > 0.0
    neg_entropy = xp.sum(xp.where(live, p_t * log_t, 0.0), axis=1)
    cross = xp.sum(xp.where(live, p_t * log_s, 0.0), axis=1)
    return {"teacher_entropy": -xp.mean(neg_entropy), "kl": xp.mean(neg_entropy - cross)}


def _on_host(fn_kwargs: dict[str, Any], **arrays: Any) -> dict[str, float]:
    with np.errstate(divide="ignore", invalid="ignore"):  # log 0 and 0·(−inf) are masked, by design
        out = dino_terms(np, **fn_kwargs, **arrays)
    return {k: float(v) for k, v in out.items()}


def _rows(x: Any) -> tuple[int, int]:
    shape = tuple(x.shape)
    return math.prod(shape[:-1]), shape[-1]


def dino(
    teacher_probs: Any = None,
    student_probs: Any = None,
    teacher_logits: Any = None,
    student_logits: Any = None,
    teacher_temp: Any = 1.0,
    student_temp: Any = 1.0,
    teacher_center: Any = None,
) -> dict[str, Any] | None:
    """The ``dino`` family (module docstring); None unless a teacher and a student are given."""
    teacher = teacher_logits if teacher_logits is not None else teacher_probs
    student = student_logits if student_logits is not None else student_probs
    if teacher is None and student is None:
        return None
    if teacher is None or student is None:
        missing = "teacher_probs or teacher_logits" if teacher is None else "student_probs or student_logits"
        raise ValueError(f"metric 'dino' needs both distributions: {missing} was not given")
    for name, x in (("teacher", teacher), ("student", student)):
        if not A.is_array(x) or len(x.shape) < 1:
            raise TypeError(f"metric 'dino': the {name} distribution must be an (n, K) array, got {type(x).__name__}")
    if _rows(teacher) != _rows(student):
        raise ValueError(
            f"metric 'dino': teacher {tuple(teacher.shape)} and student {tuple(student.shape)} must have the same "
            "rows and classes"
        )
    given = {
        "teacher_probs": teacher_probs if teacher_logits is None else None,
        "student_probs": student_probs if student_logits is None else None,
        "teacher_logits": teacher_logits,
        "student_logits": student_logits,
        "teacher_temp": teacher_temp,
        "student_temp": student_temp,
        "teacher_center": teacher_center,
    }
    arrays = {k: v for k, v in given.items() if v is not None and A.is_array(v) and not A.is_scalar_like(v)}
    if all(A.is_host_data(v) for v in arrays.values()):  # CPU data: one copy now, the arithmetic on the writer
        scalars = {k: A.host_scalar(v) for k, v in given.items() if k not in arrays and v is not None}
        return A.on_writer(functools.partial(_on_host, scalars), arrays, MEMBERS)
    xp = A.namespace(*arrays.values())
    return dino_terms(xp, **{k: v for k, v in given.items() if v is not None})


METRICS = [
    Metric(
        "dino",
        compute=dino,
        every=100,
        health=HEALTH,
        description="DINO-style teacher entropy H(P_t) and KL(P_t‖P_s) from teacher/student probabilities or "
        "logits (informational).",
    ),
]


@hookimpl
def metricreg_register_inputs(register):
    register("teacher_probs", description="(n, K) teacher output probabilities (DINO-style self-distillation)")
    register("student_probs", description="(n, K) student output probabilities, rows matching teacher_probs")
    register("teacher_logits", description="(n, K) teacher logits (softmax((t − teacher_center)/teacher_temp))")
    register("student_logits", description="(n, K) student logits (softmax(s/student_temp))")
    register("teacher_temp", description="teacher softmax temperature τ_t for teacher_logits (default 1)")
    register("student_temp", description="student softmax temperature τ_s for student_logits (default 1)")
    register("teacher_center", description="DINO's teacher center c, subtracted from teacher_logits (default 0)")


@hookimpl
def metricreg_register_metrics(register):
    for metric in METRICS:
        register(metric)
