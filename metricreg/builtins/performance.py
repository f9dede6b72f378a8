"""Performance: step time and throughput from wall-clock time between due steps.

``performance/<member>`` (every 20 steps), all Python numbers (no device work):

=====================  ==========================================================================
member                 definition
=====================  ==========================================================================
``step_time_ms``       wall-clock time since the previous due step / steps elapsed (state)
``samples_per_s``      ``batch_size`` / step time (when ``batch_size`` is given)
``tokens_per_s``       ``tokens`` / step time (when ``tokens``, tokens per step, is given)
``forward_ms``         ``forward_time`` (seconds, as measured by the user) × 1000
``backward_ms``        ``backward_time`` × 1000
``other_ms``           step time − forward − backward (data loading, optimizer, logging)
=====================  ==========================================================================

The interval average is over *all* steps between two due steps, so it includes the steps'
share of data loading, the optimizer and metricreg's own work on due steps. On CUDA the
host runs ahead of the GPU by at most a few steps, so over 20 steps the host-side interval
matches GPU throughput without any synchronisation. The first due step only starts the clock.
"""

from __future__ import annotations

import time
from typing import Any

from metricreg import arrays as A
from metricreg.hookspecs import hookimpl
from metricreg.spec import Health, Metric

EVERY = 20


def _number(x: Any) -> Any:
    """A Python number from a Python number, or the array itself (no host sync)."""
    if isinstance(x, (int, float)):
        return float(x)
    if A.is_array(x):
        return A.detach(x)
    return None


def performance(
    step: int = 0,
    state: dict | None = None,
    batch_size: Any = None,
    tokens: Any = None,
    forward_time: Any = None,
    backward_time: Any = None,
) -> dict[str, Any] | None:
    state = {} if state is None else state
    now = time.perf_counter()
    prev = state.get("prev")
    state["prev"] = (now, step)
    out: dict[str, Any] = {}
    step_time = None
    if prev is not None and step > prev[1]:
        step_time = (now - prev[0]) / (step - prev[1])
        out["step_time_ms"] = step_time * 1000.0
        if batch_size is not None and step_time > 0:
            out["samples_per_s"] = _number(batch_size) / step_time
        if tokens is not None and step_time > 0:
            out["tokens_per_s"] = _number(tokens) / step_time
    fwd = _number(forward_time) if forward_time is not None else None
    bwd = _number(backward_time) if backward_time is not None else None
    if fwd is not None:
        out["forward_ms"] = fwd * 1000.0
    if bwd is not None:
        out["backward_ms"] = bwd * 1000.0
    if step_time is not None and isinstance(fwd, float) and isinstance(bwd, float):
        out["other_ms"] = max(0.0, step_time - fwd - bwd) * 1000.0
    return out or None


HEALTH = {
    "step_time_ms": Health(
        category="performance",
        direction="lower_is_better",
        title="step time (ms)",
        description="Mean wall-clock time per training step between two due steps.",
    ),
    "samples_per_s": Health(
        category="performance",
        direction="higher_is_better",
        title="samples / s",
        description="Training throughput: batch_size / step time.",
    ),
    "tokens_per_s": Health(
        category="performance",
        direction="higher_is_better",
        title="tokens / s",
        description="Training throughput in tokens: tokens per step / step time.",
    ),
    "forward_ms": Health(category="performance", title="forward (ms)", description="User-measured forward time."),
    "backward_ms": Health(category="performance", title="backward (ms)", description="User-measured backward time."),
    "other_ms": Health(
        category="performance",
        title="other (ms)",
        description="Step time not spent in forward or backward: data loading, optimizer step, logging. "
        "A large share means the input pipeline or host overhead limits throughput.",
    ),
}

METRICS = [
    Metric(
        "performance",
        compute=performance,
        every=EVERY,
        health=HEALTH,
        reduce=None,  # host-side numbers of rank 0 (an all-reduce would upload them: a sync)
        description="Step time, throughput, and the forward/backward split when measured by the user.",
    ),
]


@hookimpl
def metricreg_register_inputs(register):
    register("batch_size", description="samples per training step")
    register("tokens", description="tokens per training step")
    register("forward_time", description="seconds spent in the forward pass (user-measured)")
    register("backward_time", description="seconds spent in the backward pass (user-measured)")


@hookimpl
def metricreg_register_metrics(register):
    for metric in METRICS:
        register(metric)
