"""Parameter and gradient access for torch modules, pytrees, dicts and lists of arrays.

The core never imports torch or JAX: an object is treated as a torch module only when
``torch`` is already in ``sys.modules`` and the object is an ``nn.Module``, and JAX's
``tree_util`` is used only when ``jax`` is already imported. Anything else that nests
dicts, lists and tuples of arrays works too.

Names are dotted paths (``encoder.layers.0.weight`` for torch, ``encoder.dense.kernel`` for
a pytree) with wrapper prefixes (``module.`` from DDP, ``_orig_mod.`` from torch.compile)
removed, so a student under DDP matches its bare EMA copy.

Sharded parameters (DTensors, e.g. FSDP2 ``fully_shard``) are replaced by their local
shard here, so no metric ever runs a DTensor operation (each one may be a collective
on the training's process group). The local tensor carries its share of the global sum
of squares (``1 / copies``, copies = ranks holding the same shard); norms computed from
such shards are marked so the Monitor combines them across ranks as sqrt(sum of squares).
"""

from __future__ import annotations

import functools
import math
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from metricreg import arrays as A
from metricreg.distributed import mark_shard

__all__ = [
    "global_norm",
    "group_name",
    "is_torch_module",
    "matched_parameters",
    "named_arrays",
    "named_grads",
    "named_parameters",
    "sample_flat",
    "sampled_sq_norm",
    "sum_of_squares",
]

#: Attribute on a local shard: the factor its squared norm carries in the global sum of squares.
SHARD_WEIGHT = "_metricreg_shard_weight"

_WRAPPER_PREFIXES = ("module.", "_orig_mod.", "_fsdp_wrapped_module.", "_checkpoint_wrapped_module.")
_TAG_BAD = re.compile(r"[^A-Za-z0-9_.\-]+")


def is_torch_module(obj: object) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(obj, torch.nn.Module)


def local_tensor(x: Any) -> Any:
    """A DTensor's local shard (detached, tagged with its weight); anything else unchanged. Never a collective."""
    placements = getattr(x, "placements", None)
    if placements is None or not hasattr(x, "to_local"):
        return x
    local = x.detach().to_local()
    if local.requires_grad:
        local = local.detach()
    copies = 1
    mesh = x.device_mesh
    for dim, placement in enumerate(placements):
        if not placement.is_shard():
            copies *= mesh.size(dim)  # replicated (or partial) along this mesh dimension
    setattr(local, SHARD_WEIGHT, 1.0 / copies)
    return local


def shard_weight(x: Any) -> float | None:
    """The weight set by local_tensor (None for a tensor that is not a shard)."""
    return getattr(x, SHARD_WEIGHT, None)


def _clean(name: str) -> str:
    changed = True
    while changed:
        changed = False
        for prefix in _WRAPPER_PREFIXES:
            if name.startswith(prefix):
                name = name[len(prefix) :]
                changed = True
        name = name.replace("._orig_mod.", ".").replace("._fsdp_wrapped_module.", ".")
    return name


