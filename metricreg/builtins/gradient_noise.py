"""Gradient noise scale and gradient SNR from micro-batch gradients (informational).

McCandlish et al. 2018, "An Empirical Model of Large-Batch Training", Appendix A.1: the
squared norm of a batch-B gradient has expectation E‖G_B‖² = ‖G‖² + tr(Σ)/B (Σ the per-sample
gradient covariance), so two batch sizes give unbiased estimates of ‖G‖² and S = tr(Σ):

    ‖𝒢‖² = (B_big ‖G_big‖² − B_small ‖G_small‖²) / (B_big − B_small)
    𝒮    = (‖G_small‖² − ‖G_big‖²) / (1/B_small − 1/B_big)

and B_simple = tr(Σ)/‖G‖² (the paper's simple noise scale, §2.2) estimated as 𝒮/‖𝒢‖². The gradient
SNR ‖𝒢‖² / (𝒮/B_big) is the signal-to-noise ratio of the big batch's gradient: the norm test of
Bollapragada et al. 2018 (also in Cockpit) asks for it to exceed 1/θ² for a chosen θ; it equals
B_big/B_simple.

Input ``microbatch_grads``, one of:

* a list of K ≥ 2 gradients of K micro-batches of equal size b, each a flat array, a dict
  name → array or a list of arrays (a JAX gradient pytree): B_small = b, ‖G_small‖² the mean of
  the K squared norms, G_big their mean (batch K·b);
* a :class:`MicrobatchGrads` (``accumulate(model)``), which measures the micro-steps of a torch
  gradient-accumulation loop as they happen (one copy of the gradient, no list of K copies).
  Under DDP it uses DDP's own all-reduce for G_big (no extra collective): B_big = K·b·world.

b is ``microbatch_size`` (or the accumulator's), else ``batch_size``/K (``batch_size`` is the
samples of one optimizer step, as for ``performance/samples_per_s``). ‖𝒢‖² and the SNR do not
depend on b; ``b_simple`` and ``trace_sigma`` are written only when b is known. The ratio of
two noisy estimates is biased, so ``b_simple_ema`` is the paper's ratio of exponential moving
averages of 𝒮 and ‖𝒢‖² taken separately (β = 0.9 per measurement, bias-corrected; non-finite
measurements skipped). Single estimates can be negative (‖𝒢‖² < 0 when noise dominates):
they are readings, written as they are. Cost: two passes over K gradients (O(K·P) on their
device, float64 where the backend has it), every 100 steps; nothing moves to the host.
"""

from __future__ import annotations

import numbers
import sys
from collections.abc import Mapping
from typing import Any

import numpy as np

from metricreg import adapters
from metricreg import arrays as A
from metricreg.hookspecs import hookimpl
from metricreg.spec import Health, Metric

GNS_EVERY = 100
EMA_BETA = 0.9
MEMBERS = ("g_small_sq", "g_big_sq", "g2", "trace_sigma", "b_simple", "b_simple_ema", "snr")

_INFO = " Informational: no health rule until the detection benchmark shows one that stays quiet on healthy runs."


def _h(title: str, description: str) -> Health:
    return Health(category="optimization", nonfinite=None, title=title, description=description + _INFO)


HEALTH: dict[str, Health] = {
    "b_simple": _h(
        "gradient noise scale B_simple",
        "tr(Σ)/‖G‖² from the micro-batch gradients (McCandlish et al. 2018, App. A.1): the batch size "
        "beyond which a larger batch stops speeding training. Batches far below it are noise-dominated. "
        "One measurement; noisy, may be negative when noise dominates.",
    ),
    "b_simple_ema": _h(
        "gradient noise scale (EMA ratio)",
        "B_simple as the paper computes it: the ratio of bias-corrected EMAs (β = 0.9 per measurement) of "
        "the tr(Σ) and ‖G‖² estimates, taken separately. Usually rises as the loss falls.",
    ),
    "snr": _h(
        "gradient SNR",
        "‖G‖² / (tr(Σ)/B_big): signal-to-noise ratio of the step's full-batch gradient (the norm test of "
        "Bollapragada et al. 2018 asks for it above 1/θ² for a chosen θ). Equals B_big / B_simple.",
    ),
    "g2": _h("‖G‖² estimate", "Unbiased estimate of the squared norm of the true gradient (App. A.1)."),
    "trace_sigma": _h("tr(Σ) estimate", "Unbiased estimate of the per-sample gradient covariance trace (App. A.1)."),
    "g_small_sq": _h("‖G_small‖²", "Mean squared norm of the micro-batch gradients (batch size b)."),
    "g_big_sq": _h("‖G_big‖²", "Squared norm of the mean of the micro-batch gradients (batch size B_big)."),
}


