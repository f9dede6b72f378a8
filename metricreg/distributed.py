"""torch.distributed awareness, without importing torch unless the user did.

Only rank 0 writes. Cross-rank traffic cannot disturb the training's own collectives
because it runs on metricreg's **own** gloo process group, created when the Monitor
starts on every rank, and because every exchange carries a payload whose layout is
fixed when the Monitor starts: one slot per declared member of every metric that is
shared across ranks (``reduce=`` with a step-pure schedule and no ``fan_out``). A
failure, a missing input or an absent member travels as NaN with its mask bit
cleared, so no rank ever makes a collective the others do not make, whatever its
metrics did. Exchanges happen at steps that are a pure function of the step.

Payload (float64, one row per rank after ``all_gather``):
``[step, stop, mask_0 .. mask_{n-1}, value_0 .. value_{n-1}, aux_0 .. aux_{n-1}]``. A mask
entry is 0 (no value), 1 (a value), 2 (an L2 norm over this rank's shards of sharded
tensors: norms combine as ``sqrt(Σ value²)``) or 3 (a ratio of two such norms, value over
aux: ``sqrt(Σ value²) / sqrt(Σ aux²)``); see ``mark_shard``. With an NCCL default group,
values stay on the GPU and travel in a second fixed-shape ``all_gather`` on an NCCL
group of metricreg's own; the host part (step, stop, mask) still goes over gloo.
"""

from __future__ import annotations

import hashlib
import logging
import math
import operator
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from metricreg.schedules import Predicate, Schedule

log = logging.getLogger("metricreg")

#: Exchange cadence when no shared metric is scheduled on steps: keeps request_stop agreed.
STOP_EVERY = 10
#: Default seconds a metricreg collective may wait for the other ranks before metricreg gives up
#: on cross-rank traffic for the rest of the run (training itself is never stopped).
DEFAULT_TIMEOUT_S = 600.0

OPS = ("mean", "sum", "max", "min")
VALID = 1.0
SHARD_NORM = 2.0
SHARD_RATIO = 3.0

_created = 0  # Exchanges created in this process: the same order on every rank names their store keys


def rank_and_world(rank: int | None = None, world_size: int | None = None) -> tuple[int, int]:
    """(rank, world size). Precedence: the explicit arguments, then torch.distributed, then (0, 1)."""
    if (rank is None) != (world_size is None):
        raise ValueError(
            f"Monitor(rank=..., world_size=...) must be given together, got rank={rank!r}, world_size={world_size!r}"
        )
    if rank is not None:
        try:
            if isinstance(rank, bool) or isinstance(world_size, bool):
                raise TypeError
            r, w = operator.index(rank), operator.index(world_size)  # type: ignore[arg-type]
        except TypeError:
            raise ValueError(
                f"Monitor(rank=, world_size=) must be integers, got rank={rank!r}, world_size={world_size!r}"
            ) from None
        if w < 1 or not 0 <= r < w:
            raise ValueError(
                f"Monitor(rank=, world_size=) needs 0 <= rank < world_size, got rank={rank!r}, "
                f"world_size={world_size!r}"
            )
        return r, w
    return torch_rank_and_world()


def torch_rank_and_world() -> tuple[int, int]:
    """torch.distributed's view: (0, 1) without torch imported or without an initialised group."""
    if "torch" not in sys.modules:
        return 0, 1
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


# ------------------------------------------------------------------------------ layout


@dataclass(frozen=True)
class Slot:
    """One value in the payload: a metric's member (None for a single value) and its reduction."""

    metric: str
    member: str | None
    op: str


def declared_members(metric: Any) -> tuple[str | None, ...]:
    """The members a reduced metric shares: ``members=``, else its health table's keys, else one value."""
    members = getattr(metric, "members", None)
    if members:
        return tuple(members)
    if isinstance(metric.health, Mapping) and metric.health:
        # "*/<member>" entries judge per-key members whose names come from the data: no fixed slot
        return tuple(m for m in metric.health if not m.startswith("*/"))
    return (None,)


