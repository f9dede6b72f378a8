"""EMA teacher / student diagnostics (BYOL, DINO, I-JEPA style momentum encoders).

Inputs: ``model`` (the student θ) and ``ema_model`` (the teacher ξ): torch modules or
pytrees / dicts of arrays; parameters are matched by name (wrapper prefixes removed), the
student-only ones (a predictor) are ignored. Optional: ``momentum`` (the EMA coefficient m
used at this step), ``momentum_target`` (the value the momentum schedule prescribes at this
step, m*), ``student_out`` and ``teacher_out`` (outputs of both networks on the *same*
inputs, ideally a fixed probe batch).

Momentum against its schedule: pass ``momentum`` as the value the EMA update *used* (what
the updater returns or stores, e.g. ``ema.decay``) and ``momentum_target`` as the schedule
evaluated at the step (``schedule(step)``), a number or a one-element array. A schedule that
is never stepped, restarts on resume or is evaluated with the wrong step count shows as a
``momentum_error`` away from 0. The schedule stays the user's own code: any shape (cosine,
linear, constant), no configuration to keep in sync with it.

One family, ``ema/<member>``:

======================  =========================================================================
member                  definition
======================  =========================================================================
``momentum``            m, as given.
``momentum_target``     m*, as given (only when ``momentum_target`` is given).
``momentum_error``      |m − m*| (only when both are given): 0 when the update follows its schedule.
``rel_distance``        ‖θ − ξ‖ / ‖ξ‖ over the shared parameters.
``teacher_step``        ‖ξₖ₊₁ − ξₖ‖ per step. With ``momentum``: (1 − m)·‖θ − ξ‖ (exact when the
                        monitor sees the student after its update and the teacher before its own;
                        after both updates it is low by a factor m, negligible for m near 1).
                        Without: the teacher's displacement since the previous due step divided by the
                        steps elapsed, from a fixed sample of ≤ 16,384 entries per tensor kept in
                        ``state`` (exact for tensors up to that size); no per-step copies.
``weight_norm_ratio``   ‖θ‖ / ‖ξ‖.
``frozen``              1 when the teacher does not move although it differs from the student: m ≥ 1
                        when ``momentum`` is given, else a measured displacement of 0.
``stalled``             1 when the teacher has stalled: ``rel_distance`` rose at each of the last 4
                        due steps **and** ‖θ − ξ‖ grows faster per step than the teacher moves
                        (``teacher_step``), i.e. the student runs away from a teacher that no longer
                        follows. 0 otherwise (and while fewer than 5 points are known).
``agreement``           meanᵢ cos(student_outᵢ, teacher_outᵢ).
``student_std``         std·√d of the L2-normalised ``student_out`` (as ``collapse/std``).
``collapsing``          1 when ``agreement`` > 0.999 **and** ``student_std`` < 0.1: student and teacher
                        agree because both output a constant.
======================  =========================================================================

Lag theory: with a persistent drift Δ per step the gap settles at ‖θ − ξ‖ = m‖Δ‖/(1 − m)
and the teacher moves ≈ ‖Δ‖ per step, so a healthy EMA has ``teacher_step`` ≈ the student's
drift and a flat ``rel_distance``. The ``stalled`` rule fires during the first half-life
ln 2/(1 − m) steps (the gap is still building up), for m so high that the half-life exceeds
the run, for a frozen teacher, and at the end of a cosine schedule to m = 1 (by design).
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np

from metricreg import adapters
from metricreg import arrays as A
from metricreg.distributed import mark_shard
from metricreg.hookspecs import hookimpl
from metricreg.spec import Health, Metric, PartialResult

log = logging.getLogger("metricreg")

STALL_WINDOW = 4  # rises in a row
AGREEMENT_MAX = 0.999
STD_MIN = 0.1

_REMEDY_STALL = (
    "The EMA teacher no longer follows the student: lower the momentum (or its final value, or "
    "lengthen the schedule), check that the teacher update runs every step and on the right "
    "parameters. Near the end of a cosine schedule to 1 this is expected."
)
_REMEDY_COLLAPSE = (
    "Student and teacher agree only because both produce a near-constant output: raise the EMA "
    "momentum, add a predictor or stop-gradient on the teacher branch, and restart from a healthy "
    "checkpoint."
)

HEALTH: dict[str, Health] = {
    "momentum": Health(
        category="ema", title="EMA momentum", description="EMA coefficient m (teacher ← m·teacher + (1 − m)·student)."
    ),
    "momentum_target": Health(
        category="ema",
        nonfinite=None,
        title="EMA momentum target",
        description="The momentum the schedule prescribes at this step (`momentum_target` input).",
    ),
    "momentum_error": Health(
        category="ema",
        nonfinite=None,
        direction="lower_is_better",
        title="|momentum − target|",
        description="Distance between the momentum the EMA update used and its schedule's value at this step: "
        "0 when the update follows the schedule; off 0 when the schedule is not stepped, restarts or uses "
        "another step count. Informational: no health rule until the detection benchmark earns one.",
    ),
    "rel_distance": Health(
        category="ema",
        title="‖θ − ξ‖ / ‖ξ‖",
        description="Relative distance between student and EMA teacher parameters. Flat in a healthy "
        "run; rising without bound when the teacher stalls; 0 when teacher ≡ student.",
    ),
    "teacher_step": Health(
        category="ema",
        title="teacher step ‖ξₖ₊₁ − ξₖ‖",
        description="How far the teacher moves per step: (1 − m)·‖θ − ξ‖, or measured between due steps.",
    ),
    "weight_norm_ratio": Health(
        category="ema",
        warn_above=1.1,
        warn_below=0.9,
        title="‖θ‖ / ‖ξ‖",
        description="Student-to-teacher weight norm ratio. Drifts away from 1 when the teacher lags far behind.",
        remedy=_REMEDY_STALL,
        persistence=2,
    ),
    "stalled": Health(
        category="ema",
        critical_above=0.5,
        direction="lower_is_better",
        title="teacher stalled",
        description="1 when the relative distance rose at each of the last 4 points while growing faster "
        "than the teacher moves (teacher stagnation); 0 otherwise.",
        remedy=_REMEDY_STALL,
        persistence=2,
    ),
    "frozen": Health(
        category="ema",
        critical_above=0.5,
        direction="lower_is_better",
        title="teacher frozen",
        description="1 when the EMA teacher does not move (momentum ≥ 1, or a measured teacher displacement "
        "of 0 between due steps) while the student differs from it; 0 otherwise.",
        remedy="The teacher is frozen: momentum is 1 (check the schedule's end value and its step count) or "
        "the EMA update no longer runs (an early return, an exception, updating a copy). A frozen random "
        "target teaches little.",
    ),
    "agreement": Health(
        category="ema",
        title="student/teacher output agreement",
        description="Mean cosine between student and teacher outputs on the same inputs.",
    ),
    "student_std": Health(
        category="ema",
        warn_below=0.2,
        critical_below=0.05,
        direction="higher_is_better",
        title="student output std × √d",
        description="std of L2-normalised student outputs times √d: 1 isotropic, → 0 collapsed.",
        remedy=_REMEDY_COLLAPSE,
    ),
    "collapsing": Health(
        category="ema",
        critical_above=0.5,
        direction="lower_is_better",
        title="collapse through agreement",
        description="1 when output agreement > 0.999 and student output std·√d < 0.1 (both networks "
        "output a constant); 0 otherwise.",
        remedy=_REMEDY_COLLAPSE,
    ),
}


def _row_cos(xp: Any, a: Any, b: Any) -> Any:
    na = xp.linalg.vector_norm(a, axis=-1)
    nb = xp.linalg.vector_norm(b, axis=-1)
    return xp.sum(a * b, axis=-1) / xp.clip(na * nb, 1e-12, None)


def output_stats(student_out: Any, teacher_out: Any) -> dict[str, Any]:
    """agreement, student_std and the ``collapsing`` indicator from two (n, d) outputs."""
    xp = A.namespace(student_out, teacher_out)
    s = A.to_float(A.as_matrix(student_out, None, xp), xp)
    t = A.to_float(A.as_matrix(teacher_out, None, xp), xp)
    n, d = s.shape
    agreement = xp.mean(_row_cos(xp, s, t))
    sh = s / xp.clip(xp.linalg.vector_norm(s, axis=1, keepdims=True), 1e-12, None)
    std = xp.mean(xp.std(sh, axis=0, correction=1 if n > 1 else 0)) * math.sqrt(d)
    cond = xp.logical_and(agreement > AGREEMENT_MAX, std < STD_MIN)
    collapsing = xp.astype(cond, agreement.dtype) + 0.0 * (agreement + std)  # NaN in -> NaN out
    return {"agreement": agreement, "student_std": std, "collapsing": collapsing}


def ema(
    model: Any,
    ema_model: Any,
    step: int = 0,
    state: dict | None = None,
    momentum: Any = None,
    student_out: Any = None,
    teacher_out: Any = None,
    momentum_target: Any = None,
) -> dict[str, Any] | None:
    """The EMA family (see the module docstring)."""
    state = {} if state is None else state
    out: dict[str, Any] = {}
    if momentum is not None:
        out["momentum"] = A.detach(momentum)
    schedule_error: Exception | None = None
    if momentum_target is not None:
        if momentum is not None:
            _wide(momentum, "momentum")  # a bad momentum fails the family (its members use it), as before
        try:
            out.update(momentum_schedule(momentum, momentum_target))
        except (TypeError, ValueError) as exc:  # an informational input: the rest of the family still runs
            schedule_error = exc
    pairs = adapters.matched_parameters(model, ema_model)
    if pairs:
        out.update(_parameter_stats(pairs, step, state, momentum))
    elif not state.get("warned_unmatched"):
        state["warned_unmatched"] = True
        log.warning(
            "metricreg: ema: no parameter of `ema_model` matches one of `model` (by name, name suffix, "
            "or order and shape); only the momentum and output statistics are written. Pass the student "
            "module that the teacher copies (e.g. model=online.encoder, ema_model=teacher)."
        )
    if student_out is not None and teacher_out is not None:
        out.update(output_stats(student_out, teacher_out))
    if schedule_error is not None:
        raise PartialResult(out, schedule_error)
    return out or None


def _wide(x: Any, name: str) -> Any:
    """A momentum as a Python float or a one-element array in the widest float (no host read)."""
    if isinstance(x, bool) or not (isinstance(x, (int, float)) or A.is_array(x)):
        raise TypeError(f"input {name!r} must be a number or a one-element array, got {type(x).__name__}")
    if isinstance(x, (int, float)):
        return float(x)
    if adapters.numel(x) != 1:
        raise ValueError(f"input {name!r} must hold one value, got shape {tuple(x.shape)}")
    xp = A.namespace(x)
    return A.to_float(xp.reshape(x, ()) if x.ndim else x, xp)


def momentum_schedule(momentum: Any, momentum_target: Any) -> dict[str, Any]:
    """``momentum_target`` and, with ``momentum``, ``momentum_error`` = |m − m*| (module docstring)."""
    target = _wide(momentum_target, "momentum_target")
    out = {"momentum_target": target}
    if momentum is not None:
        out["momentum_error"] = abs(_wide(momentum, "momentum") - target)
    return out


def _momentum_like(momentum: Any, xp: Any, params: Any) -> Any:
    """``momentum`` usable with the parameters' arrays: numpy is read as a float (free); another framework
    (a JAX momentum with a torch model) is an error naming the input, not an unnamed TypeError in the arithmetic."""
    if not A.is_array(momentum) or A.namespace(momentum) is xp:
        return momentum
    if isinstance(momentum, (np.ndarray, np.generic)):
        return float(np.asarray(_wide(momentum, "momentum")))
    raise TypeError(
        f"input 'momentum' ({type(momentum).__name__}) is not of the model's framework ({type(params).__name__}): "
        "pass momentum as a float or an array of the model's framework"
    )


def _parameter_stats(pairs: list, step: int, state: dict, momentum: Any) -> dict[str, Any]:
    thetas = [p for _, p, _ in pairs]
    xis = [q for _, _, q in pairs]
    diff_sq = adapters.diff_sum_of_squares(thetas, xis)
    xp = A.namespace(diff_sq)
    dist = xp.sqrt(diff_sq)
    norm_s = xp.sqrt(adapters.sum_of_squares(thetas))
    norm_t = xp.sqrt(adapters.sum_of_squares(xis))
    rel = dist / xp.clip(norm_t, 1e-30, None)
    ratio = norm_s / xp.clip(norm_t, 1e-30, None)
    sharded = adapters.is_shard_sum(diff_sq)  # FSDP2 / DTensor: ranks combine their shards' norms
    if sharded:
        mark_shard(rel, dist, norm_t)
        mark_shard(ratio, norm_s, norm_t)

    prev = state.get("prev")  # (step, dist, sample) from the previous due step
    if momentum is not None:
        m = _momentum_like(momentum, xp, diff_sq)
        m = m if not A.is_array(m) else A.to_float(A.detach(m))
        teacher_step = (1.0 - m) * dist
        sample = None
    else:
        sample = [adapters.sample_copy(q) for q in xis]  # the EMA update writes the teacher in place
        teacher_step = None
        if prev is not None and prev[2] is not None and step > prev[0] and len(prev[2]) == len(sample):
            moved = adapters.sampled_sq_norm(
                (v - pv, w)
                for (v, w), (pv, _) in zip(sample, prev[2], strict=False)
                if tuple(v.shape) == tuple(pv.shape)
            )
            if moved is not None:
                teacher_step = xp.sqrt(moved) / float(step - prev[0])

    # Stagnation: the relative distance rose STALL_WINDOW times in a row, and the absolute
    # distance grows faster per step than the teacher moves.
    history = state.setdefault("rel_history", [])
    history.append(rel)
    del history[: -(STALL_WINDOW + 1)]
    stalled = xp.zeros_like(rel)
    if len(history) == STALL_WINDOW + 1 and prev is not None and step > prev[0] and teacher_step is not None:
        hs = xp.stack(history)
        rising = xp.all(hs[1:] > hs[:-1])
        growth = (dist - prev[1]) / float(step - prev[0])
        stalled = xp.astype(xp.logical_and(rising, growth > teacher_step), rel.dtype)
    stalled = stalled + 0.0 * rel  # NaN in -> NaN out
    state["prev"] = (step, dist, sample)

    out = {"rel_distance": rel, "weight_norm_ratio": ratio, "stalled": stalled}
    if teacher_step is not None:
        out["teacher_step"] = mark_shard(teacher_step) if sharded else teacher_step
        out["frozen"] = _frozen(xp, teacher_step, dist, norm_t)
    return out


def _frozen(xp: Any, teacher_step: Any, dist: Any, norm_t: Any) -> Any:
    """1 when the teacher does not move although the student differs from it; else 0.

    ``teacher_step`` is (1 − m)·‖θ − ξ‖ when ``momentum`` is given (0 for m ≥ 1), else the
    measured displacement. A teacher identical to the student (m = 0) is not frozen.
    """
    tiny = 1e-12 * xp.clip(norm_t, 1e-30, None)
    cond = xp.logical_and(dist > tiny, teacher_step <= tiny)
    return xp.astype(cond, dist.dtype) + 0.0 * dist  # NaN in -> NaN out


METRICS = [
    Metric(
        "ema",
        compute=ema,
        every=100,
        health=HEALTH,
        # Identical on every rank under DDP; under FSDP2 the shards' norms combine into global values.
        reduce="mean",
        description="EMA teacher/student: momentum (and its schedule's target), relative parameter distance, teacher step, weight-norm "
        "ratio, output agreement, and 0/1 indicators for teacher stagnation and collapse-by-agreement.",
    ),
]


@hookimpl
def metricreg_register_inputs(register):
    register("model", description="the trained model: a torch nn.Module or a parameter pytree")
    register("ema_model", description="the EMA teacher / target network (same structure as model)")
    register("momentum", description="EMA momentum m used at this step")
    register("momentum_target", description="the momentum schedule's value at this step (ema/momentum_error)")
    register("student_out", description="student outputs on a (fixed) probe batch")
    register("teacher_out", description="teacher outputs on the same inputs as student_out")


@hookimpl
def metricreg_register_metrics(register):
    for metric in METRICS:
        register(metric)
