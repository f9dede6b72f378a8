"""JAX / optax / flax: helpers that turn a functional training step's pieces into Monitor inputs.

A JAX loop already holds everything the built-ins need: the parameter pytree, the gradient
pytree from ``jax.grad`` (before any ``optax.clip_by_global_norm``, so the norm is pre-clip),
the loss, and the optax state. Two things need care, and these helpers take it:

* the learning rate lives in an ``optax.inject_hyperparams`` state, usually nested inside an
  ``optax.chain`` tuple (and ``MultiSteps``/``masked`` wrappers): :func:`optimizer_state`
  finds it, so ``optimization/lr`` is written. The state an update *returns* holds the rate
  that update used (the one passed in holds the previous step's), so call ``mon.step`` after
  the update with the new state;
* a jitted step with ``donate_argnums`` frees the old parameter buffers on the next call,
  which would delete what a metric kept for the next step (``update_ratio``'s snapshot):
  :func:`step_inputs` hands the parameters over as a copy, made only on steps where a due
  metric asks for them.

``flax.nnx`` modules are accepted wherever parameters are (their ``nnx.Param`` state as a
plain dict).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

__all__ = ["optimizer_state", "params_of", "step_inputs"]


def optimizer_state(opt_state: Any) -> Any:
    """The first ``inject_hyperparams`` state inside an optax state (``None`` if there is none).

    It has ``hyperparams`` (``{"learning_rate": ..., ...}``), which the built-in learning-rate
    metric reads. Tuples (``optax.chain``), named tuples and wrapper states (``inner_state``,
    ``inner_opt_state``) are searched depth first.
    """
    seen = 0
    stack = [opt_state]
    while stack and seen < 10_000:
        seen += 1
        node = stack.pop(0)
        hyper = getattr(node, "hyperparams", None)
        if isinstance(hyper, Mapping):
            return node
        if isinstance(node, Mapping):
            stack[:0] = list(node.values())
        elif isinstance(node, (tuple, list)):
            stack[:0] = list(node)
        else:
            for attr in ("inner_state", "inner_opt_state"):
                if hasattr(node, attr):
                    stack.insert(0, getattr(node, attr))
    return None


def params_of(model: Any) -> Any:
    """A parameter pytree: a ``flax.nnx`` module's ``nnx.Param`` state as a plain dict, anything else unchanged."""
    nnx = sys.modules.get("flax.nnx")
    if nnx is not None and isinstance(model, nnx.Module):
        state = nnx.state(model, nnx.Param)
        return nnx.to_pure_dict(state) if hasattr(nnx, "to_pure_dict") else state.to_pure_dict()
    return model


def _copy_tree(tree: Any) -> Any:
    import jax
    import jax.numpy as jnp

    return jax.tree_util.tree_map(lambda x: jnp.array(x, copy=True) if isinstance(x, jax.Array) else x, tree)


def step_inputs(
    *,
    params: Any = None,
    grads: Any = None,
    opt_state: Any = None,
    loss: Any = None,
    max_norm: float | None = None,
    donated: bool = True,
    **extra: Any,
) -> dict[str, Any]:
    """Keyword arguments for ``mon.step`` from a JAX step's pieces (``**extra`` passes through).

    ``params`` may be a pytree or a ``flax.nnx`` module; with ``donated=True`` (the safe default)
    it is copied, lazily, only when a due metric reads it. ``grads`` is the gradient pytree
    (the norm of the gradients *before* an optax clipping transform); ``max_norm`` the clipping
    threshold for ``optimization/clip_fraction``.
    """
    inputs: dict[str, Any] = dict(extra)
    if params is not None:
        tree = params_of(params)
        inputs["model"] = (lambda: _copy_tree(tree)) if donated else tree
    if grads is not None:
        inputs["grads"] = params_of(grads)
    if opt_state is not None:
        state = optimizer_state(opt_state)
        if state is not None:
            inputs["optimizer"] = state
    if loss is not None:
        inputs["loss"] = loss
    if max_norm is not None:
        inputs["max_norm"] = float(max_norm)
    return inputs