def not_shared_reason(metric: Any) -> str | None:
    """Why a metric with ``reduce=`` cannot have fixed payload slots (None when it can)."""
    if metric.reduce is None:
        return "it declares no reduce="
    if metric.fan_out is not None:
        return f"its fan_out={metric.fan_out!r} keys are known only from the data"
    if isinstance(metric.schedule, Predicate):
        return "its schedule is a predicate, which every rank evaluates on its own"
    return None


def build_layout(metrics: Iterable[Any]) -> tuple[dict[str, list[Slot]], dict[str, str]]:
    """Fixed payload slots per event, and the reduced metrics left to rank 0 (name -> reason)."""
    layout: dict[str, list[Slot]] = {"step": [], "eval": [], "epoch_end": []}
    excluded: dict[str, str] = {}
    for metric in metrics:
        if metric.reduce is None:
            continue
        reason = not_shared_reason(metric)
        if reason is not None:
            excluded[metric.name] = reason
            continue
        layout[metric.schedule.event].extend(Slot(metric.name, m, metric.reduce) for m in declared_members(metric))
    return layout, excluded


def fingerprint(layout: Mapping[str, Sequence[Slot]]) -> float:
    """A 48-bit digest of the layout (exact in float64), compared across ranks at start-up."""
    text = repr(sorted((event, [(s.metric, s.member, s.op) for s in slots]) for event, slots in layout.items()))
    return float(int.from_bytes(hashlib.sha1(text.encode()).digest()[:6], "big"))


# ------------------------------------------------------------------------------ sharded norms


def is_sharded(x: Any) -> bool:
    """True for a DTensor with a sharded placement (FSDP2 ``fully_shard`` parameters and gradients)."""
    placements = getattr(x, "placements", None)
    return placements is not None and hasattr(x, "to_local") and any(p.is_shard() for p in placements)


def local_shard(x: Any) -> Any:
    """The local tensor of a DTensor (no collective); anything else unchanged."""
    return x.to_local() if hasattr(x, "to_local") and getattr(x, "placements", None) is not None else x


def mark_shard(value: Any, norm: Any = None, over: Any = None) -> Any:
    """Mark a result computed from this rank's shards of sharded tensors (FSDP2, DTensor).

    ``norm`` (default: the value itself) is an L2 norm over the local shards, scaled by any
    constant; ``over``, if given, is another such norm the value is divided by. Ranks then
    combine ``sqrt(Σ norm²)`` (over ``sqrt(Σ over²)``): the value over the whole tensors.
    """
    try:
        value._metricreg_shard = (value if norm is None else norm, over)
    except AttributeError:
        pass
    return value


def shard_parts(value: Any) -> tuple[Any, Any] | None:
    """(norm, over) set by mark_shard, or None."""
    return getattr(value, "_metricreg_shard", None)


# ------------------------------------------------------------------------------ exchange


class ExchangeError(RuntimeError):
    """metricreg's cross-rank traffic stopped (a rank left, timed out or disagrees)."""