def named_arrays(tree: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """(dotted path, array) for every array leaf of a dict / list / tuple / JAX pytree."""
    if A.is_array(tree):
        return [(prefix or "value", local_tensor(tree))]
    jax = sys.modules.get("jax")
    if jax is not None and not isinstance(tree, (Mapping, list, tuple)):
        try:
            leaves, _ = jax.tree_util.tree_flatten_with_path(tree)
        except Exception:
            leaves = []
        out = []
        for path, leaf in leaves:
            if A.is_array(leaf):
                name = ".".join(_key_str(k) for k in path)
                out.append((f"{prefix}.{name}" if prefix and name else (name or prefix or "value"), local_tensor(leaf)))
        return out
    out: list[tuple[str, Any]] = []
    if isinstance(tree, Mapping):
        items: Iterable[tuple[Any, Any]] = tree.items()
    elif isinstance(tree, (list, tuple)):
        items = enumerate(tree)
    else:
        return out
    for key, value in items:
        name = f"{prefix}.{key}" if prefix else str(key)
        out.extend(named_arrays(value, name))
    return out


def _key_str(key: Any) -> str:
    for attr in ("key", "name", "idx"):
        if hasattr(key, attr):
            return str(getattr(key, attr))
    return str(key).strip(".[]'\"")


def named_parameters(obj: Any, trainable_only: bool = False) -> list[tuple[str, Any]]:
    """(name, detached parameter) of a torch module, or the array leaves of a pytree / dict / list.

    ``trainable_only`` keeps torch parameters with ``requires_grad`` (pytrees have no such flag).
    """
    if obj is None:
        return []
    if is_torch_module(obj):
        return [
            (_clean(n), local_tensor(p.detach()))
            for n, p in obj.named_parameters()
            if p is not None and (p.requires_grad or not trainable_only)
        ]
    if hasattr(obj, "named_parameters") and callable(obj.named_parameters):
        try:
            return [(_clean(str(n)), A.detach(p)) for n, p in obj.named_parameters()]
        except Exception:
            return []
    return [(_clean(n), a) for n, a in named_arrays(obj)]


def embedding_parameter_names(obj: Any) -> set[str]:
    """Names (as :func:`named_parameters` gives them) of a torch module's embedding tables."""
    if not is_torch_module(obj):
        return set()
    out = set()
    for prefix, module in obj.named_modules():
        if "Embedding" in type(module).__name__:
            for name, _ in module.named_parameters(recurse=False):
                out.add(_clean(f"{prefix}.{name}" if prefix else name))
    return out


def named_grads(obj: Any) -> list[tuple[str, Any]] | None:
    """(name, gradient) of a torch module's parameters that have a ``.grad``.

    For anything else, the object itself is taken to be a pytree of gradients (what a JAX
    user passes as ``grads=``). None when there is nothing.
    """
    if obj is None:
        return None
    if is_torch_module(obj):
        out = [(_clean(n), local_tensor(p.grad.detach())) for n, p in obj.named_parameters() if p.grad is not None]
        return out or None
    out = [(_clean(n), a) for n, a in named_arrays(obj)]
    return out or None


@functools.lru_cache(maxsize=4096)  # a pure function of its arguments, asked for every parameter every 100 steps
def group_name(name: str, depth: int = 1) -> str:
    """The module a parameter belongs to, as a tag component: ``encoder.layers.0.weight`` -> ``encoder``."""
    parts = [p for p in re.split(r"[./\[\]]+", name) if p]
    if len(parts) <= 1:
        group = "params" if not parts else parts[0]
        # A bare top-level parameter ('weight', 'bias') belongs to the root module.
        group = "root" if group in ("weight", "bias") else group
    else:
        group = ".".join(parts[: min(depth, len(parts) - 1)])
    group = _TAG_BAD.sub("_", group).strip("._-") or "root"
    return group if group[0] not in ".-" else "_" + group


def matched_parameters(student: Any, teacher: Any) -> list[tuple[str, Any, Any]]:
    """(name, θ, ξ) for the parameters a student and its EMA teacher share (same name and shape).

    Names are matched after removing wrapper prefixes; failing that, by name suffix (a
    student wrapper ``online.encoder.*`` against a bare ``encoder.*``); failing that, the
    teacher's parameters in order and by shape against a subsequence of the student's (a
    teacher built as a differently named copy). Parameters only the student has (a
    predictor) are ignored. An empty list means nothing matched.
    """
    s = named_parameters(student)
    t = named_parameters(teacher)
    if not s or not t:
        return []
    tmap = dict(t)
    pairs = [(n, p, tmap[n]) for n, p in s if n in tmap and tuple(tmap[n].shape) == tuple(p.shape)]
    if pairs:
        return pairs
    pairs = _match_by_suffix(s, t)
    if pairs:
        return pairs
    return _match_in_order(s, t)


def _match_by_suffix(s: list[tuple[str, Any]], t: list[tuple[str, Any]]) -> list[tuple[str, Any, Any]]:
    """Pairs whose names agree after dropping leading components (``online.encoder.0.w`` ~ ``encoder.0.w``)."""

    def suffixes(name: str) -> list[str]:
        parts = name.split(".")
        return [".".join(parts[i:]) for i in range(len(parts))]

    by_suffix: dict[str, list[tuple[str, Any]]] = {}
    for name, q in t:
        for suffix in suffixes(name):
            by_suffix.setdefault(suffix, []).append((name, q))
    pairs, used = [], set()
    for name, p in s:
        for suffix in suffixes(name):
            cands = [(n, q) for n, q in by_suffix.get(suffix, []) if n not in used]
            if len(cands) == 1 and tuple(cands[0][1].shape) == tuple(p.shape):
                used.add(cands[0][0])
                pairs.append((name, p, cands[0][1]))
                break
    # Only a match that covers every teacher parameter is trusted.
    return pairs if len(pairs) == len(t) else []


def _match_in_order(s: list[tuple[str, Any]], t: list[tuple[str, Any]]) -> list[tuple[str, Any, Any]]:
    """Teacher parameters matched, in order and by shape, to a subsequence of the student's.

    An EMA teacher is a copy of part of the student (the student adds a predictor), built in
    the same order, so the teacher's parameters appear in the student's list in the same order.
    """
    pairs, i = [], 0
    for _, q in t:
        while i < len(s) and tuple(s[i][1].shape) != tuple(q.shape):
            i += 1
        if i == len(s):
            return []
        pairs.append((s[i][0], s[i][1], q))
        i += 1
    return pairs


# ----------------------------------------------------------------------------- norms


def sum_of_squares(xs: Sequence[Any]) -> Any:
    """Σ‖x‖² over arrays, as a 0-d float array (float32 accumulation at least; float64 stays float64).

    torch uses ``torch._foreach_norm`` per (device, dtype) group, as ``clip_grad_norm_`` does.
    Shards (see local_tensor) count with their weight: the result is this rank's share of
    the global sum, and the Monitor adds the shares of all ranks.
    """
    xs = [A.detach(x) for x in xs if x is not None]
    if not xs:
        return None
    first = xs[0]
    if A.is_torch(first):
        torch = sys.modules["torch"]
        sharded = any(shard_weight(x) is not None for x in xs)
        groups: dict[tuple, list] = {}
        for x in xs:
            groups.setdefault((x.device, x.dtype), []).append(x)
        parts = []
        for (_, dtype), ts in groups.items():
            norms = (
                torch._foreach_norm(ts)
                if hasattr(torch, "_foreach_norm")
                else [torch.linalg.vector_norm(t) for t in ts]
            )
            if sharded:  # scalars, not a tensor of weights: no host-to-device copy
                norms = [n * math.sqrt(_weight_in_sharded(t)) for n, t in zip(norms, ts, strict=True)]
            acc = torch.float64 if dtype == torch.float64 else torch.float32
            stacked = torch.stack([n.to(dtype=acc, device=first.device) for n in norms])
            parts.append(torch.sum(stacked * stacked))
        total = parts[0]
        for part in parts[1:]:
            total = total + part.to(total.dtype)
        return _mark_shard(total) if sharded else total
    xp = A.namespace(first)
    total = None
    for x in xs:
        xf = x if xp.isdtype(x.dtype, "real floating") and x.dtype != xp.float16 else xp.astype(x, xp.float32)
        if xf.dtype not in (xp.float32, xp.float64):
            xf = xp.astype(xf, xp.float32)
        part = xp.sum(xf * xf)
        total = part if total is None else total + part
    return total


def diff_sum_of_squares(ps: Sequence[Any], qs: Sequence[Any], chunk: int = 32) -> Any:
    """Σ‖p − q‖² over paired arrays, holding at most ``chunk`` differences in memory at a time."""
    total = None
    sharded = False
    for i in range(0, len(ps), chunk):
        diffs = []
        for p, q in zip(ps[i : i + chunk], qs[i : i + chunk], strict=False):
            weight = shard_weight(p)
            p, q = A.detach(p), A.detach(q)
            if A.is_torch(p) and q.dtype != p.dtype:
                q = q.to(p.dtype)
            diff = p - q
            if weight is not None:
                setattr(diff, SHARD_WEIGHT, weight)
                sharded = True
            diffs.append(diff)
        part = sum_of_squares(diffs)
        if part is not None:
            total = part if total is None else total + part
    return _mark_shard(total) if sharded and total is not None else total


def is_shard_sum(x: Any) -> bool:
    """True for a sum of squares (or a norm from it) that covers this rank's shards only."""
    return bool(getattr(x, "_metricreg_shard_sum", False))


def _mark_shard(x: Any) -> Any:
    x._metricreg_shard_sum = True
    return x


def _weight_in_sharded(x: Any) -> float:
    """A shard's weight; a plain tensor among shards is taken to be replicated on every rank."""
    weight = shard_weight(x)
    if weight is not None:
        return weight
    from metricreg.distributed import torch_rank_and_world

    return 1.0 / torch_rank_and_world()[1]


def global_norm(xs: Sequence[Any]) -> Any:
    """‖(x₁, x₂, …)‖₂ over all arrays (what ``clip_grad_norm_`` returns), 0-d on the arrays' device."""
    sq = sum_of_squares(xs)
    if sq is None:
        return None
    norm = A.namespace(sq).sqrt(sq)
    return mark_shard(norm) if is_shard_sum(sq) else norm


# -------------------------------------------------------------------------- sampling

#: Per-tensor element cap for sampled snapshots: smaller tensors are taken whole (exact).
SAMPLE_PER_TENSOR = 16_384


def sample_flat(x: Any, cap: int = SAMPLE_PER_TENSOR) -> tuple[Any, float]:
    """(up to ``cap`` elements of x, flattened and fixed-pseudo-randomly chosen, weight numel/cap).

    The same elements are chosen every call for a tensor of the same size, so two calls
    can be subtracted; ``weight * ‖sample‖²`` is an unbiased estimate of ``‖x‖²``. A shard's
    weight (see local_tensor) is folded in.
    """
    xp = A.namespace(x)
    share = shard_weight(x) or 1.0
    flat = xp.reshape(A.detach(x), (-1,))
    n = flat.shape[0]
    if n <= cap:
        return flat, share
    return xp.take(flat, A.row_indices(n, cap, xp, A.device_of(flat)), axis=0), n / cap * share


def sample_copy(x: Any, cap: int = SAMPLE_PER_TENSOR) -> tuple[Any, float]:
    """:func:`sample_flat`, but never a view: a snapshot that in-place updates cannot move.

    Optimizers and EMA updates write parameters in place; a small tensor's sample is the
    tensor itself, so a snapshot kept across steps must be a copy (on the same device, no
    host sync). JAX arrays are immutable and need none.
    """
    sample, weight = sample_flat(x, cap)
    if A.is_torch(sample):
        sample = sample.clone()
    elif isinstance(sample, np.ndarray):
        sample = sample.copy()
    return sample, weight


def sampled_sq_norm(pairs: Iterable[tuple[Any, float]]) -> Any:
    """Σ weight·‖v‖² over (vector, weight) pairs."""
    total = None
    for v, w in pairs:
        xp = A.namespace(v)
        vf = v if v.dtype in (xp.float32, xp.float64) else xp.astype(v, xp.float32)
        part = xp.sum(vf * vf) * w if w != 1.0 else xp.sum(vf * vf)
        total = part if total is None else total + part
    return total


def numel(x: Any) -> int:
    return math.prod(tuple(x.shape))


# ------------------------------------------------------------------ torch fast paths
#
# The parameter passes of the optimization metrics (update snapshot and ratio, dead units,
# gradient flow) run over every parameter tensor every 100 steps. Through the array-API
# wrappers each tensor costs several microseconds of Python on the training thread (a model
# has hundreds of tensors); for plain torch tensors (not shards) the same kernels are called
# directly here: the same entries, the same arithmetic in the same order, so the same values
# (tests/builtins/test_optimization_fast.py compares both routes).


def plain_torch(xs: Sequence[Any]) -> bool:
    """True when ``xs`` is non-empty and every entry is a torch tensor that is not a shard."""
    torch = sys.modules.get("torch")
    if torch is None or not xs or not hasattr(torch, "_foreach_norm"):
        return False
    tensor = torch.Tensor
    return all(isinstance(x, tensor) and getattr(x, SHARD_WEIGHT, None) is None for x in xs)


def torch_sample_flat(x: Any, copy: bool = False, cap: int = SAMPLE_PER_TENSOR) -> tuple[Any, float]:
    """:func:`sample_flat` (``copy``: :func:`sample_copy`) for a plain torch tensor, without the wrappers."""
    flat = x.detach().reshape(-1)
    n = flat.shape[0]
    if n <= cap:
        return (flat.clone() if copy else flat), 1.0
    # index_select makes a new tensor: a snapshot already, no second copy needed
    return flat.index_select(0, A.row_indices(n, cap, A.namespace(flat), flat.device)), n / cap * 1.0


def torch_sampled_sq_norm(pairs: Iterable[tuple[Any, float]]) -> Any:
    """:func:`sampled_sq_norm` for torch vectors: Σ weight·‖v‖², accumulated in the same order.

    The squares come from one ``_foreach_mul`` (the same elementwise products as ``v * v``, one
    dispatch instead of one per tensor); each tensor's sum is still its own ``torch.sum``, so
    every value is bit for bit the array-API route's (tests/builtins/test_optimization_fast.py).
    """
    torch = sys.modules["torch"]
    pairs = list(pairs)
    if not pairs:
        return None
    vfs = [v if v.dtype in (torch.float32, torch.float64) else v.to(torch.float32) for v, _ in pairs]
    total = None
    for square, (_, w) in zip(torch._foreach_mul(vfs, vfs), pairs, strict=True):
        part = torch.sum(square)
        if w != 1.0:
            part = part * w
        total = part if total is None else total + part
    return total


def torch_group_norms(named: Sequence[tuple[str, Any]], groups: Mapping[str, Sequence[int]]) -> dict[str, Any]:
    """:func:`global_norm` of each group of plain torch tensors (indices into ``named``), one _foreach_norm each
    (device, dtype): per-tensor norms as sum_of_squares computes them, then the same stack-square-sum-sqrt."""
    torch = sys.modules["torch"]
    norms: list[Any] = [None] * len(named)
    by_kind: dict[tuple, list[int]] = {}
    for i, (_, g) in enumerate(named):
        by_kind.setdefault((g.device, g.dtype), []).append(i)
    for (_, dtype), idx in by_kind.items():
        acc = torch.float64 if dtype == torch.float64 else torch.float32
        for i, n in zip(idx, torch._foreach_norm([named[i][1].detach() for i in idx]), strict=True):
            norms[i] = n if n.dtype == acc else n.to(acc)
    out = {}
    for label, idx in groups.items():
        first = named[idx[0]][1]
        kinds: dict[tuple, list[int]] = {}  # sum_of_squares adds one part per (device, dtype), in first-seen order
        for i in idx:
            kinds.setdefault((named[i][1].device, named[i][1].dtype), []).append(i)
        total = None
        for part_idx in kinds.values():
            stacked = torch.stack([norms[i].to(device=first.device) for i in part_idx])
            part = torch.sum(stacked * stacked)
            total = part if total is None else total + part.to(total.dtype)
        out[label] = torch.sqrt(total)
    return out
