"""torch.distributed awareness, without importing torch unless the user did.

Only rank 0 writes. Metrics that declare ``reduce=`` are combined across ranks
with one collective per reduction op per due step; due-ness is a pure function
of the step, so every rank issues the same collectives in the same order.
A reduced metric must therefore run (and succeed) on every rank.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any


def rank_and_world() -> tuple[int, int]:
    """(rank, world size); (0, 1) when torch.distributed is not in use."""
    if "torch" not in sys.modules:
        return 0, 1
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def reduce_values(values: Sequence[Any], op: str, world_size: int) -> list[Any]:
    """All-reduce scalar results with one collective; stays on device (no host sync)."""
    import torch
    import torch.distributed as dist

    device = _device(values)
    stacked = torch.stack(
        [
            v.detach().reshape(()).to(device=device, dtype=torch.float64)
            if isinstance(v, torch.Tensor)
            else torch.tensor(float(v), dtype=torch.float64, device=device)
            for v in values
        ]
    )
    if device.type != "cpu" and dist.get_backend() == "gloo":
        stacked = stacked.cpu()
    torch_op = {
        "mean": dist.ReduceOp.SUM,
        "sum": dist.ReduceOp.SUM,
        "max": dist.ReduceOp.MAX,
        "min": dist.ReduceOp.MIN,
    }[op]
    dist.all_reduce(stacked, op=torch_op)
    if op == "mean":
        stacked = stacked / world_size
    return list(stacked.unbind(0))


def _device(values: Sequence[Any]) -> Any:
    import torch
    import torch.distributed as dist

    for v in values:
        if isinstance(v, torch.Tensor):
            return v.device
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")