class Exchange:
    """metricreg's own process group(s) and the fixed-layout payload of each exchange step."""

    def __init__(self, layout: Mapping[str, Sequence[Slot]], timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        global _created
        import torch
        import torch.distributed as dist

        self._torch = torch
        self._dist = dist
        self.layout = {event: list(slots) for event, slots in layout.items()}
        self.index = {event: {(s.metric, s.member): i for i, s in enumerate(slots)} for event, slots in layout.items()}
        self.shared = {s.metric for slots in self.layout.values() for s in slots}
        self.schedules: list[Schedule] = []
        self.next_due = 0
        self.world_size = dist.get_world_size()
        self.rank = dist.get_rank()
        self.active = False
        self._ops: dict[tuple[str, str], Any] = {}
        self._told_steps = False
        self._closed_key = f"metricreg/exchange{_created}/closed"
        _created += 1
        timeout = timedelta(seconds=timeout_s)
        self.group = dist.new_group(backend="gloo", timeout=timeout)
        self.device_group = None
        self.device = torch.device("cpu")
        if "nccl" in str(dist.get_backend()) and torch.cuda.is_available():
            self.device_group = dist.new_group(backend="nccl", timeout=timeout)
            self.device = _local_cuda_device(torch)
        self._store = _default_store(dist)
        self._handshake(fingerprint(self.layout), sum(len(s) for s in self.layout.values()))

    def set_schedules(self, schedules: Sequence[Schedule]) -> None:
        """Exchange steps: every step a shared step metric is due (else every STOP_EVERY steps)."""
        from metricreg.schedules import Every

        self.schedules = list(schedules) or [Every(STOP_EVERY)]
        self.next_due = min(s.next_due(0) for s in self.schedules)

    def advance(self, position: int) -> None:
        self.next_due = min(s.next_due(position + 1) for s in self.schedules)

    def _handshake(self, digest: float, slots: int) -> None:
        torch = self._torch
        mine = torch.tensor([digest, float(slots)], dtype=torch.float64)
        rows = [torch.empty_like(mine) for _ in range(self.world_size)]
        self._dist.all_gather(rows, mine, group=self.group)
        if any(not torch.equal(row, mine) for row in rows):
            counts = ", ".join(f"rank {r}: {int(row[1])} slots" for r, row in enumerate(rows))
            raise ExchangeError(
                "ranks registered different reduced metrics (" + counts + "); every rank needs the same "
                "plugins, config and METRICREG_* environment. Reduced metrics are rank 0's own values."
            )
        self.active = True

    def peer_closed(self) -> bool:
        """True when some rank closed its Monitor (it set a key in torch.distributed's store)."""
        if self._store is None:
            return False
        try:
            return bool(self._store.check([self._closed_key]))
        except Exception:
            return False

    def exchange(
        self, event: str, step: int, local: Mapping[tuple[str, str | None], Any], stop: bool
    ) -> tuple[list[tuple[Slot, Any]], list[int]]:
        """One collective round: (reduced value of every slot some rank filled, ranks that asked to stop)."""
        torch = self._torch
        if self.peer_closed():
            raise ExchangeError("another rank closed its Monitor")
        slots = self.layout[event]
        n = len(slots)
        codes: list[float] = [0.0] * n
        device_values: list[Any] = [None] * (2 * n)  # values, then aux
        for i, slot in enumerate(slots):
            value = local.get((slot.metric, slot.member))
            try:
                codes[i], device_values[i], device_values[n + i] = self._encode(value, slot)
            except (TypeError, ValueError, RuntimeError) as exc:  # this value only: the payload keeps its shape
                _warn_once(slot, exc)
        if self.device_group is None:  # gloo carries the values: Python floats by now
            numbers = [math.nan if v is None else v for v in device_values]
        else:
            numbers = [math.nan] * (2 * n)
        header = torch.tensor([float(step), 1.0 if stop else 0.0, *codes, *numbers], dtype=torch.float64)
        rows = [torch.empty_like(header) for _ in range(self.world_size)]
        self._dist.all_gather(rows, header, group=self.group)
        gathered = torch.stack(rows)
        steps = gathered[:, 0].tolist()
        if len(set(steps)) > 1 and not self._told_steps:
            self._told_steps = True
            log.error(
                "metricreg: ranks passed different steps to the Monitor (%s); values are combined anyway. "
                "Pass the same step on every rank (said once).",
                steps,
            )
        stops = [r for r, flag in enumerate(gathered[:, 1].tolist()) if flag]
        masks = gathered[:, 2 : 2 + n]
        values = gathered[:, 2 + n :] if self.device_group is None else self._gather_device(device_values)
        counts = (masks > 0).sum(0).tolist()
        ops = self._op_index(event, values.device)
        if values.device.type == "cuda":
            masks = masks.pin_memory().to(values.device, non_blocking=True)
        reduced = reduce_gathered(values[:, :n], values[:, n:], masks, ops).unbind(0)
        return [(slot, reduced[i]) for i, slot in enumerate(slots) if counts[i]], stops

    def _op_index(self, event: str, device: Any) -> Any:
        """Per slot, its reduction as a row of reduce_gathered's table; made once per event and device."""
        key = (event, str(device))
        cached = self._ops.get(key)
        if cached is None:
            torch = self._torch
            cached = torch.tensor([OPS.index(s.op) for s in self.layout[event]], dtype=torch.long)
            if device.type == "cuda":
                cached = cached.pin_memory().to(device, non_blocking=True)
            self._ops[key] = cached
        return cached

    def _encode(self, value: Any, slot: Slot) -> tuple[float, Any, Any]:
        """(mask code, value, aux) as float64 numbers or 0-d tensors; code 0 when there is none."""
        if value is None:
            return 0.0, None, None
        parts = shard_parts(value)
        if parts is None:
            return VALID, self._number(value, slot), None
        norm, over = parts
        if over is None:
            return SHARD_NORM, self._number(norm, slot), None
        return SHARD_RATIO, self._number(norm, slot), self._number(over, slot)

    def _number(self, value: Any, slot: Slot) -> Any:
        torch = self._torch
        if isinstance(value, torch.Tensor):
            if value.numel() != 1:
                raise ValueError(f"reduced metric {slot.metric!r} returned a tensor of shape {tuple(value.shape)}")
            t = local_shard(value).detach().reshape(())
            if self.device_group is not None and t.device == self.device:
                return t.to(torch.float64)
            return float(t)  # a CPU value; a CUDA one in a gloo-only job (a host copy: a sync)
        return float(value)  # Python, numpy (JAX: a host copy)

    def _gather_device(self, values: Sequence[Any]) -> Any:
        torch = self._torch
        parts = [
            v
            if isinstance(v, torch.Tensor) and v.device == self.device
            else torch.full((), math.nan if v is None else float(v), dtype=torch.float64, device=self.device)
            for v in values
        ]  # values then aux: (2 * slots,)
        mine = torch.stack(parts) if parts else torch.empty(0, dtype=torch.float64, device=self.device)
        rows = [torch.empty_like(mine) for _ in range(self.world_size)]
        self._dist.all_gather(rows, mine, group=self.device_group)  # enqueued on the stream: no host sync
        return torch.stack(rows)

    def close(self) -> None:
        """Tell the other ranks this Monitor has gone, then release metricreg's groups."""
        if not self.active:
            return
        self.active = False
        if not self._dist.is_initialized():
            return  # the job's process group is gone (destroyed before close): nothing left to tell or free
        try:
            if self._store is not None:
                self._store.set(self._closed_key, str(self.rank))
        except Exception:
            pass
        for group in (self.device_group, self.group):
            if group is not None:
                try:
                    self._dist.destroy_process_group(group)
                except Exception:
                    pass


def reduce_gathered(values: Any, aux: Any, masks: Any, ops: Any) -> Any:
    """Per slot, the reduction of the values whose mask is set: a (slots,) tensor on the values' device.

    ``values``, ``aux`` and ``masks`` are (world, slots); ``ops`` holds each slot's index in
    OPS (a long tensor on the values' device). NaN values count (a non-finite loss
    stays non-finite); unset entries do not. A slot whose ranks all sent shard norms (mask 2)
    combines them as sqrt(Σ value²), one whose ranks all sent ratios of shard norms (mask 3)
    as sqrt(Σ value²) / sqrt(Σ aux²): the value over the whole tensors.
    """
    import torch

    valid = masks > 0
    zero = torch.zeros((), dtype=values.dtype, device=values.device)
    summed = torch.where(valid, values, zero).sum(0)
    count = valid.sum(0).to(values.dtype)
    mean = summed / torch.clamp(count, min=1.0)
    high = torch.where(valid, values, torch.full_like(zero, -math.inf)).amax(0)
    low = torch.where(valid, values, torch.full_like(zero, math.inf)).amin(0)
    norms = torch.sqrt(torch.where(valid, values * values, zero).sum(0))
    unders = torch.sqrt(torch.where(masks == SHARD_RATIO, aux * aux, zero).sum(0))
    ratios = norms / unders
    n_valid = valid.sum(0)
    as_norm = torch.logical_and((masks == SHARD_NORM).sum(0) == n_valid, n_valid > 0)
    as_ratio = torch.logical_and((masks == SHARD_RATIO).sum(0) == n_valid, n_valid > 0)
    table = torch.stack([mean, summed, high, low])  # rows in the order of OPS
    chosen = table.gather(0, ops.reshape(1, -1)).reshape(-1)
    return torch.where(as_ratio, ratios, torch.where(as_norm, norms, chosen))


def _local_cuda_device(torch: Any) -> Any:
    """This rank's GPU: LOCAL_RANK (set by torchrun) when it names one, else the current device."""
    local = os.environ.get("LOCAL_RANK", "")
    if local.isdigit() and int(local) < torch.cuda.device_count():
        return torch.device("cuda", int(local))
    return torch.device("cuda", torch.cuda.current_device())


def _default_store(dist: Any) -> Any:
    try:
        return dist.distributed_c10d._get_default_store()
    except Exception:
        return None


def start_exchange(metrics: Sequence[Any], world_size: int, timeout_s: float | None) -> Exchange | None:
    """metricreg's group for a Monitor with ``world_size`` > 1, or None (with the reason logged).

    Every rank must create its Monitor (this makes the group). Without an initialised
    torch.distributed, or when it disagrees with ``world_size``, there is no cross-rank
    traffic: reduced metrics are rank 0's own values.
    """
    layout, excluded = build_layout(metrics)
    for name, reason in excluded.items():
        log.warning(
            "metricreg: metric %r declares reduce= but is not reduced across ranks (%s): rank 0 writes its own value",
            name,
            reason,
        )
    _, torch_world = torch_rank_and_world()
    if torch_world != world_size:
        log.warning(
            "metricreg: world_size=%d but torch.distributed %s; without a process group of that size "
            "there is no cross-rank reduction (reduced metrics are rank 0's own values) and request_stop "
            "is not shared",
            world_size,
            f"has {torch_world} processes" if torch_world > 1 else "is not initialised",
        )
        return None
    step_schedules = list({m.schedule for m in metrics if m.name in {s.metric for s in layout["step"]}})
    try:
        exchange = Exchange(layout, DEFAULT_TIMEOUT_S if timeout_s is None else float(timeout_s))
    except Exception as exc:
        log.error(
            "metricreg: cross-rank exchange could not start (%s); reduced metrics are rank 0's own "
            "values and request_stop is not shared",
            exc,
        )
        return None
    exchange.set_schedules(step_schedules)
    return exchange


_warned_unsendable: set[tuple[str, str | None]] = set()


def _warn_once(slot: Slot, exc: Exception) -> None:
    """A reduced value that is not one number travels as 'no value'; say so once per member."""
    if (slot.metric, slot.member) in _warned_unsendable:
        return
    _warned_unsendable.add((slot.metric, slot.member))
    member = f" member {slot.member!r}" if slot.member else ""
    log.warning(
        "metricreg: reduced metric %r%s gave a value that is not one number (%s); it is sent as missing",
        slot.metric,
        member,
        exc,
    )


_warned_undeclared: set[tuple[str, str | None]] = set()


def warn_undeclared(metric: str, member: str | None) -> None:
    """Once per member: a reduced family returned a member it did not declare (rank 0's value is written)."""
    if (metric, member) in _warned_undeclared:
        return
    _warned_undeclared.add((metric, member))
    log.warning(
        "metricreg: metric %r returned member %r, which it does not declare; it is written with rank 0's own "
        "value, not reduced across ranks. Declare the family with Metric(members=...) or a health table.",
        metric,
        member,
    )