# ------------------------------------------------------------------------------ the accumulator


class MicrobatchGrads:
    """Per-micro-step gradient increments of a torch accumulation loop, measured as they happen.

    Why: ``.grad`` only holds the running sum, and keeping K gradient copies costs K models of
    memory. After each micro-batch's backward, :meth:`micro_step` takes the increment
    (``.grad`` − the previous sum, one stored copy), its squared norm (a device scalar: no
    sync) and keeps the sum. Only steps where ``gradient_noise`` is due are measured
    (``every``, the metric's schedule); elsewhere :meth:`micro_step` returns at once.
    Call :meth:`begin` with the step after ``zero_grad()`` and before the first micro-batch.
    """

    def __init__(self, model: Any, microbatch_size: int | None = None, every: int = GNS_EVERY, ddp: bool | None = None):
        if not adapters.is_torch_module(model):
            raise TypeError(f"gradient_noise.accumulate: expected a torch nn.Module, got {type(model).__name__}")
        if microbatch_size is not None and (isinstance(microbatch_size, bool) or int(microbatch_size) < 1):
            raise ValueError(
                f"gradient_noise.accumulate: microbatch_size must be a positive int, got {microbatch_size!r}"
            )
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"gradient_noise.accumulate: every must be a positive int, got {every!r}")
        torch = sys.modules["torch"]
        if ddp is None:
            ddp = isinstance(model, torch.nn.parallel.DistributedDataParallel)
        self.params = [p for p in model.parameters() if p.requires_grad]
        if any(hasattr(p, "placements") for p in self.params):  # FSDP2 / DTensor: a norm would be a collective
            raise TypeError(
                "gradient_noise.accumulate: sharded (DTensor / FSDP2) parameters are not supported: the norm "
                "of a sharded gradient needs a collective on the training thread"
            )
        self.microbatch_size = microbatch_size
        self.every = every
        self.ddp = ddp
        self.world = torch.distributed.get_world_size() if ddp and torch.distributed.is_initialized() else 1
        self.active = False
        self.step: int | None = None  # the step of the last begin()
        self._prev: list[Any] | None = None
        self._sq: list[Any] = []

    def begin(self, step: int) -> bool:
        """Start a training step; True when it will be measured (``step % every == 0``)."""
        self.active = step % self.every == 0
        self.step = step
        self._prev, self._sq = None, []
        return self.active

    def micro_step(self) -> None:
        """Record the gradient added by the micro-batch whose backward just ran."""
        if not self.active:
            return
        torch = sys.modules["torch"]
        grads = [p.grad.detach() for p in self.params if p.grad is not None]
        if not grads:
            raise ValueError("gradient_noise.accumulate: micro_step() found no .grad: call it after backward()")
        wide = [g if g.dtype in (torch.float32, torch.float64) else g.float() for g in grads]
        if self._prev is None:
            inc = wide
            self._prev = [g.clone() for g in wide]
        else:
            if len(wide) != len(self._prev):
                raise ValueError(
                    "gradient_noise.accumulate: the set of parameters with a .grad changed between micro-steps"
                )
            inc = torch._foreach_sub(wide, self._prev)
            torch._foreach_copy_(self._prev, wide)
        self._sq.append(_torch_sum_sq(inc))

    def stats(self, step: int | None = None) -> tuple[Any, Any, int, float]:
        """(mean ‖g_k‖², ‖G_big‖², K, B_big/b) of the measured step; an error naming the mismatch otherwise.

        Called when ``gradient_noise`` is due at ``step``: an accumulator that did not measure
        that step means the loop's calls and the metric's schedule disagree.
        """
        k = len(self._sq)
        if self.step is None:
            raise ValueError("gradient_noise: call accumulate(...).begin(step) at the start of every training step")
        if step is not None and step != self.step:
            raise ValueError(
                f"gradient_noise: due at step {step}, but the accumulator's last begin() was for step {self.step}: "
                "pass the Monitor's step to begin()"
            )
        if not self.active:
            raise ValueError(
                f"gradient_noise: due at step {self.step}, which accumulate(every={self.every}) did not measure: "
                "give accumulate() the metric's schedule"
            )
        if k == 0:
            raise ValueError("gradient_noise: no micro_step() since begin(): call it after each micro-batch's backward")
        local = self._sq[:-1] if self.ddp else self._sq  # DDP: the last backward's .grad is all-reduced
        if k < 2:
            raise ValueError(f"gradient_noise: microbatch_grads needs at least 2 micro-steps, got {k}")
        small = sum(local[1:], local[0]) / float(len(local))
        big = _torch_sum_sq(self._prev) / float(k * k)  # (sum of the K increments / K)²; DDP: the global mean
        return small, big, k, float(k * self.world)


