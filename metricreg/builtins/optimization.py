"""Optimization: learning rate, gradient norm, clipping, update size, gradient flow, histograms.

Inputs: ``optimizer`` (anything with ``param_groups``, e.g. a torch optimizer; or an optax
``inject_hyperparams`` state), ``model`` (torch module or parameter pytree), ``grads``
(derived from a torch ``model``'s ``.grad``; JAX users pass the gradient pytree),
``grad_norm`` (derived from ``grads``; pass the value ``clip_grad_norm_`` returns to get the
norm **before** clipping, since after clipping ``.grad`` holds the clipped gradient),
``max_norm`` (the clipping threshold).

========================================  =================================================================
tag (``train/…``)                         definition
========================================  =================================================================
``optimization/lr[/<group>]``             learning rate of each param group (one group: a single value)
``optimization/grad_norm``                global L2 norm of all gradients
``optimization/clip_fraction``            fraction of the last 50 sampled steps with grad_norm ≥ max_norm·(1 − 1e-4)
                                          (the tolerance also counts a post-clip norm, which sits at max_norm)
``optimization/update_ratio``             ‖θₜ − θₜ₋₁‖ / ‖θₜ₋₁‖ over all trainable parameters: the actual
                                          optimizer update (cs231n: ≈ 1e-3 healthy)
``optimization/dead_units``              fraction of weight rows whose gradient is exactly zero (dead units)
``optimization/grad_flow/<module>``       gradient norm per top-level module
``optimization/weights``, ``…/grads``     histograms of (a size-proportional sample of) all weights / gradients
========================================  =================================================================

Update ratio without per-step copies: a hidden metric (``optimization/update_snapshot``) due
one step before each ``update_ratio`` step (99, 199, ...) stores a fixed sample of the
parameters (≤ 16,384 entries per tensor, whole tensors below that, so small models are exact)
in ``shared``; at the next step the ratio is formed from the same entries and the snapshot is
dropped. If the schedules are changed so that the snapshot is older than one step, the
displacement since the snapshot is divided by the steps elapsed (a net update per step,
which understates noisy updates), and each due step leaves a snapshot for the next.
"""

from __future__ import annotations

import math
import re
import sys
from typing import Any

from metricreg import adapters
from metricreg import arrays as A
from metricreg.distributed import mark_shard
from metricreg.hookspecs import hookimpl
from metricreg.rule_jobs import writer_rule
from metricreg.schedules import every
from metricreg.spec import Health, Metric

CLIP_WINDOW = 50
CLIP_TOLERANCE = 1e-4
UPDATE_EVERY = 100
HISTOGRAM_SAMPLES = 65_536
MAX_GROUPS = 32
SNAPSHOT_KEY = "optimization/snapshot"
_TAG_BAD = re.compile(r"[^A-Za-z0-9_.\-]+")


# ------------------------------------------------------------------ derived inputs


def derive_grads(model: Any) -> dict[str, Any] | None:
    """{name: grad} of a torch module's parameters that have a gradient (None for anything else)."""
    if not adapters.is_torch_module(model):
        return None
    named = adapters.named_grads(model)
    return dict(named) if named else None


def derive_grad_norm(grads: Any) -> Any:
    """Global L2 norm of a gradient pytree (0-d, on the gradients' device)."""
    named = adapters.named_grads(grads) if grads is not None else None
    if not named:
        return None
    return adapters.global_norm([g for _, g in named])


# ------------------------------------------------------------------------- metrics


def _group_label(group: dict, i: int) -> str:
    name = group.get("name")
    if isinstance(name, str) and name:
        return _TAG_BAD.sub("_", name).strip("._-") or f"group{i}"
    return f"group{i}"


