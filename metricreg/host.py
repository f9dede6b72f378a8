"""Turning metric results into host values, and capturing them at their step.

Results of torch and JAX metrics stay on their device on the training thread;
the writer thread turns them into Python floats and numpy arrays (through
metricreg.arrays.to_host, which never imports torch or jax itself).

``capture`` is the one training-thread part: a value that aliases mutable state
(a 0-d parameter, a ``loss`` accumulator updated in place, a JAX buffer that the
next jitted step donates) would otherwise be read by the writer later, with a
later value. It is copied on its own device, asynchronously: no host sync.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

# The floats read from one-element CPU arrays during one due step (metricreg.arrays.host_scalar):
# id -> (array, value). Several metrics read the same input (the loss: five of the defaults);
# within a due step nothing changes it, so the first read serves them all. Set by the Monitor
# around its metrics (open_step_scalars/close_step_scalars) and dropped after: across steps an
# accumulator updated in place is read anew. The array is kept in the entry, so its id is not reused.
step_scalars: dict[int, tuple[Any, float]] | None = None


def open_step_scalars() -> dict[int, tuple[Any, float]] | None:
    """Start a due step's memo of host scalars; returns the previous one for close_step_scalars."""
    global step_scalars
    previous, step_scalars = step_scalars, {}
    return previous


def close_step_scalars(previous: dict[int, tuple[Any, float]] | None) -> None:
    global step_scalars
    step_scalars = previous


class CaptureError(ValueError):
    """A value that could not be copied at its step (for example a JAX buffer already donated)."""


def capture(value: Any) -> Any:
    """The value as it is now: a device-side copy of arrays, never a host transfer.

    Python numbers and strings are immutable and pass through. Raises CaptureError
    when the array cannot be copied (deleted buffer), so the caller can record it
    as that value's failure alone.
    """
    if value is None or isinstance(value, (float, int, str, bool)):
        return value
    try:
        if isinstance(value, np.ndarray):
            return value.copy()
        if "torch" in sys.modules and isinstance(value, sys.modules["torch"].Tensor):
            copy = value.detach().clone()  # an async device copy; works for meta tensors too
            _keep_shard_marks(value, copy)
            return copy
        if "jax" in sys.modules and isinstance(value, sys.modules["jax"].Array):
            return value.copy()  # a new buffer: a later donation of the original cannot delete it
    except Exception as exc:
        raise CaptureError(f"cannot copy the {type(value).__name__} at its step: {exc}") from None
    return value


def _keep_shard_marks(value: Any, copy: Any) -> None:
    """Carry metricreg's marks for per-rank shard norms (adapters, distributed) over to the copy."""
    if getattr(value, "_metricreg_shard_sum", False):
        copy._metricreg_shard_sum = True
    parts = getattr(value, "_metricreg_shard", None)
    if parts is not None:
        norm, over = parts
        copy._metricreg_shard = (copy if norm is value else norm, over)


def to_numpy(value: Any) -> np.ndarray:
    """Host copy of any array; torch CUDA tensors go through pinned memory and an event."""
    from metricreg.arrays import to_host

    return np.asarray(to_host(value))


def to_float(value: Any) -> float:
    """A scalar result as a Python float; ValueError for anything that is not one number."""
    if isinstance(value, float):
        return value
    if isinstance(value, (int, bool)):
        return float(value)
    try:
        array = to_numpy(value)
        if array.size != 1:
            raise ValueError(f"expected a scalar, got an array of shape {array.shape}")
        return float(array.reshape(()))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"cannot turn {type(value).__name__} into a number: {exc}") from None


def is_scalar_like(value: object) -> bool:
    """True for numbers and 0-d arrays, judged by shape alone (never a device sync)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return True
    shape = getattr(value, "shape", None)
    return shape is not None and len(shape) == 0 and hasattr(value, "dtype")
