"""One rank of a gloo job for test_paired_distributed.py: ``paired_dist_worker.py LOGDIR MODALITIES``.

Each rank gives ``paired_embeddings`` of its own (seeded by rank) for 3 steps with the prediction
built-ins only, and runs its own training ``all_reduce`` every step, which must stay exact.
"""

import datetime
import sys

import numpy as np
import torch
import torch.distributed as dist

import metricreg as mr
from metricreg.builtins import prediction


def embeddings(rank: int, modalities: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(rank)
    base = rng.standard_normal((32, 8))
    return {f"m{i}": base + (0.3 + i) * rng.standard_normal((32, 8)) for i in range(modalities)}


def main(logdir: str, modalities: int) -> None:
    dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=60))
    rank = dist.get_rank()
    mon = mr.Monitor(
        logdir, plugins=[prediction], builtins=False, config={"prediction/paired": {"every": 1}}, dist_timeout=30
    )
    for step in range(3):
        probe = torch.full((4,), float(rank + 1))
        dist.all_reduce(probe)
        assert torch.equal(probe, torch.full((4,), float(sum(r + 1 for r in range(dist.get_world_size())))))
        mon.step(step, paired_embeddings=embeddings(rank, modalities))
    mon.close()
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