def learning_rate(optimizer: Any) -> Any:
    """Learning rate per param group (torch-style ``param_groups``) or from optax ``hyperparams``."""
    groups = getattr(optimizer, "param_groups", None)
    if groups and len(groups) == 1 and isinstance(groups[0], dict) and "lr" in groups[0]:
        return A.detach(groups[0]["lr"])  # one group (the usual case): its value, no label to make
    if groups:
        values = {}
        for i, group in enumerate(groups):
            if isinstance(group, dict) and "lr" in group:
                values[_group_label(group, i)] = A.detach(group["lr"])
        if not values:
            return None
        return next(iter(values.values())) if len(values) == 1 else values
    hyper = getattr(optimizer, "hyperparams", None)
    if isinstance(hyper, dict):
        for key in ("learning_rate", "lr"):
            if key in hyper:
                return hyper[key]
    return None


@writer_rule
def grad_norm_metric(grad_norm: Any) -> Any:
    # A DTensor norm (clip_grad_norm_ under FSDP2) is read locally: never a DTensor op here.
    if grad_norm is None:
        return None
    torch = sys.modules.get("torch")
    if torch is not None and type(grad_norm) is torch.Tensor and not grad_norm.__dict__:
        return A.host_scalar(grad_norm)  # a plain tensor without shard marks (clip_grad_norm_'s): the usual case
    norm = A.detach(adapters.local_tensor(grad_norm))
    if getattr(norm, "_metricreg_shard", None) is not None or adapters.is_shard_sum(norm):
        return norm  # a per-rank shard norm: the exchange combines it by its marks, kept on the tensor
    return A.host_scalar(norm)  # a CPU scalar is read as a float now: no copy taken at its step


@writer_rule
def clip_fraction(grad_norm: Any, max_norm: Any, state: dict | None = None) -> Any:
    """Fraction of the last CLIP_WINDOW sampled steps whose gradient norm reached ``max_norm``."""
    if grad_norm is None or max_norm is None:
        return None
    state = {} if state is None else state
    gn = A.host_scalar(grad_norm)  # a CPU tensor becomes a float: no torch kernels
    if A.is_array(gn):
        gn = A.detach(gn)
        xp = A.namespace(gn)
        # A non-finite norm counts as clipped in the window (it must not poison the running sum);
        # the value written for this step is NaN (stability/nonfinite_grads raises the alarm).
        gn32 = xp.astype(gn, xp.float32)
        flag = xp.astype(xp.logical_or(gn32 >= max_norm * (1.0 - CLIP_TOLERANCE), xp.isnan(gn32)), xp.float32)
        now_nan = 0.0 * gn32
    else:
        flag = float(not gn < max_norm * (1.0 - CLIP_TOLERANCE))
        now_nan = 0.0 if math.isfinite(gn) else math.nan
    # A running sum over the window: scalar operations only (no shape that changes from call to call,
    # which would make JAX compile anew each time).
    window = state.setdefault("window", [])
    window.append(flag)
    total = state.get("sum", 0.0) + flag
    if len(window) > CLIP_WINDOW:
        total = total - window.pop(0)
    state["sum"] = total
    return total / float(len(window)) + now_nan


def _trainable(model: Any) -> list[tuple[str, Any]]:
    return adapters.named_parameters(model, trainable_only=True)


def _snapshot(params: list[tuple[str, Any]]) -> list[tuple[str, Any, float]]:
    if adapters.plain_torch([p for _, p in params]):  # same samples, without the array-API wrappers
        return [(name, *adapters.torch_sample_flat(p, copy=True)) for name, p in params]
    out = []
    for name, p in params:
        sample, weight = adapters.sample_copy(p)  # the optimizer updates parameters in place
        out.append((name, sample, weight))
    return out


@writer_rule(copies=("model",), passes=("shared",))
def update_snapshot(model: Any, step: int = 0, shared: dict | None = None) -> None:
    """Store a parameter sample one step before ``update_ratio`` is due (writes nothing)."""
    if shared is not None:
        shared[SNAPSHOT_KEY] = (step, _snapshot(_trainable(model)))
    return None


