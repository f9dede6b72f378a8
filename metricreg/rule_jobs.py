"""Scalar rules run as one writer-thread job per due step.

Why: on a small CPU step, a dozen scalar rules due every 10 steps each cost a few microseconds of
the training thread, mostly cold code after a training step, not arithmetic. Their inputs are one
number each (the loss, the gradient norm), read once per step anyway. So the training thread
reads those numbers, queues them with the rules in ONE record, and the writer thread runs the
rules in step order. A rule's state is only ever touched by the writer thread, which handles
records in order, so it sees exactly the sequence of values it would have seen inline, and
writes the same values at the same steps.

A rule opts in with :func:`writer_rule` (its compute must work on Python floats, which is how
the host routes of the built-ins already run). The Monitor routes it only in a single-process
run (under torch.distributed scalars are reduced across ranks on the training thread) and only
while its inputs are host numbers; a rule that raises in the job is counted and reported under
its own name, exactly as inline (see Monitor._run_rules).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np

F = TypeVar("F", bound=Callable[..., Any])

_MARK = "_metricreg_writer_rule"
_PLAIN = frozenset({float, int, bool, str, type(None)})
NOT_HOST = object()  # host_value's answer for a value that is not one host number


def writer_rule(compute: F) -> F:
    """Mark a scalar rule that may run on the writer thread on host-number inputs (returns it)."""
    setattr(compute, _MARK, True)
    return compute


def is_writer_rule(compute: Callable[..., Any]) -> bool:
    return getattr(compute, _MARK, False) is True


def host_value(value: Any) -> Any:
    """The value as an immutable host number, or NOT_HOST when it is anything else.

    A one-element CPU torch tensor without metricreg's shard marks (a plain ``loss``, the norm
    ``clip_grad_norm_`` returns) and one-element numpy arrays become Python floats through
    ``arrays.host_scalar`` (the per-step memo: the same read the inline rules make); plain Python
    values pass through. Device tensors, DTensors, JAX arrays and bigger arrays are NOT_HOST.
    """
    kind = type(value)
    if kind in _PLAIN:
        return value
    from metricreg.arrays import host_scalar

    torch = sys.modules.get("torch")
    if torch is not None and kind is torch.Tensor:
        if value.__dict__ or not value.is_cpu or value.numel() != 1 or value.is_complex():
            return NOT_HOST
        return host_scalar(value)
    if isinstance(value, (np.ndarray, np.generic)) and value.size == 1 and value.dtype.kind in "biuf":
        return host_scalar(value)
    return NOT_HOST
