"""torchmetrics objects as evaluation values: ``mon.eval(accuracy=acc_metric)`` computes them.

Recognised without importing torchmetrics (only when the user already has), so the core
stays free of it. Under torch.distributed ``compute()`` synchronises across ranks: call
``mon.eval`` on every rank, as with any reduced value.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

__all__ = ["expand_eval_inputs"]


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