@writer_rule(copies=("model",), passes=("shared",))
def update_ratio(model: Any, step: int = 0, shared: dict | None = None) -> Any:
    """‖Δθ‖/‖θ‖ per step over the trainable parameters (see the module docstring)."""
    if shared is None:
        return None
    params = _trainable(model)
    if not params:
        return None
    snap = shared.get(SNAPSHOT_KEY)
    current = None
    result = None
    if snap is not None and snap[0] < step:
        prev = {name: (sample, weight) for name, sample, weight in snap[1]}
        fast = adapters.plain_torch([p for _, p in params])  # the same values without the array-API wrappers
        diffs, bases, samples = [], [], []
        for name, p in params:
            if name not in prev:
                continue
            sample, weight = adapters.torch_sample_flat(p) if fast else adapters.sample_flat(p)
            old, w_old = prev[name]
            if tuple(old.shape) != tuple(sample.shape) or w_old != weight:
                continue
            if fast:
                samples.append(sample)  # subtracted below in one _foreach_sub (the same differences)
            else:
                diffs.append((sample - old, weight))
            bases.append((old, weight))
        if samples and A.is_torch(samples[0]):
            torch = sys.modules["torch"]
            moved = torch._foreach_sub(samples, [old for old, _ in bases])
            diffs = [(d, w) for d, (_, w) in zip(moved, bases, strict=True)]
            per_step = torch.sqrt(adapters.torch_sampled_sq_norm(diffs)) / float(step - snap[0])
            result = per_step / torch.clamp(torch.sqrt(adapters.torch_sampled_sq_norm(bases)), min=1e-30)
        elif diffs:
            moved = adapters.sampled_sq_norm(diffs)
            base = adapters.sampled_sq_norm(bases)
            xp = A.namespace(moved)
            per_step = xp.sqrt(moved) / float(step - snap[0])
            result = per_step / xp.clip(xp.sqrt(base), 1e-30, None)
            if any(adapters.shard_weight(p) is not None for _, p in params):
                result = mark_shard(result, per_step, xp.sqrt(base))  # FSDP2: ranks combine their shards
    if snap is not None and snap[0] == step - 1:
        shared.pop(SNAPSHOT_KEY, None)  # exact one-step update: free the snapshot
    else:
        current = _snapshot(params)
        shared[SNAPSHOT_KEY] = (step, current)
    return result


@writer_rule(copies=("grads",), passes=("model",))
def dead_units(grads: Any, model: Any = None) -> Any:
    """Fraction of units (rows of every ≥ 2-D weight gradient) whose gradient is exactly zero.

    A ReLU unit that is inactive for every sample of the batch passes no gradient to its
    incoming weights, so its row is all zeros; a network killed by a too-large learning
    rate has (nearly) every row zero. Embedding tables are skipped: rows of tokens absent
    from the batch are zero by design.
    """
    named = adapters.named_grads(grads) if grads is not None else None
    if not named:
        return None
    tables = adapters.embedding_parameter_names(model if model is not None else grads)
    rows = [g for name, g in named if len(g.shape) >= 2 and name not in tables and "embed" not in name.lower()]
    if adapters.plain_torch(rows) and len({g.device for g in rows}) == 1:
        return _dead_units_torch(rows)
    dead = None
    total = 0
    for name, g in named:
        if len(g.shape) < 2 or name in tables or "embed" in name.lower():
            continue
        xp = A.namespace(g)
        rows = xp.reshape(g, (g.shape[0], -1))
        # max |g| per row == 0: one reduction, ~8x cheaper than all(rows == 0) on CPU (a NaN row is alive).
        zero = xp.sum(xp.astype(xp.max(xp.abs(rows), axis=1) == 0, xp.float32))
        dead = zero if dead is None else dead + zero
        total += int(g.shape[0])
    if dead is None or total == 0:
        return None
    return dead / float(total)


def _dead_units_torch(grads: list[Any]) -> Any:
    """dead_units for plain torch tensors on one device: max |g| per row as before, then one count for all.

    The count of zero rows is an integer, exact in float32: the same value as the per-tensor sums.
    (abs().amax() is ~20x faster on CPU than vector_norm(ord=inf, dim=1).)"""
    torch = sys.modules["torch"]
    peaks = [g.reshape(g.shape[0], -1).abs().amax(1) for g in grads]
    zero = torch.sum((torch.cat(peaks) == 0).to(torch.float32))
    return zero / float(sum(int(g.shape[0]) for g in grads))


