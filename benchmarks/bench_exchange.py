"""Cost of metricreg's cross-rank exchange in a 2-rank gloo job (CPU), as a ratio.

Two processes train a small MLP (DDP-style: the training all-reduces its gradients itself)
with a Monitor carrying the default built-ins, ``--steps`` steps, two ways:

* shared: one Monitor per rank as in a real job (exchanges at every step a reduced metric
  is due: every 10 steps with the built-ins);
* local: ``Monitor(rank=0, world_size=1)`` on each rank (the same metrics, no exchange).

Prints rank 0's per-step times, the ratio shared / local and the cost per exchange.

Run: python benchmarks/bench_exchange.py [--steps N] [--repeat N]
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import tempfile
import time

os.environ.setdefault("METRICREG_DISABLE_PLUGIN_AUTOLOAD", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

import metricreg as mr


def train(steps: int, mon: mr.Monitor) -> tuple[float, float]:
    """(seconds for the loop, seconds inside mon.step on steps where the every-10 metrics are due)."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    gen = torch.Generator().manual_seed(dist.get_rank())
    dist.barrier()
    start = time.perf_counter()
    in_due = 0.0
    for step in range(steps):
        x = torch.randn(64, 64, generator=gen)
        y = torch.randint(0, 10, (64,), generator=gen)
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        for p in model.parameters():
            dist.all_reduce(p.grad)
            p.grad /= 2
        opt.step()
        t0 = time.perf_counter()
        mon.step(step, loss=loss.detach(), model=model, optimizer=opt)
        if step % 10 == 0:
            in_due += time.perf_counter() - t0
    dist.barrier()
    return time.perf_counter() - start, in_due


def worker(rank: int, port: int, args: argparse.Namespace, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=2)
    shared, local = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeat):
            with mr.Monitor(os.path.join(tmp, f"shared{i}")) as mon:
                shared.append(train(args.steps, mon))
            with mr.Monitor(os.path.join(tmp, f"local{i}_{rank}"), rank=0, world_size=1) as mon:
                local.append(train(args.steps, mon))
    if rank == 0:
        with open(out, "w") as f:
            f.write(
                " ".join(str(min(x)) for x in zip(*shared, strict=True))
                + " "
                + " ".join(str(min(x)) for x in zip(*local, strict=True))
            )
    dist.destroy_process_group()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "times")
        mp.spawn(worker, args=(port, args, out), nprocs=2)
        with open(out) as f:
            t_shared, due_shared, t_local, due_local = map(float, f.read().split())
    exchanges = len(range(0, args.steps, 10))
    per = lambda t: t / args.steps * 1e3  # noqa: E731
    print(f"2 gloo ranks, {args.steps} steps, torch {torch.__version__}, best of {args.repeat}, rank 0's times")
    print(f"local Monitors (no exchange): {per(t_local):7.3f} ms/step")
    print(f"shared Monitors             : {per(t_shared):7.3f} ms/step   ratio {t_shared / t_local:5.3f}x")
    print(
        f"mon.step on a due step      : {due_local / exchanges * 1e3:7.3f} ms local, "
        f"{due_shared / exchanges * 1e3:7.3f} ms shared ({exchanges} exchanges; includes waiting for rank 1)"
    )


if __name__ == "__main__":
    sys.exit(main())
