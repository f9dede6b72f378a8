"""One rank of an FSDP2 job on gloo (launched by test_sharded.py): ``sharded_worker.py LOGDIR``.

Every rank trains an FSDP2 (``fully_shard``) student and a sharded EMA teacher on the same
batches, and, on rank 0, an unsharded copy of both in the same way: the single-process
reference. Both are monitored with the optimization and EMA built-ins; rank 0 writes
``LOGDIR/sharded`` (values combined across ranks) and ``LOGDIR/reference``. Last, the
shares of a sharded and of a replicated DTensor's sum of squares must add up to the whole.
"""

import copy
import datetime
import os
import sys

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import fully_shard
from torch.distributed.tensor import Replicate, Shard, distribute_tensor

import metricreg as mr
from metricreg import adapters
from metricreg.builtins import ema, optimization

CONFIG = {"optimization/grad_norm": {"every": 5}, "optimization/update_ratio": {"every": 5}, "ema": {"every": 5}}
STEPS = 21


def build():
    torch.manual_seed(0)
    # 3 outputs: the last bias does not split evenly (empty shards with 4 ranks).
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    teacher = copy.deepcopy(model).requires_grad_(False)
    return model, teacher


def train_step(model, teacher, opt, x, y):
    loss = F.mse_loss(model(x), y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    with torch.no_grad():
        for pt, ps in zip(teacher.parameters(), model.parameters(), strict=True):
            pt.lerp_(ps, 0.1)


def check_shares(world: int) -> None:
    """Sharded and replicated DTensors: the ranks' shares of the sum of squares add up to the whole."""
    mesh = init_device_mesh("cpu", (world,))
    full = torch.arange(11.0)  # 11: uneven shards
    for placement in (Shard(0), Replicate()):
        local = adapters.named_arrays({"x": distribute_tensor(full, mesh, [placement])})[0][1]
        share = adapters.sum_of_squares([local]).clone()
        dist.all_reduce(share)  # the test's own collective, on every rank
        assert torch.allclose(share, (full**2).sum()), (placement, share)


def main(logdir: str) -> None:
    dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=60))
    rank = dist.get_rank()
    plugins = [optimization, ema]
    model, teacher = build()
    if rank == 0:
        ref_model, ref_teacher = copy.deepcopy(model), copy.deepcopy(teacher)
        ref_opt = torch.optim.SGD(ref_model.parameters(), lr=0.05, momentum=0.9)
        ref_mon = mr.Monitor(
            os.path.join(logdir, "reference"), plugins=plugins, builtins=False, config=CONFIG, rank=0, world_size=1
        )
    fully_shard(model)
    fully_shard(teacher)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    mon = mr.Monitor(os.path.join(logdir, "sharded"), plugins=plugins, builtins=False, config=CONFIG, dist_timeout=30)
    gen = torch.Generator().manual_seed(1)
    for step in range(STEPS):
        x, y = torch.randn(32, 8, generator=gen), torch.randn(32, 3, generator=gen)  # the same batch on every rank
        train_step(model, teacher, opt, x, y)
        mon.step(step, model=model, ema_model=teacher, optimizer=opt)
        if rank == 0:
            train_step(ref_model, ref_teacher, ref_opt, x, y)
            ref_mon.step(step, model=ref_model, ema_model=ref_teacher, optimizer=ref_opt)
    mon.close()
    if rank == 0:
        ref_mon.close()
        assert not mon.errors and not ref_mon.errors, (mon.errors, ref_mon.errors)
    check_shares(dist.get_world_size())
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
    os._exit(0)
