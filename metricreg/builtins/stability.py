"""Stability: non-finite values, loss spikes, plateaus, loss trend.

All rules work on the **sampled** training loss: a metric due every 10 steps sees steps
0, 10, 20, ... only, so a one-step spike between two due steps goes unseen (a NaN that
persists, the usual case, is caught at the next due step). Pass ``loss`` every step; it
costs nothing on steps where nothing is due. Everything runs on the loss's device; window
statistics are kept in ``state`` as device scalars.

=================================  ==================================================================
tag (``train/…``)                  rule
=================================  ==================================================================
``stability/nonfinite_loss``       1 when the loss is NaN/±Inf (every 10 steps).
``stability/nonfinite_grads``      1 when the global gradient norm is NaN/±Inf (overflow included).
``stability/spikes/detected``      Lightning ``SpikeDetection`` (mode min, window 10, rtol 2): the loss is
                                   worse than the previous sample AND |L − mean₁₀| ≥ 2·|mean₁₀| AND
                                   |L − mean₁₀| ≥ 0.05·|L₀| (L₀ the median of the first 5 samples: a scale-free
                                   atol, so tripling a near-zero loss is not a spike); mean over the previous
                                   10 finite samples; a non-finite loss is a spike. Informational: the rate
                                   below holds the rule.
``stability/spikes/ratio``         L / mean₁₀.
``stability/spikes/rate``          fraction of the last 100 samples that were spikes.
``stability/progress_lost``        (L̃ − best L̃) / (L₀ − best L̃): the share of the learned loss decrease that is
                                   lost again (L̃ a debiased EMA, weight 0.8, of the loss sampled every 10 steps;
                                   L₀ the median of the first 5 samples). 0 at the best, 1 back at the start.
``stability/plateau``              steps since the smoothed loss last improved, PyTorch
                                   ``ReduceLROnPlateau`` rel rule: improved when L̃ < best·(1 − 1e-4), L̃ the
                                   TensorBoard debiased EMA (weight 0.8) of the loss sampled every 50 steps.
``<eval split>/stability/eval_drop/<score>``  best eval value so far minus this one, for each classification
                                   score in [0, 1] given to ``mon.eval`` (accuracy, F1, ...).
``<eval split>/stability/eval_plateau``  evaluations since the eval loss last improved (same rule, raw).
``stability/loss_trend``           least-squares slope of the last 20 samples (every 50 steps: 1,000 steps),
                                   per 1,000 steps, relative to the mean |loss|: > 0 means rising.
=================================  ==================================================================
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from metricreg import arrays as A
from metricreg.directions import is_fraction_score
from metricreg.hookspecs import hookimpl
from metricreg.rule_jobs import writer_rule
from metricreg.spec import Health, Metric

SPIKE_WINDOW = 10
SPIKE_RTOL = 2.0
SPIKE_ATOL: float | None = None
SPIKE_ATOL_FRAC = 0.05  # a spike must also move the loss by 5% of its initial level
SPIKE_RATE_WINDOW = 100
PLATEAU_EVERY = 50
PLATEAU_SMOOTHING = 0.8
PLATEAU_THRESHOLD = 1e-4
PROGRESS_EARLY = 5
PROGRESS_SMOOTHING = 0.8
PROGRESS_MIN_LEARNED = 0.1
TREND_EVERY = 50
TREND_WINDOW = 20


def scalar_loss(loss: Any) -> Any:
    """A loss as a detached 0-d float array (the mean if it is per-sample), or a numpy float."""
    loss = A.host_scalar(loss)  # CPU scalars: numpy float arithmetic, not torch kernels
    if A.is_array(loss) and not isinstance(loss, np.generic):
        xp = A.namespace(loss)
        loss = A.to_float(A.detach(loss), xp)
        return xp.mean(loss) if loss.ndim else loss
    return np.float64(loss)


def host_float(loss: Any) -> float | None:
    """The loss as a Python float when :func:`scalar_loss` would take its float route, else None.

    The host routes below run on Python floats, which never warn, so they skip ``_QUIET``: entering
    ``np.errstate`` costs more than the whole rule (~3 us cold, per rule and due step). Python
    float arithmetic is IEEE double arithmetic, the same as numpy's float64; only a division by
    zero differs (it raises), and :func:`_div` gives numpy's result there.
    """
    x = A.host_scalar(loss)
    if type(x) is float:
        return x
    if A.is_array(x) and not isinstance(x, np.generic):
        return None
    return float(np.float64(x))


def _div(a: float, b: float) -> float:
    """a / b with numpy float64 semantics for b == 0 (±inf, or NaN for 0/0 and NaN/0)."""
    try:
        return a / b
    except ZeroDivisionError:
        if a == 0.0 or a != a:
            return math.nan
        return math.copysign(math.inf, a) * math.copysign(1.0, b)


# Device losses: NaN/Inf are results here, so numpy's "invalid value" / "divide by zero" warnings
# are silenced in the array versions (the host-float versions cannot warn: see host_float).
_QUIET = np.errstate(all="ignore")


def _ns(x: Any) -> Any:
    return A.namespace(x)


def _indicator_nonfinite(x: Any) -> Any:
    if isinstance(x, np.generic):  # a host float: no ufunc round trip
        return np.float64(0.0 if math.isfinite(x) else 1.0)
    xp = _ns(x)
    return xp.astype(xp.logical_not(xp.isfinite(x)), x.dtype if xp.isdtype(x.dtype, "real floating") else xp.float32)


@writer_rule
def nonfinite_loss(loss: Any) -> Any:
    value = host_float(loss)
    if value is not None:
        return 0.0 if math.isfinite(value) else 1.0
    return _indicator_nonfinite(scalar_loss(loss))


@writer_rule
def nonfinite_grads(grad_norm: Any) -> Any:
    if grad_norm is None:
        return None
    value = host_float(grad_norm)
    if value is not None:
        return 0.0 if math.isfinite(value) else 1.0
    return _indicator_nonfinite(scalar_loss(grad_norm))


@writer_rule
def spikes(loss: Any, state: dict | None = None) -> dict[str, Any]:
    """Lightning-style spike detection on the sampled loss (see the module docstring)."""
    state = {} if state is None else state
    value = host_float(loss)
    if value is not None:
        return _spikes_host(value, state)
    return _spikes_array(scalar_loss(loss), state)


@_QUIET
def _spikes_array(value: Any, state: dict) -> dict[str, Any]:
    xp = _ns(value)
    finite = xp.isfinite(value)
    window: list = state.setdefault("window", [])
    median = _early_median(state, value, xp)
    out: dict[str, Any] = {}
    if len(window) >= SPIKE_WINDOW:
        w = xp.stack(window[-SPIKE_WINDOW:])
        ok = xp.isfinite(w)
        count = xp.sum(xp.astype(ok, value.dtype))
        mean = xp.sum(xp.where(ok, w, 0.0)) / xp.clip(count, 1.0, None)
        mean = xp.where(count > 0, mean, xp.nan)
        worse = value > window[-1]
        rel_ok = xp.abs(value - mean) >= SPIKE_RTOL * xp.abs(mean)
        cond = xp.logical_and(worse, rel_ok)
        if SPIKE_ATOL is not None:
            cond = xp.logical_and(cond, xp.abs(value - mean) >= abs(SPIKE_ATOL))
        if median is not None:
            # Near an interpolating loss of ~0, tripling 0.001 is noise, not a spike.
            cond = xp.logical_and(cond, xp.abs(value - mean) >= SPIKE_ATOL_FRAC * xp.abs(median))
        spike = xp.logical_or(cond, xp.logical_not(finite))
        out["ratio"] = value / mean
    else:
        spike = xp.logical_not(finite)  # warm-up: only non-finite values count
    return _record_spike(xp.astype(spike, value.dtype), value, window, state, out)


def _record_spike(flag: Any, value: Any, window: list, state: dict, out: dict[str, Any]) -> dict[str, Any]:
    """Shared by both spike versions: slide the loss window, and the spike rate's running sum."""
    window.append(value)
    del window[:-SPIKE_WINDOW]
    flags: list = state.setdefault("flags", [])
    flags.append(flag)
    total = state.get("flag_sum", 0.0) + flag  # running sum: no growing shapes (JAX compiles per shape)
    if len(flags) > SPIKE_RATE_WINDOW:
        total = total - flags.pop(0)
    state["flag_sum"] = total
    out["detected"] = flag
    out["rate"] = total / float(len(flags))
    return out


