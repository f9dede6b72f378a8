"""Distance from initialisation: how far training has moved the weights, relative to their start.

Input: ``model`` (torch module or parameter pytree). Tag ``optimization/init_distance`` =
‖θ − θ₀‖ / ‖θ₀‖ over the trainable parameters, every 100 steps. Its level is not judged (how
far a healthy run moves depends on the model, the optimizer and the data); a jump of more than
4× in one interval is critical (stability: a step size far too large, see HEALTH_INIT).

θ₀ is a fixed sample of the parameters taken at the first due step (``adapters.sample_copy``:
≤ 16,384 entries per tensor, whole tensors below that, so small models are exact; a copy on
the parameters' device, never a view, since optimizers update in place). Every later due step
compares the same entries, each tensor's squared norm weighted by numel/sample so large tensors
count in proportion. Parameters added later, or whose shape changed, are left out. Cost per due
step: one gather and two reductions per parameter tensor (the first due step also one copy);
memory: the sample (≤ 64 KiB per float32 tensor).
"""

from __future__ import annotations

import sys
from typing import Any

from metricreg import adapters
from metricreg import arrays as A
from metricreg.distributed import mark_shard
from metricreg.hookspecs import hookimpl
from metricreg.rule_jobs import writer_rule
from metricreg.spec import NEVER_CLEARS, Health, Metric

INIT_EVERY = 100


@writer_rule(copies=("model",))
def init_distance(model: Any, state: dict | None = None) -> Any:
    """‖θ − θ₀‖ / ‖θ₀‖ over the trainable parameters; θ₀ sampled at the first due step."""
    state = {} if state is None else state
    params = adapters.named_parameters(model, trainable_only=True)
    if not params:
        return None
    start = state.get("theta0")
    if start is None:
        start = state["theta0"] = {name: adapters.sample_copy(p) for name, p in params}
    names, samples, olds, weights = [], [], [], []
    sample_flat = adapters.torch_sample_flat if adapters.plain_torch([p for _, p in params]) else adapters.sample_flat
    for name, p in params:
        if name not in start:
            continue
        old, w_old = start[name]
        sample, weight = sample_flat(p)  # plain torch: the same entries without the array-API wrappers
        if tuple(sample.shape) != tuple(old.shape) or weight != w_old:
            continue
        names.append(name)
        samples.append(sample)
        olds.append(old)
        weights.append(weight)
    if not samples:
        return None
    cached = state.get("base")
    if cached is None or cached[0] != names:  # ‖θ₀‖² of the compared entries: fixed, computed once
        cached = state["base"] = (names, adapters.sampled_sq_norm(zip(olds, weights, strict=True)))
    base = cached[1]
    moved = _torch_moved(samples, olds, weights, state)
    if moved is None:
        moved = adapters.sampled_sq_norm((a - b, w) for a, b, w in zip(samples, olds, weights, strict=True))
    xp = A.namespace(moved)
    dist, norm0 = xp.sqrt(moved), xp.sqrt(base)
    result = dist / xp.clip(norm0, 1e-30, None)
    if any(adapters.shard_weight(p) is not None for _, p in params):
        result = mark_shard(result, dist, norm0)  # FSDP2: ranks combine their shards into the global ratio
    return result


def _torch_moved(samples: list[Any], olds: list[Any], weights: list[float], state: dict) -> Any:
    """Σ w·‖s − s₀‖² with two fused kernels (torch, one device and dtype); None elsewhere."""
    first = samples[0]
    if not A.is_torch(first) or not hasattr(sys.modules["torch"], "_foreach_norm"):
        return None
    torch = sys.modules["torch"]
    if any(s.dtype != first.dtype or s.device != first.device for s in samples) or first.dtype not in (
        torch.float32,
        torch.float64,
    ):
        return None
    norms = torch.stack(torch._foreach_norm(torch._foreach_sub(samples, olds)))
    key = (len(weights), first.dtype, first.device)
    scale = state.get("weights")
    if scale is None or scale[0] != key:  # fills on the device, once: no host-to-device copy
        scale = state["weights"] = (
            key,
            torch.stack([torch.full((), w, dtype=first.dtype, device=first.device) for w in weights]),
        )
    return torch.sum(norms * norms * scale[1])


# How far a healthy run moves depends on the model and optimizer, so the level is not judged;
# a *jump* is: weights that move, in one interval, three times further than in the whole run
# before have taken steps far too large (a learning rate ×10–×100). On the detection benchmark
# every lr injection that harms the run jumps 6–100× in its first interval (the BYOL ones 10–14×,
# while their loss and spread look healthy), healthy runs at most 2.05× (a linear LR warm-up;
# distance ∝ t² there, so ≤ 2.25× from the 4th point on), and an lr ×10 that Adam absorbs 2.05×.
# The first 3 points are not judged (the distance starts at 0). Sticky (clear_after): a run
# whose weights blew up does not become healthy because the next interval moves less.
HEALTH_INIT = Health(
    category="stability",
    title="distance from initialisation",
    baseline="previous",
    critical_above_frac=4.0,
    clear_after=NEVER_CLEARS,
    description="‖θ − θ₀‖ / ‖θ₀‖ over the trainable parameters, θ₀ a fixed sample taken at the first due "
    "step. Its level depends on the model and optimizer and is not judged; critical when it grows more "
    "than 4× in one interval (from the 4th point on): the weights moved three times further in those "
    "steps than in the whole run before, the mark of a learning rate far too large.",
    remedy="Lower the learning rate (check the schedule and any per-group lr, and a warm-up that ends "
    "far above the intended peak), add gradient clipping, and restart from a checkpoint before the "
    "jump. Unfreezing parameters that were held at lr 0 also moves them at once: freeze with "
    "requires_grad=False instead (frozen parameters are left out).",
    nonfinite=None,
)

METRICS = [
    Metric(
        "optimization/init_distance",
        compute=init_distance,
        every=INIT_EVERY,
        health=HEALTH_INIT,
        # Identical on every rank under DDP; under FSDP2 each rank's shard norms combine into the global ratio.
        reduce="mean",
        description=HEALTH_INIT.description,
    ),
]


@hookimpl
def metricreg_register_metrics(register):
    for metric in METRICS:
        register(metric)
