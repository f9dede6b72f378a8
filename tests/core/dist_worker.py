"""One rank of a gloo job (launched by test_distributed.py): ``dist_worker.py LOGDIR CASE OUT_JSON``.

The training runs its own ``all_reduce`` every step (a 1-element and a 1,000-element
tensor) and checks that the results stay exact while metricreg misbehaves around it.
Cases:

* ``faults``: a reduced metric raising on rank 1 (another returning a vector there),
  family members that differ per rank,
  ``loss=`` given on rank 0 only (the built-in loss metric), and a stop requested on the
  last rank, which every rank must see at the same step.
* ``close``: the last rank closes its Monitor at step 12 and keeps training.
* ``reduce``: plain reductions, 12 steps.
* ``skip``: the last rank skips ``mon.step`` at step 5 (an exchange step); metricreg's
  group times out after 3 s on the others.
* ``mismatch``: rank 1 registers one reduced metric more than rank 0.
* ``independent``: ``Monitor(rank=0, world_size=1)`` on every rank (a launcher that sees
  independent trainings): each rank writes its own run, nothing is reduced.
"""

import datetime
import json
import logging
import os
import sys
import time

import torch
import torch.distributed as dist

import metricreg as mr
from metricreg.builtins import loss as builtin_loss

STOP_AT = 12
CLOSE_AT = 12
SKIP_AT = 5


def value(rank: int, step: int) -> float:
    return float(rank + 1) * (step + 1)


class Faults:
    """Metrics that behave differently per rank."""

    def __init__(self, rank: int, every: int = 5):
        self.rank = rank
        self.every = every

    @mr.hookimpl
    def metricreg_register_metrics(self, register):
        r, every = self.rank, self.every
        for op in ("mean", "sum", "max", "min"):
            register(mr.Metric(f"dist/{op}", compute=lambda step: value(r, step), every=every, reduce=op))
        register(mr.Metric("dist/local", compute=lambda step: value(r, step), every=every))
        register(mr.Metric("dist/flaky", compute=self.flaky, every=every, reduce="mean"))
        register(mr.Metric("dist/shape", compute=self.shape, every=every, reduce="mean"))
        register(mr.Metric("dist/family", compute=self.family, every=every, reduce="sum", members=("a", "b", "c")))

    def flaky(self, step):
        if self.rank == 1:
            raise RuntimeError("rank 1 cannot compute this")
        return value(self.rank, step)

    def shape(self, step):
        if self.rank == 1:
            return torch.ones(3)  # not one number: sent as missing on this rank
        return value(self.rank, step)

    def family(self, step):
        out = {"a": 1.0, "z": 100.0 + self.rank}  # z is not declared: rank 0's own value is written
        if self.rank % 2 == 0:
            out["b"] = float(self.rank + 1)
        else:
            out["c"] = 10.0 * (self.rank + 1)
        return out


class Errors(logging.Handler):
    def __init__(self):
        super().__init__(logging.ERROR)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


class Extra:
    """A reduced metric only rank 1 registers (a plugin installed on one node only)."""

    @mr.hookimpl
    def metricreg_register_metrics(self, register):
        register(mr.Metric("dist/extra", compute=lambda step: 1.0, every=5, reduce="sum"))


def main(logdir: str, case: str, out_path: str) -> None:
    logging.basicConfig(level=logging.WARNING)
    errors = Errors()
    logging.getLogger("metricreg").addHandler(errors)
    dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=60))
    rank, world = dist.get_rank(), dist.get_world_size()
    plugins = [Faults(rank)]
    if case == "faults":
        plugins.append(builtin_loss)
    if case == "mismatch" and rank == 1:
        plugins.append(Extra())
    if case == "independent":  # e.g. accelerate's view: each process is its own training
        mon = mr.Monitor(os.path.join(logdir, f"rank{rank}"), plugins=plugins, builtins=False, rank=0, world_size=1)
    else:
        mon = mr.Monitor(logdir, plugins=plugins, builtins=False, dist_timeout=3 if case == "skip" else 30)
    exact = True
    stopped_at = None
    start = time.perf_counter()
    steps = 12 if case in ("reduce", "independent", "mismatch") else 16 if case == "skip" else 31
    for step in range(steps):
        small = torch.tensor([float(rank + 1)])
        big = torch.full((1000,), float(rank + 1))
        dist.all_reduce(small)
        dist.all_reduce(big)
        total = world * (world + 1) / 2
        exact = exact and small.item() == total and bool((big == total).all())
        if case == "close" and rank == world - 1 and step > CLOSE_AT:
            continue  # closed: trains on without the Monitor
        if case == "skip" and rank == world - 1 and step == SKIP_AT:
            continue  # misses one exchange step: the others wait dist_timeout, then stop sharing
        inputs = {"loss": torch.tensor(value(rank, step))} if case != "faults" or rank == 0 else {}
        mon.step(step, **inputs)
        if case == "faults" and rank == world - 1 and step == STOP_AT:
            mon.request_stop("the last rank asks to stop")
        if case == "close" and rank == world - 1 and step == CLOSE_AT:
            mon.close()
        if mon.should_stop:
            stopped_at = step
            break
    mon.close()
    elapsed = time.perf_counter() - start
    dist.barrier()
    with open(out_path, "w") as f:
        json.dump(
            {
                "exact": exact,
                "stopped_at": stopped_at,
                "reason": mon.stop_reason,
                "seconds": elapsed,
                "errors": errors.messages,
            },
            f,
        )
    dist.destroy_process_group()


if __name__ == "__main__":
    main(*sys.argv[1:4])
    os._exit(0)
