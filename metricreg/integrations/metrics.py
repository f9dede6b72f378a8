"""torchmetrics objects as evaluation values: ``mon.eval(accuracy=acc_metric)`` computes them.

Recognised without importing torchmetrics (only when the user already has), so the core
stays free of it. Under torch.distributed ``compute()`` synchronises across ranks: call
``mon.eval`` on every rank, as with any reduced value.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

__all__ = ["expand_eval_inputs", "metric_values"]


def metric_values(value: Any) -> Any:
    """A torchmetrics ``Metric`` or ``MetricCollection`` computed to its values; anything else unchanged.

    A collection becomes a dict ``{name: value}`` (Monitor.eval flattens it to one input per
    name). Recognised without importing torchmetrics: only when it is already imported.
    """
    tm = sys.modules.get("torchmetrics")
    if tm is None:
        return value
    if isinstance(value, (tm.Metric, tm.MetricCollection)):
        return value.compute()
    return value


def expand_eval_inputs(inputs: Mapping[str, Any]) -> dict[str, Any]:
    """``mon.eval`` inputs with torchmetrics objects computed: a collection fans out to its members."""
    tm = sys.modules.get("torchmetrics")
    if tm is None:
        return dict(inputs)
    out: dict[str, Any] = {}
    for key, value in inputs.items():
        if isinstance(value, tm.MetricCollection):
            for name, member in value.compute().items():
                out[str(name)] = member
        elif isinstance(value, tm.Metric):
            out[key] = value.compute()
        else:
            out[key] = value
    return out
