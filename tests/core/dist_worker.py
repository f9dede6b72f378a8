"""One rank of a two-process gloo job (launched by test_distributed.py)."""

import os
import sys

import torch
import torch.distributed as dist

import metricreg as mr


class RankMetrics:
    @mr.hookimpl
    def metricreg_register_metrics(self, register):
        for op in ("mean", "sum", "max", "min"):
            register(mr.Metric(f"dist/{op}", compute=lambda loss: loss, every=5, reduce=op))
        register(mr.Metric("dist/local", compute=lambda loss: loss, every=5))


def main(logdir: str) -> None:
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    mon = mr.Monitor(logdir, plugins=[RankMetrics()], builtins=False)
    for step in range(12):
        mon.step(loss=torch.tensor(float(rank + 1) * (step + 1)))
    mon.close()
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
    os._exit(0)
