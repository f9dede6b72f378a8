"""Distance from initialisation: how far training has moved the weights, relative to their start.

Input: ``model`` (torch module or parameter pytree). Tag ``optimization/init_distance`` =
‖θ − θ₀‖ / ‖θ₀‖ over the trainable parameters, every 100 steps. Informational: no rule (how
far a healthy run moves depends on the model, the optimizer and the data; a flat line from the
start means nothing learns, a runaway one means the weights blow up).

θ₀ is a fixed sample of the parameters taken at the first due step (``adapters.sample_copy``:
≤ 16,384 entries per tensor, whole tensors below that, so small models are exact; a copy on
the parameters' device, never a view, since optimizers update in place). Every later due step
compares the same entries, each tensor's squared norm weighted by numel/sample so large tensors
count in proportion. Parameters added later, or whose shape changed, are left out. Cost per due
step: one gather and two reductions per parameter tensor (the first due step also one copy);
memory: the sample (≤ 64 KiB per float32 tensor).
"""

from __future__ import annotations

from typing import Any

from metricreg import adapters
from metricreg import arrays as A
from metricreg.distributed import mark_shard
from metricreg.hookspecs import hookimpl
from metricreg.spec import Health, Metric

INIT_EVERY = 100


def init_distance(model: Any, state: dict | None = None) -> Any:
    """‖θ − θ₀‖ / ‖θ₀‖ over the trainable parameters; θ₀ sampled at the first due step."""
    state = {} if state is None else state
    params = adapters.named_parameters(model, trainable_only=True)
    if not params:
        return None
    start = state.get("theta0")
    if start is None:
        start = state["theta0"] = {name: adapters.sample_copy(p) for name, p in params}
    diffs, bases = [], []
    for name, p in params:
        if name not in start:
            continue
        old, w_old = start[name]
        sample, weight = adapters.sample_flat(p)
        if tuple(sample.shape) != tuple(old.shape) or weight != w_old:
            continue
        diffs.append((sample - old, weight))
        bases.append((old, weight))
    if not diffs:
        return None
    moved = adapters.sampled_sq_norm(diffs)
    base = adapters.sampled_sq_norm(bases)
    xp = A.namespace(moved)
    dist, norm0 = xp.sqrt(moved), xp.sqrt(base)
    result = dist / xp.clip(norm0, 1e-30, None)
    if any(adapters.shard_weight(p) is not None for _, p in params):
        result = mark_shard(result, dist, norm0)  # FSDP2: ranks combine their shards into the global ratio
    return result


HEALTH_INIT = Health(
    category="optimization",
    title="distance from initialisation",
    description="‖θ − θ₀‖ / ‖θ₀‖ over the trainable parameters, θ₀ a fixed sample taken at the first due "
    "step. Informational: flat at 0 means the weights do not move; a steady climb without bound means "
    "they blow up. How far a healthy run goes depends on the model and optimizer.",
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
