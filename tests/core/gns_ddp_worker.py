"""One rank of a DDP job on gloo (launched by test_gradient_noise_ddp.py): ``gns_ddp_worker.py OUT``.

Each rank accumulates K = 3 micro-batches (``no_sync`` for the first two, the usual DDP pattern)
with ``gradient_noise.accumulate``; collectives other than DDP's own are made to raise while the
helper and the metric run. Each rank also computes, with a plain (undistributed) copy of the
model, the gradient of every micro-batch of every rank, and writes both to ``OUT/rank<r>.json``.
"""

import copy
import datetime
import json
import os
import sys

import torch
import torch.distributed as dist
import torch.nn.functional as F

from metricreg import arrays as A
from metricreg.builtins import gradient_noise as GN

K, B = 3, 4


def batch(rank: int, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(100 * rank + k)
    return torch.randn(B, 5, generator=g), torch.randn(B, 2, generator=g)


def main() -> None:
    out = sys.argv[1]
    dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=60))
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.manual_seed(0)
    plain = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.Tanh(), torch.nn.Linear(7, 2))
    model = torch.nn.parallel.DistributedDataParallel(copy.deepcopy(plain))
    acc = GN.accumulate(model, microbatch_size=B)
    assert acc.ddp and acc.world == world
    forbidden = {}
    for name in ("all_reduce", "all_gather", "broadcast", "reduce", "all_gather_into_tensor", "barrier"):
        forbidden[name] = getattr(dist, name)

        def boom(*args, _name=name, **kwargs):
            raise AssertionError(f"gradient_noise made a collective: dist.{_name}")

        setattr(dist, name, boom)
    acc.begin(0)
    for k in range(K):
        x, y = batch(rank, k)
        if k < K - 1:
            with model.no_sync():
                (F.mse_loss(model(x), y) / K).backward()
        else:
            (F.mse_loss(model(x), y) / K).backward()  # DDP's all-reduce of the accumulated gradient
        acc.micro_step()
    got = {key: float(A.to_host(v)) for key, v in GN.gradient_noise(acc).items()}
    for name, fn in forbidden.items():
        setattr(dist, name, fn)
    per_batch = {}
    for r in range(world):
        for k in range(K):
            x, y = batch(r, k)
            grads = torch.autograd.grad(F.mse_loss(plain(x), y) / K, list(plain.parameters()))
            per_batch[f"{r}/{k}"] = torch.cat([g.reshape(-1) for g in grads]).double().tolist()
    with open(os.path.join(out, f"rank{rank}.json"), "w") as f:
        json.dump({"rank": rank, "world": world, "got": got, "per_batch": per_batch}, f)
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
