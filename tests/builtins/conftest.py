"""Fixtures for the built-in metric tests: the same data as numpy, torch and JAX arrays.

Tolerances: numpy and torch compute in float64 (relative agreement ~1e-10); JAX without
``jax_enable_x64`` computes in float32, so JAX results are compared at ``fw.rtol`` = 1e-4
(spectral quantities at 2e-3: the Gram route squares the condition number in float32).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from metricreg import arrays as A

FRAMEWORKS = ("numpy", "torch", "jax")


@dataclass
class Framework:
    name: str
    rtol: float  # for O(nd) statistics
    spectral_rtol: float  # for eigenvalue-derived statistics

    def array(self, x: Any, dtype: str | None = None) -> Any:
        x = np.asarray(x)
        if dtype is not None:
            x = x.astype(dtype)
        if self.name == "numpy":
            return x
        if self.name == "torch":
            import torch

            return torch.from_numpy(x if x.flags.c_contiguous else x.copy())  # ascontiguousarray makes 0-d 1-d
        import jax.numpy as jnp

        return jnp.asarray(x)

    def tree(self, tree: Any) -> Any:
        if isinstance(tree, dict):
            return {k: self.tree(v) for k, v in tree.items()}
        if isinstance(tree, (list, tuple)):
            return type(tree)(self.tree(v) for v in tree)
        return self.array(tree)


def value(x: Any) -> float:
    """A metric result as a Python float (tests only: this synchronises)."""
    return float(np.asarray(A.to_host(x), dtype=np.float64))


def values(d: dict[str, Any] | None) -> dict[str, float]:
    assert d is not None
    return {k: value(v) for k, v in d.items()}


def is_framework_array(x: Any, fw: Framework) -> bool:
    """The result stays in the input's framework (no silent conversion to numpy)."""
    if fw.name == "numpy":
        return isinstance(x, (np.ndarray, np.generic, float))
    if fw.name == "torch":
        import torch

        return isinstance(x, torch.Tensor)
    import jax

    return isinstance(x, jax.Array)


@pytest.fixture(params=FRAMEWORKS)
def fw(request) -> Framework:
    if request.param == "torch":
        pytest.importorskip("torch")
        return Framework("torch", 1e-9, 1e-8)
    if request.param == "jax":
        jax = pytest.importorskip("jax")
        f64 = jax.config.read("jax_enable_x64")
        return Framework("jax", 1e-9 if f64 else 1e-4, 1e-8 if f64 else 2e-3)
    return Framework("numpy", 1e-12, 1e-10)


def close(a: float, b: float, rtol: float, atol: float = 0.0) -> bool:
    return (math.isnan(a) and math.isnan(b)) or abs(a - b) <= atol + rtol * abs(b)
