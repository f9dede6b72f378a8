"""Loss structure (informational): named loss components, their shares, and a warm-up flag.

Hierarchical and multi-head models log each term of their loss and how much of the total it
makes ("contribution %"); a head that stops learning shows as a share falling to 0 or taking
everything. Inputs:

* ``losses``: a dict ``{name: scalar}`` (Python numbers, 0-d arrays on any device, or per-sample
  arrays, averaged like ``loss``). Names are tag paths (``"level1/pred"`` is allowed).
* ``warmup``: a flag (bool, 0/1, or a 0-d array) written as is, 1.0 while warming up.

Family ``losses`` (every 10 steps, like ``loss``): ``losses/<name>`` the component and
``losses/<name>_share`` = value / Σ values (the raw signed sum; NaN when the sum is 0).
``warmup`` (every 10 steps). CPU scalars are read as floats (no device involved); device
values stay on their device. No health thresholds (docs/metrics.md, "Research signals").
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from metricreg import arrays as A
from metricreg.builtins.loss import scalar
from metricreg.hookspecs import hookimpl
from metricreg.spec import Health, Metric, SpecError, check_name

HEALTH_LOSSES = Health(
    category="stability",
    nonfinite=None,
    title="loss components",
    description="Each named loss component (`losses` input) and its share of their sum: a head that stops "
    "learning shows as a share drifting to 0 or to 1. Informational: no health rule until the detection "
    "benchmark shows one that stays quiet.",
)
HEALTH_WARMUP = Health(
    category="stability",
    nonfinite=None,
    title="warm-up",
    description="1 while the training loop says it is warming up (`warmup` input), else 0: read alerts and "
    "curves in its light.",
)


def _component(name: object, value: Any) -> Any:
    if not isinstance(name, str):
        raise TypeError(f"input 'losses': names must be strings, got {name!r}")
    try:
        check_name(name, "loss component")
    except SpecError as exc:
        raise ValueError(f"input 'losses': {exc}") from None
    if isinstance(value, bool) or not (isinstance(value, (int, float)) or A.is_array(value)):
        raise TypeError(f"input 'losses': component {name!r} must be a number or an array, got {type(value).__name__}")
    return A.host_scalar(scalar(value))


def _share(value: Any, total: Any) -> Any:
    if isinstance(total, (int, float)):
        if isinstance(value, (int, float)):
            return value / total if total != 0 else math.nan
        total = A.as_scalar_array(total, like=value)
    xp = A.namespace(total)
    return xp.where(total != 0, value / xp.where(total != 0, total, 1.0), xp.nan)


def losses(losses: Any) -> dict[str, Any] | None:
    """Each component and its share of the components' sum (module docstring)."""
    if not isinstance(losses, Mapping):
        raise TypeError(f"input 'losses' must be a dict of name -> scalar, got {type(losses).__name__}")
    if not losses:
        return None
    values = {name: _component(name, v) for name, v in losses.items()}
    total: Any = 0.0
    for v in values.values():
        total = total + v
    out: dict[str, Any] = dict(values)
    for name, v in values.items():
        out[f"{name}_share"] = _share(v, total)
    return out


def warmup(warmup: Any) -> Any:
    """The flag as a number: 1.0 while warming up."""
    if isinstance(warmup, (bool, int, float)):
        return float(warmup)
    if A.is_array(warmup):
        return A.as_scalar_array(warmup)
    raise TypeError(f"input 'warmup' must be a bool, a number or a 0-d array, got {type(warmup).__name__}")


METRICS = [
    Metric(
        "losses",
        compute=losses,
        every=10,
        health=HEALTH_LOSSES,
        description="Named loss components and each one's share of their sum (informational).",
    ),
    Metric("warmup", compute=warmup, every=10, health=HEALTH_WARMUP, description=HEALTH_WARMUP.description),
]


@hookimpl
def metricreg_register_inputs(register):
    register("losses", description="dict of loss component name -> scalar (written as losses/<name> and its share)")
    register("warmup", description="warm-up flag (bool or 0/1), written as is")


@hookimpl
def metricreg_register_metrics(register):
    for metric in METRICS:
        register(metric)
