"""torch.distributed with metricreg: two processes (gloo, CPU), one writer, reduced metrics.

Every rank creates a Monitor with the same logdir and calls ``mon.step`` every step. Only
rank 0 opens an event file. Metrics that declare ``reduce=`` (the built-in loss and
accuracy use ``reduce="mean"``, the stability indicators ``"max"``; ``metricreg plugins``
shows each one's) are combined across ranks, on metricreg's own process group, before
rank 0 writes them; the others are computed on rank 0 alone. Every exchange has a layout
fixed at start-up, so a metric failing on one rank never disturbs the training's collectives.

    python examples/distributed_train.py --logdir runs/ddp
    metricreg report runs/ddp

The script spawns its two ranks itself (``torch.multiprocessing.spawn``) with
MASTER_ADDR=127.0.0.1 and a free port. Under ``torchrun`` the same ``worker`` body applies:
initialise the process group first, then create the Monitor.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

import metricreg as mr


class RankMetrics:
    """Two metrics that show what reduce= does: each rank sees only its own shard of the data."""

    @mr.hookimpl
    def metricreg_register_metrics(self, register):
        # The worst rank's loss: max over ranks (a straggling or diverging shard shows up here).
        register(mr.Metric("dist/loss_max", compute=lambda loss: loss, every=10, reduce="max"))
        # No reduce=: computed and written by rank 0 alone, from rank 0's data only.
        register(mr.Metric("dist/loss_rank0", compute=lambda loss: loss, every=10))


class Net(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.encoder = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.Tanh())
        self.head = torch.nn.Linear(32, 4)

    def forward(self, x):
        hidden = self.encoder(x)
        return self.head(hidden), hidden


def label(x, teacher):
    return (torch.tanh(x @ teacher[0]) @ teacher[1]).argmax(dim=1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def worker(rank: int, world_size: int, logdir: str, steps: int) -> None:
    dist.init_process_group("gloo", rank=rank, world_size=world_size)  # before the Monitor: it asks for the rank
    torch.set_num_threads(1)
    torch.manual_seed(0)  # the same initial model on every rank
    ddp = torch.nn.parallel.DistributedDataParallel(Net())
    optimizer = torch.optim.SGD(ddp.parameters(), lr=0.1, momentum=0.9)
    teacher = (torch.randn(16, 32) / 4, torch.randn(32, 4))  # a fixed random network labels the data
    generator = torch.Generator().manual_seed(1000 + rank)  # each rank draws its own shard
    val_x = torch.randn(512, 16, generator=torch.Generator().manual_seed(7))
    val_y = label(val_x, teacher)

    # Every rank builds the same Monitor; only rank 0 writes to logdir.
    with mr.Monitor(logdir, plugins=[RankMetrics()], config={"collapse": {"every": 50}}) as mon:
        for step in range(steps):
            x = torch.randn(64, 16, generator=generator)
            y = label(x, teacher)
            logits, hidden = ddp(x)
            loss = F.cross_entropy(logits, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            accuracy = (logits.argmax(dim=1) == y).float().mean()
            mon.step(step, loss=loss.detach(), accuracy=accuracy, embeddings=hidden.detach(), model=ddp)
            if step % 50 == 0 or step == steps - 1:
                with torch.no_grad():
                    val_logits, _ = ddp.module(val_x)
                    val_loss = F.cross_entropy(val_logits, val_y)
                    val_accuracy = (val_logits.argmax(dim=1) == val_y).float().mean()
                mon.eval(step, loss=val_loss, accuracy=val_accuracy)
        if rank == 0:
            print(f"rank 0 wrote {mon.event_file}")
        else:
            print(f"rank {rank} wrote nothing (event_file={mon.event_file})")
    dist.barrier()
    dist.destroy_process_group()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="two-process torch.distributed (gloo) training with metricreg")
    parser.add_argument("--logdir", default="runs/ddp", help="the run directory (default: runs/ddp)")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--world-size", type=int, default=2)
    args = parser.parse_args(argv)
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ["MASTER_PORT"] = str(free_port())
    mp.spawn(worker, args=(args.world_size, args.logdir, args.steps), nprocs=args.world_size, join=True)
    files = [f for f in os.listdir(args.logdir) if "tfevents" in f]
    print(f"{args.logdir}: {len(files)} event file(s) from {args.world_size} ranks")
    return 0


if __name__ == "__main__":
    sys.exit(main())