@writer_rule(copies=("grads",))
def grad_flow(grads: Any) -> dict[str, Any] | None:
    """Gradient L2 norm per top-level module (one level deeper when there is a single top level)."""
    named = adapters.named_grads(grads) if grads is not None else None
    if not named:
        return None
    groups: dict[str, list] = {}
    for name, g in named:
        groups.setdefault(adapters.group_name(name, 1), []).append((name, g))
    if len(groups) == 1:
        inner: dict[str, list] = {}
        for name, g in named:
            inner.setdefault(adapters.group_name(name, 2), []).append((name, g))
        if len(inner) > 1:
            groups = inner
    if len(groups) <= MAX_GROUPS and adapters.plain_torch([g for _, g in named]):
        index = {id(g): i for i, (_, g) in enumerate(named)}
        positions = {group.replace(".", "_"): [index[id(g)] for _, g in items] for group, items in groups.items()}
        return adapters.torch_group_norms(named, positions)
    out: dict[str, Any] = {}
    for i, (group, items) in enumerate(groups.items()):
        label = group.replace(".", "_")
        if i >= MAX_GROUPS:
            out.setdefault("_other", []).extend(g for _, g in items)
            continue
        out[label] = adapters.global_norm([g for _, g in items])
    if "_other" in out:
        out["other"] = adapters.global_norm(out.pop("_other"))
    return out


def _histogram_sample(arrays: list[Any]) -> Any:
    """A size-proportional sample of all entries (≤ HISTOGRAM_SAMPLES in total), float32, 1-D."""
    arrays = [A.detach(a) for a in arrays if a is not None and adapters.numel(a) > 0]
    if not arrays:
        return None
    xp = A.namespace(arrays[0])
    total = sum(adapters.numel(a) for a in arrays)
    parts = []
    for a in arrays:
        n = adapters.numel(a)
        cap = n if total <= HISTOGRAM_SAMPLES else max(1, round(HISTOGRAM_SAMPLES * n / total))
        sample, _ = adapters.sample_flat(a, cap)
        parts.append(xp.astype(sample, xp.float32) if sample.dtype != xp.float32 else sample)
    return xp.concat(parts) if len(parts) > 1 else parts[0]


# On the writer thread (metricreg.rule_jobs) on copies of a small CPU model's parameters and
# gradients: the sampling costs the training thread ~0.3 ms each, the copies ~0.05 ms (the gradient
# copy is the one dead_units and grad_flow take at the same steps).
@writer_rule(copies=("model",), frozen=True)
def weight_histogram(model: Any) -> Any:
    return _histogram_sample([p for _, p in adapters.named_parameters(model)])


@writer_rule(copies=("grads",))
def grad_histogram(grads: Any) -> Any:
    named = adapters.named_grads(grads) if grads is not None else None
    return _histogram_sample([g for _, g in named]) if named else None


# -------------------------------------------------------------------------- health

