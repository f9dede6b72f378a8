"""Turning metric results into host values: runs on the writer thread only.

Results of torch and JAX metrics stay on their device on the training thread;
this is where they become Python floats and numpy arrays (through
metricreg.arrays.to_host, which never imports torch or jax itself).
"""

from __future__ import annotations

from typing import Any

import numpy as np


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