def accumulate(
    model: Any, microbatch_size: int | None = None, every: int = GNS_EVERY, ddp: bool | None = None
) -> MicrobatchGrads:
    """A :class:`MicrobatchGrads` for ``model``: pass it as ``mon.step(microbatch_grads=acc)``."""
    return MicrobatchGrads(model, microbatch_size, every, ddp)


# ---------------------------------------------------------------------------------- the metric


def _torch_sum_sq(xs: list[Any]) -> Any:
    """Σ‖x‖² of torch tensors: one fused norm per tensor (as clip_grad_norm_), summed in float64."""
    torch = sys.modules["torch"]
    norms = torch.stack(torch._foreach_norm(xs)).double()
    return torch.sum(norms * norms)


def _sum_sq(xs: list[Any]) -> Any:
    """Σ‖x‖² over arrays, accumulated in the widest float the backend has, 0-d on their device."""
    xp = A.namespace(xs[0])
    total = None
    for x in xs:
        x = A.to_float(x, xp)
        part = xp.sum(x * x)
        total = part if total is None else total + part
    return total


def _leaves(grad: Any, k: int) -> list[tuple[str, Any]]:
    if A.is_array(grad):
        return [("", grad)]
    if isinstance(grad, (Mapping, list, tuple)) or "jax" in sys.modules:
        leaves = adapters.named_arrays(grad)
        if leaves:
            return leaves
    raise ValueError(
        f"gradient_noise: microbatch_grads[{k}] is a {type(grad).__name__}, expected an array, a dict or list of arrays"
    )


def _stats_from_list(grads: Any) -> tuple[Any, Any, int, float]:
    if not isinstance(grads, (list, tuple)):
        raise ValueError(
            "gradient_noise: microbatch_grads must be a list of K >= 2 micro-batch gradients or "
            f"gradient_noise.accumulate(model), got {type(grads).__name__}"
        )
    k = len(grads)
    if k < 2:
        raise ValueError(f"gradient_noise: microbatch_grads needs at least 2 micro-batch gradients, got {k}")
    trees = [_leaves(g, i) for i, g in enumerate(grads)]
    names = [n for n, _ in trees[0]]
    for i, tree in enumerate(trees[1:], 1):
        if [n for n, _ in tree] != names or any(
            tuple(a.shape) != tuple(b.shape) for (_, a), (_, b) in zip(tree, trees[0], strict=True)
        ):
            raise ValueError(f"gradient_noise: microbatch_grads[{i}] has not the structure and shapes of [0]")
    xp = A.namespace(trees[0][0][1])
    small = None
    mean_parts = []
    for j in range(len(names)):
        parts = [A.to_float(A.detach(tree[j][1]), xp) for tree in trees]
        total = parts[0]
        for p in parts[1:]:
            total = total + p
        mean_parts.append(total / float(k))
    for tree in trees:
        sq = _sum_sq([A.detach(a) for _, a in tree])
        small = sq if small is None else small + sq
    return small / float(k), _sum_sq(mean_parts), k, float(k)