HEALTH_LR = Health(
    category="optimization",
    title="learning rate",
    description="Learning rate of each optimizer param group, as the optimizer holds it.",
    nonfinite="critical",
)
HEALTH_GRAD_NORM = Health(
    category="optimization",
    title="gradient norm",
    description="Global L2 norm of all gradients (before clipping when `grad_norm` is passed from "
    "clip_grad_norm_). Scale-dependent: watch for jumps and trends rather than a level.",
    remedy="A non-finite gradient norm means overflow or a NaN in the forward pass: lower the learning "
    "rate, enable gradient clipping, check the loss for log(0) or division by zero, or use a loss scaler "
    "under mixed precision.",
)
HEALTH_CLIP = Health(
    category="optimization",
    warn_above=0.5,
    direction="lower_is_better",
    persistence=3,
    title="clip fraction",
    description="Fraction of recent (sampled) steps whose gradient norm reached max_norm. Below 0.1 is "
    "typical; persistently above 0.5 means clipping, not the learning rate, sets the step size.",
    remedy="Clipping acts on most steps: lower the learning rate (or lengthen warm-up), or raise max_norm "
    "if the norm is stable at a higher level.",
)
HEALTH_UPDATE = Health(
    category="optimization",
    warn_above=1e-2,
    critical_above=1e-1,
    warn_below=1e-6,
    persistence=3,
    title="update / weight ratio",
    description="‖Δθ‖/‖θ‖ for one optimizer step over all trainable parameters; ≈ 1e-3 is the "
    "classic healthy value (cs231n), ≫ 1e-2 is unstable, ≪ 1e-5 barely learns.",
    remedy="Above 1e-2: lower the learning rate or add warm-up. Below 1e-6: the learning rate is (or has "
    "decayed to) too low, or the parameters are frozen / receive no gradient.",
)
HEALTH_DEAD = Health(
    category="stability",
    warn_above=0.5,
    critical_above=0.9,
    persistence=2,
    direction="lower_is_better",
    title="dead units",
    description="Fraction of units (rows of weight matrices) whose gradient is exactly zero on the batch: "
    "ReLU units inactive for every sample. Near 1, the network is dead and no longer learns.",
    remedy="Most units pass no gradient: the learning rate is (or was) too high and pushed pre-activations "
    "negative for good. Lower the learning rate or add warm-up, consider LeakyReLU/GELU or better "
    "initialisation, and restart from a checkpoint before the units died.",
)
HEALTH_FLOW = Health(
    category="optimization",
    title="gradient norm per module",
    description="Gradient L2 norm per top-level module: a module whose gradient is orders of magnitude "
    "below the others is not learning (vanishing gradients, a detached branch).",
)

METRICS = [
    Metric("optimization/lr", compute=learning_rate, every=10, health=HEALTH_LR, description=HEALTH_LR.description),
    Metric(
        "optimization/grad_norm",
        compute=grad_norm_metric,
        every=10,
        health=HEALTH_GRAD_NORM,
        reduce="mean",
        description=HEALTH_GRAD_NORM.description,
    ),
    Metric(
        "optimization/clip_fraction",
        compute=clip_fraction,
        every=10,
        health=HEALTH_CLIP,
        reduce="mean",
        description=HEALTH_CLIP.description,
    ),
    Metric(
        "optimization/update_snapshot",
        compute=update_snapshot,
        every=every(UPDATE_EVERY, start=UPDATE_EVERY - 1),
        # Runs on every rank, like update_ratio (a reduced metric runs on every rank; this one writes nothing).
        reduce="max",
        description="Internal: parameter sample one step before update_ratio is due (writes nothing).",
    ),
    Metric(
        "optimization/update_ratio",
        compute=update_ratio,
        every=UPDATE_EVERY,
        health=HEALTH_UPDATE,
        # Identical on every rank under DDP; under FSDP2 each rank's shard norms combine into the global ratio.
        reduce="mean",
        description=HEALTH_UPDATE.description,
    ),
    Metric(
        "optimization/dead_units",
        compute=dead_units,
        every=100,
        health=HEALTH_DEAD,
        description=HEALTH_DEAD.description,
    ),
    Metric(
        "optimization/grad_flow", compute=grad_flow, every=100, health=HEALTH_FLOW, description=HEALTH_FLOW.description
    ),
    Metric(
        "optimization/weights",
        compute=weight_histogram,
        every=1000,
        kind="histogram",
        description="Histogram of all weights (size-proportional sample of ≤ 65,536 entries).",
    ),
    Metric(
        "optimization/grads",
        compute=grad_histogram,
        every=1000,
        kind="histogram",
        description="Histogram of all gradients (size-proportional sample of ≤ 65,536 entries).",
    ),
]


@hookimpl
def metricreg_register_metrics(register):
    for metric in METRICS:
        register(metric)


@hookimpl
def metricreg_register_inputs(register):
    register("model", description="the trained model: a torch nn.Module or a parameter pytree")
    register("optimizer", description="the optimizer (torch-style param_groups, or an optax inject_hyperparams state)")
    register("max_norm", description="the gradient clipping threshold")
    register("grads", derive_grads)
    register("grad_norm", derive_grad_norm)