def _early_median(state: dict, value: Any, xp: Any = None) -> Any:
    """The lower median of the run's first PROGRESS_EARLY samples that are finite (inf if none is).

    The loss's own scale, for the scale-free rules (the spike atol, progress_lost's L₀). None
    until the samples are in; ``xp`` None is the host-float route, else the array route.
    """
    early: list = state.setdefault("early", [])
    if "early_median" not in state and len(early) < PROGRESS_EARLY:
        early.append(value if xp is not None else float(value))
        if len(early) == PROGRESS_EARLY:
            if xp is not None:
                state["early_median"] = _median_finite(xp, early, value.dtype)
            else:
                finite = sorted(v for v in early if math.isfinite(v))
                state["early_median"] = finite[(len(finite) - 1) // 2] if finite else math.inf
    return state.get("early_median")


def _median_finite(xp: Any, samples: list, dtype: Any) -> Any:
    """The (lower) median of the finite entries of a short list of 0-d arrays; inf when none is."""
    stacked = xp.stack(samples)
    ok = xp.isfinite(stacked)
    ordered = xp.sort(xp.where(ok, stacked, math.inf))  # shape-static, so JAX compiles once
    count = xp.sum(xp.astype(ok, dtype))
    idx = xp.astype(xp.clip(xp.floor((count - 1.0) / 2.0), 0, len(samples) - 1), xp.int32)
    return xp.take(ordered, xp.reshape(idx, (1,)), axis=0)[0]


def _spikes_host(value: float, state: dict) -> dict[str, Any]:
    """spikes() for a host float: the same rule in Python float arithmetic (numpy float64 results).

    A CPU loss is read as a float (A.host_scalar); running the array version on it costs a
    dozen numpy ufunc calls, which are cold after a training step (~150 us a due step). A test
    keeps the two versions equal (tests/builtins/test_stability_host.py).
    """
    finite = math.isfinite(value)
    window: list = state.setdefault("window", [])
    median = _early_median(state, value)
    out: dict[str, Any] = {}
    if len(window) >= SPIKE_WINDOW:
        ok = [w for w in window[-SPIKE_WINDOW:] if math.isfinite(w)]
        mean = sum(ok) / len(ok) if ok else math.nan
        cond = value > window[-1] and abs(value - mean) >= SPIKE_RTOL * abs(mean)
        if SPIKE_ATOL is not None:
            cond = cond and abs(value - mean) >= abs(SPIKE_ATOL)
        if median is not None:
            cond = cond and abs(value - mean) >= SPIKE_ATOL_FRAC * abs(median)
        spike = cond or not finite
        out["ratio"] = _div(value, mean)
    else:
        spike = not finite  # warm-up: only non-finite values count
    return _record_spike(1.0 if spike else 0.0, value, window, state, out)


@writer_rule
def plateau(loss: Any, step: int = 0, state: dict | None = None) -> Any:
    """Steps since the smoothed training loss last improved by more than 1e-4 (relative)."""
    state = {} if state is None else state
    value = host_float(loss)
    if value is not None:
        return _plateau_host(value, step, state)
    return _plateau_array(scalar_loss(loss), step, state)


@_QUIET
def _plateau_array(value: Any, step: int, state: dict) -> Any:
    xp = _ns(value)
    finite = xp.isfinite(value)
    w = PLATEAU_SMOOTHING
    if "ema" not in state:
        zero = xp.zeros_like(value)
        state.update(ema=zero, n=zero, best=zero + math.inf, since=zero, last_step=step)
    # TensorBoard's debiased EMA; a non-finite point leaves the state untouched.
    ema = xp.where(finite, state["ema"] * w + (1.0 - w) * xp.where(finite, value, 0.0), state["ema"])
    n = state["n"] + xp.astype(finite, value.dtype)
    smoothed = ema / xp.clip(1.0 - w**n, 1e-12, None)
    improved = xp.logical_and(finite, smoothed < state["best"] * (1.0 - PLATEAU_THRESHOLD))
    improved = xp.logical_or(improved, xp.logical_and(finite, xp.isinf(state["best"])))
    elapsed = float(max(0, step - state["last_step"]))
    since = xp.where(improved, 0.0, state["since"] + elapsed)
    state.update(ema=ema, n=n, best=xp.where(improved, smoothed, state["best"]), since=since, last_step=step)
    return since + 0.0 * value  # NaN loss -> NaN


def warming_up(warmup: Any) -> bool:
    """True when the loop says it is warming up. Host values only: a device flag is not read
    (that would sync); pass a Python bool for the rule to follow the warm-up."""
    if warmup is None or (A.is_array(warmup) and not isinstance(warmup, np.generic)):
        return False
    try:
        return bool(warmup)
    except (TypeError, ValueError):
        return False


@writer_rule
def progress_lost(loss: Any, state: dict | None = None, warmup: Any = None) -> Any:
    """How much of what the run learned it has lost: (L̃ − best L̃) / (L₀ − best L̃).

    L̃ is a debiased EMA (weight 0.8) of the loss sampled every 10 steps, L₀ the median of
    the first 5 samples, best L̃ the lowest smoothed value from the 5th sample on (a loss that
    rises in its first steps, as DINO's does while its teacher sharpens, has learned nothing
    yet: its step-0 value is not a best to lose). 0 while the loss is at its
    best, 1 when it is back where it started, above 1 past it: divergence, or a network
    killed by a too-large learning rate. Scale-free, so it works for cross-entropy, MSE and
    negative-cosine losses alike; 0 until the run has learned something (best L̃ at least
    10% of |L₀| below L₀), so a run that never learned is not reported as diverging.

    While ``warmup`` is true the rule starts afresh at every due step and reads 0: a loss whose
    terms are switched on after a warm-up jumps by design. Its baseline starts when the
    warm-up ends.
    """
    state = {} if state is None else state
    if warming_up(warmup):
        state.clear()
        return 0.0
    value = host_float(loss)
    if value is not None:
        return _progress_lost_host(value, state)
    return _progress_lost_array(scalar_loss(loss), state)


@_QUIET
def _progress_lost_array(value: Any, state: dict) -> Any:
    xp = _ns(value)
    finite = xp.isfinite(value)
    initial = _early_median(state, value, xp)
    w = PROGRESS_SMOOTHING
    if "ema" not in state:
        zero = xp.zeros_like(value)
        state.update(ema=zero, n=zero, best=zero + math.inf)
    ema = xp.where(finite, state["ema"] * w + (1.0 - w) * xp.where(finite, value, 0.0), state["ema"])
    n = state["n"] + xp.astype(finite, value.dtype)
    smoothed = ema / xp.clip(1.0 - w**n, 1e-12, None)
    state.update(ema=ema, n=n)
    if initial is None:  # the best counts from the end of L₀'s window on (see progress_lost)
        return xp.zeros_like(value)
    best = xp.where(xp.logical_and(finite, smoothed < state["best"]), smoothed, state["best"])
    state.update(best=best)
    learned = initial - best
    meaningful = xp.logical_and(xp.isfinite(learned), learned > PROGRESS_MIN_LEARNED * xp.abs(initial))
    lost = (smoothed - best) / xp.where(meaningful, learned, 1.0)
    return xp.where(meaningful, lost, 0.0)


def _progress_lost_host(value: float, state: dict) -> float:
    """progress_lost() for a host float in scalar arithmetic (the array version costs ~150 us of cold
    numpy calls per due step); tests/builtins/test_stability_host.py keeps the two equal."""
    finite = math.isfinite(value)
    initial = _early_median(state, value)
    w = PROGRESS_SMOOTHING
    ema, n, best = state.get("ema", 0.0), state.get("n", 0.0), state.get("best", math.inf)
    if finite:
        ema, n = ema * w + (1.0 - w) * value, n + 1.0
    smoothed = ema / max(1.0 - w**n, 1e-12)
    state.update(ema=ema, n=n)
    if initial is None:  # the best counts from the end of L₀'s window on (see progress_lost)
        return 0.0
    if finite and smoothed < best:
        best = smoothed
    state.update(best=best)
    learned = initial - best
    if not (math.isfinite(learned) and learned > PROGRESS_MIN_LEARNED * abs(initial)):
        return 0.0
    return (smoothed - best) / learned


@writer_rule(inputs=frozenset())  # on the writer thread with the eval's inputs as host numbers (rule_jobs)
def eval_drop(inputs: Any, state: dict | None = None) -> dict[str, Any] | None:
    """How far each classification score of this eval lies below its best eval so far.

    A score in [0, 1] (accuracy, F1, ...) that falls well below its best is held-out damage,
    whatever caused it: a learning rate raised too far, a diverging or corrupted run, a
    distribution shift. Overfitting moves it a little; healthy runs stay within a few points.
    """
    state = {} if state is None else state
    best: dict = state.setdefault("best", {})
    out: dict[str, Any] = {}
    for name in inputs.provided():
        if not is_fraction_score(name):
            continue
        raw = inputs[name]
        if raw is None or not A.is_scalar_like(raw):
            continue
        host = host_float(raw)
        if host is not None:  # a Python float: no array namespace (whose first use imports ~35 ms of modules)
            prev = best.get(name)
            top = host if prev is None else (_maximum(prev, host) if math.isfinite(host) else prev)
            best[name] = top
            out[name] = top - host
            continue
        value = scalar_loss(raw)
        xp = _ns(value)
        prev = best.get(name)
        top = value if prev is None else xp.where(xp.isfinite(value), xp.maximum(prev, value), prev)
        best[name] = top
        out[name] = top - value
    return out or None


def _maximum(a: float, b: float) -> float:
    """numpy.maximum for floats: NaN if either is NaN."""
    if a != a or b != b:
        return math.nan
    return a if a >= b else b


def _plateau_host(value: float, step: int, state: dict) -> float:
    """plateau() for a host float: the same rule in Python float arithmetic (see _spikes_host)."""
    w = PLATEAU_SMOOTHING
    if "ema" not in state:
        state.update(ema=0.0, n=0.0, best=math.inf, since=0.0, last_step=step)
    finite = math.isfinite(value)
    ema = state["ema"] * w + (1.0 - w) * value if finite else state["ema"]
    n = state["n"] + (1.0 if finite else 0.0)
    smoothed = ema / max(1.0 - w**n, 1e-12)
    best = state["best"]
    improved = finite and (smoothed < best * (1.0 - PLATEAU_THRESHOLD) or math.isinf(best))
    elapsed = float(max(0, step - state["last_step"]))
    since = 0.0 if improved else state["since"] + elapsed
    state.update(ema=ema, n=n, best=smoothed if improved else best, since=since, last_step=step)
    return since + 0.0 * value  # NaN loss -> NaN


@writer_rule
def eval_plateau(loss: Any, state: dict | None = None) -> Any:
    """Evaluations since the eval loss last improved (ReduceLROnPlateau rel rule, threshold 1e-4)."""
    state = {} if state is None else state
    host = host_float(loss)
    if host is not None:  # Python floats: no np.errstate, no array namespace (see host_float)
        best = state.get("best", math.inf)
        improved = math.isfinite(host) and (host < best * (1.0 - PLATEAU_THRESHOLD) or math.isinf(best))
        bad = 0.0 if improved else state.get("bad", 0.0) + 1.0
        state["best"] = host if improved else best
        state["bad"] = bad
        return bad
    return _eval_plateau_array(scalar_loss(loss), state)


@_QUIET
def _eval_plateau_array(value: Any, state: dict) -> Any:
    xp = _ns(value)
    finite = xp.isfinite(value)
    best = state.get("best")
    bad = state.get("bad")
    if best is None:
        best = xp.zeros_like(value) + math.inf
        bad = xp.zeros_like(value)
    improved = xp.logical_and(finite, xp.logical_or(value < best * (1.0 - PLATEAU_THRESHOLD), xp.isinf(best)))
    bad = xp.where(improved, 0.0, bad + 1.0)
    state["best"] = xp.where(improved, value, best)
    state["bad"] = bad
    return bad


@writer_rule
def loss_trend(loss: Any, step: int = 0, state: dict | None = None) -> Any:
    """Relative least-squares slope of the last TREND_WINDOW sampled losses, per 1,000 steps."""
    state = {} if state is None else state
    value = host_float(loss)
    if value is not None:  # Python floats cannot warn: no np.errstate (see host_float)
        return _loss_trend(value, step, state)
    return _loss_trend_array(scalar_loss(loss), step, state)


def _loss_trend(value: Any, step: int, state: dict) -> Any:
    hist: list = state.setdefault("history", [])
    hist.append((step, value))
    del hist[:-TREND_WINDOW]
    if len(hist) < 3:
        return None
    xs = [float(s) for s, _ in hist]
    x_mean = sum(xs) / len(xs)
    sxx = sum((x - x_mean) ** 2 for x in xs)
    if sxx == 0:
        return None
    # Scalar operations only (a window that grows would make JAX compile anew for each length).
    slope = None
    scale = None
    for (_, v), x in zip(hist, xs, strict=True):
        term = v * ((x - x_mean) / sxx)
        slope = term if slope is None else slope + term
        scale = abs(v) if scale is None else scale + abs(v)  # __abs__: no namespace call per sample
    scale = scale / float(len(hist))
    if isinstance(scale, (float, np.floating)):  # host floats (CPU losses): no array namespace round trip
        return slope * 1000.0 / max(scale, 1e-30)  # max keeps a NaN scale, as clip does
    return slope * 1000.0 / _ns(value).clip(scale, 1e-30, None)


_loss_trend_array = _QUIET(_loss_trend)

_REMEDY_NONFINITE = (
    "Training produced NaN/Inf: lower the learning rate, enable gradient clipping, check the loss for "
    "log(0), division by zero or exp overflow, use a loss scaler (or bf16) under mixed precision, and "
    "resume from the last finite checkpoint."
)
_REMEDY_SPIKE = (
    "Loss spikes: lower the learning rate or lengthen warm-up, enable gradient clipping, lower Adam's "
    "beta2 or raise its epsilon, and look for bad batches at the spike steps."
)

HEALTH_NONFINITE_LOSS = Health(
    category="stability",
    critical_above=0.5,
    direction="lower_is_better",
    title="non-finite loss",
    description="1 when the (sampled) loss is NaN or infinite.",
    remedy=_REMEDY_NONFINITE,
)
HEALTH_NONFINITE_GRADS = Health(
    category="stability",
    critical_above=0.5,
    direction="lower_is_better",
    title="non-finite gradients",
    description="1 when the global gradient norm is NaN or infinite (a NaN/Inf gradient, or overflow).",
    remedy=_REMEDY_NONFINITE,
)
HEALTH_SPIKES = {
    "detected": Health(
        category="stability",
        direction="lower_is_better",
        title="loss spike",
        description="1 when the sampled loss is worse than the previous sample and at least 2× its "
        "10-sample mean away from it (Lightning SpikeDetection rule), or non-finite.",
        remedy=_REMEDY_SPIKE,
    ),
    "ratio": Health(
        category="stability",
        title="loss / recent mean",
        description="Sampled loss divided by the mean of the previous 10 samples.",
    ),
    "rate": Health(
        category="stability",
        warn_above=0.25,
        critical_above=0.5,
        direction="lower_is_better",
        title="spike rate",
        description="Fraction of the last 100 loss samples flagged as spikes.",
        remedy=_REMEDY_SPIKE,
    ),
}
HEALTH_PROGRESS = Health(
    category="stability",
    critical_above=0.5,
    persistence=2,
    nonfinite=None,  # a NaN loss is stability/nonfinite_loss's alert
    direction="lower_is_better",
    title="progress lost",
    description="(smoothed loss − its best) / (initial loss − its best): the share of what the run "
    "learned that it has lost. 0 at the best loss, 1 back at the start, > 1 diverging.",
    remedy="The loss has climbed back most of the way to where training started: the learning rate is too "
    "high (or was raised), the optimizer state is corrupted, or the data changed. Lower the learning "
    "rate, enable gradient clipping, and resume from the checkpoint before the rise.",
)
HEALTH_PLATEAU = Health(
    category="stability",
    direction="lower_is_better",
    title="steps without improvement",
    description="Steps since the smoothed training loss last improved by more than 1e-4 relative "
    "(ReduceLROnPlateau rel rule on a debiased EMA of the loss sampled every 50 steps).",
    remedy="Training has stalled: decay the learning rate (or use ReduceLROnPlateau), check that the "
    "learning rate has not already decayed to ~0, or stop if validation metrics have converged too.",
)
HEALTH_EVAL_DROP = Health(
    category="stability",
    critical_above=0.1,
    persistence=2,
    direction="lower_is_better",
    title="eval score below its best",
    description="Best eval value so far minus this eval's, for classification scores in [0, 1] (accuracy, "
    "F1, ...): critical 0.1 (10 points) below the best for 2 evals. Healthy calibration runs stay within "
    "0.04; a learning rate raised 10× or a NaN takes 0.3–0.9.",
    remedy="Held-out performance collapsed from its best: the learning rate is too high (or was raised), "
    "training diverged, or the data changed. Resume from the best checkpoint with a lower learning rate.",
)
HEALTH_EVAL_PLATEAU = Health(
    category="stability",
    direction="lower_is_better",
    title="evals without improvement",
    description="Evaluations since the eval loss last improved by more than 1e-4 relative "
    "(ReduceLROnPlateau rel rule, patience 10).",
    remedy="The eval loss no longer improves: decay the learning rate, or stop early and keep the best checkpoint.",
)
HEALTH_TREND = Health(
    category="stability",
    warn_above=1.0,
    persistence=3,
    direction="lower_is_better",
    title="loss trend",
    description="Least-squares slope of the last 20 loss samples (1,000 steps), as a fraction of the mean "
    "loss per 1,000 steps: negative while learning, ≈ 0 on a plateau, positive when the loss rises.",
    remedy="The training loss is rising: lower the learning rate, check the schedule (a restart or warm-up "
    "that is too aggressive), and look for data or augmentation changes at that point.",
)

METRICS = [
    Metric(
        "stability/nonfinite_loss",
        compute=nonfinite_loss,
        every=10,
        health=HEALTH_NONFINITE_LOSS,
        reduce="max",
        description=HEALTH_NONFINITE_LOSS.description,
    ),
    Metric(
        "stability/nonfinite_grads",
        compute=nonfinite_grads,
        every=10,
        health=HEALTH_NONFINITE_GRADS,
        reduce="max",
        description=HEALTH_NONFINITE_GRADS.description,
    ),
    Metric(
        "stability/spikes",
        compute=spikes,
        every=10,
        health=HEALTH_SPIKES,
        reduce="max",
        description="Loss spikes (Lightning SpikeDetection rule on the loss sampled every 10 steps).",
    ),
    Metric(
        "stability/progress_lost",
        compute=progress_lost,
        every=10,
        health=HEALTH_PROGRESS,
        reduce="max",
        description=HEALTH_PROGRESS.description,
    ),
    Metric(
        "stability/plateau",
        compute=plateau,
        every=PLATEAU_EVERY,
        health=HEALTH_PLATEAU,
        description=HEALTH_PLATEAU.description,
    ),
    Metric(
        "stability/eval_drop",
        compute=eval_drop,
        every="eval",
        health=HEALTH_EVAL_DROP,
        description=HEALTH_EVAL_DROP.description,
    ),
    Metric(
        "stability/eval_plateau",
        compute=eval_plateau,
        every="eval",
        health=HEALTH_EVAL_PLATEAU,
        description=HEALTH_EVAL_PLATEAU.description,
    ),
    Metric(
        "stability/loss_trend",
        compute=loss_trend,
        every=TREND_EVERY,
        health=HEALTH_TREND,
        reduce="mean",
        description=HEALTH_TREND.description,
    ),
]


@hookimpl
def metricreg_register_inputs(register):
    register("loss", description="the training loss of this step (scalar)")


@hookimpl
def metricreg_register_metrics(register):
    for metric in METRICS:
        register(metric)