def _is_number(value: Any) -> bool:
    """A Python or numpy real number (not a bool)."""
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def _microbatch_size(value: Any, name: str) -> Any:
    """b as a float (Python and numpy numbers: checked > 0), or a 0-d float on its device (arrays: no sync)."""
    if _is_number(value):
        if not value > 0:
            raise ValueError(f"gradient_noise: {name} must be a positive number, got {value!r}")
        return float(value)
    if A.is_scalar_like(value):  # a one-element torch / JAX array: used on its device, never read back
        xp = A.namespace(value)
        return xp.reshape(A.to_float(A.detach(value), xp), ())
    raise ValueError(f"gradient_noise: {name} must be a positive number, got {value!r}")


def gradient_noise(
    microbatch_grads: Any,
    microbatch_size: Any = None,
    batch_size: Any = None,
    state: dict | None = None,
    step: int | None = None,
) -> dict[str, Any] | None:
    """B_simple, gradient SNR and the raw norms from K micro-batch gradients (module docstring)."""
    if isinstance(microbatch_grads, MicrobatchGrads):
        stats = microbatch_grads.stats(step)
        b_given = microbatch_size if microbatch_size is not None else microbatch_grads.microbatch_size
    else:
        stats = _stats_from_list(microbatch_grads)
        b_given = microbatch_size
    small, big, k, ratio = stats  # ratio = B_big / B_small
    b = None
    if b_given is not None:
        b = _microbatch_size(b_given, "microbatch_size")
    elif _is_number(batch_size) or (batch_size is not None and A.is_scalar_like(batch_size)):
        b = _microbatch_size(batch_size, "batch_size") / k
    xp = A.namespace(small)
    g2 = (ratio * big - small) / (ratio - 1.0)
    s_over_b = (small - big) / (1.0 - 1.0 / ratio)  # 𝒮 / B_small
    out: dict[str, Any] = {"g_small_sq": small, "g_big_sq": big, "g2": g2, "snr": g2 * ratio / s_over_b}
    if b is not None:
        trace = s_over_b * b
        out["trace_sigma"] = trace
        out["b_simple"] = trace / g2
        if state is not None:
            out["b_simple_ema"] = _ema_ratio(xp, state, trace, g2)
    return out


def _ema_ratio(xp: Any, state: dict, s: Any, g2: Any) -> Any:
    """S_ema / G_ema over the finite measurements, no host sync (the bias corrections cancel)."""
    ok = xp.logical_and(xp.isfinite(s), xp.isfinite(g2))
    zero = xp.zeros_like(s)
    keep = xp.where(ok, xp.full_like(s, EMA_BETA), xp.ones_like(s))
    new_s = keep * state.get("s", zero) + xp.where(ok, (1.0 - EMA_BETA) * s, zero)
    new_g = keep * state.get("g", zero) + xp.where(ok, (1.0 - EMA_BETA) * g2, zero)
    state.update(s=new_s, g=new_g)
    return new_s / new_g


METRICS = [
    Metric(
        "gradient_noise",
        compute=gradient_noise,
        every=GNS_EVERY,
        health=HEALTH,
        members=MEMBERS,
        description="Gradient noise scale B_simple and gradient SNR from `microbatch_grads` (McCandlish et al. "
        "2018, App. A.1; informational).",
    ),
]


@hookimpl
def metricreg_register_inputs(register):
    register(
        "microbatch_grads",
        description="K >= 2 micro-batch gradients (arrays, dicts or lists of arrays) or gradient_noise.accumulate(model)",
    )
    register("microbatch_size", description="samples per micro-batch (b) for gradient_noise")


@hookimpl
def metricreg_register_metrics(register):
    for metric in METRICS:
        register(metric)
