"""Two CPU processes under torchrun with accelerate, for test_accelerate.py.

Every rank builds its Monitor through HealthTracker (accelerate starts trackers on the main
process only) and steps it; accelerator.log runs on the main process. Each rank records the
rank and world size its Monitor uses next to accelerate's.
Usage: torchrun --nproc_per_node 2 accelerate_ddp_worker.py OUT_DIR
"""

from __future__ import annotations

import json
import os
import sys

os.environ["METRICREG_DISABLE_PLUGIN_AUTOLOAD"] = "1"

import torch
from accelerate import Accelerator

from metricreg.integrations.accelerate import HealthTracker

torch.set_num_threads(1)


def main(out: str) -> None:
    tracker = HealthTracker(os.path.join(out, "mr"))
    accelerator = Accelerator(cpu=True, project_dir=out, log_with=["tensorboard", tracker])
    accelerator.init_trackers("acc")
    mon = tracker.mon
    rank = accelerator.process_index
    torch.manual_seed(rank)
    model = torch.nn.Linear(8, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    model, opt = accelerator.prepare(model, opt)
    for step in range(21):
        loss = torch.nn.functional.cross_entropy(model(torch.randn(16, 8)), torch.randint(0, 2, (16,)))
        accelerator.backward(loss)
        mon.step(step, loss=loss.detach(), model=model, optimizer=opt)
        opt.step()
        opt.zero_grad()
        # The rank-mean loss, as metricreg reduces it, for accelerate's own TensorBoard tracker.
        mean = accelerator.reduce(loss.detach(), reduction="mean")
        accelerator.log({"train_loss": mean.item()}, step=step)
    mon.close()  # before end_training: rank 0 flushes while the other rank waits at the barrier
    accelerator.wait_for_everyone()
    # The DDP wrapper holds the gloo group: release it before end_training destroys the group, so no
    # process tears gloo down at interpreter exit (seen to abort rank 1 now and then otherwise).
    del model, opt
    accelerator.free_memory()
    accelerator.end_training()
    with open(os.path.join(out, f"rank{rank}.json"), "w") as f:
        json.dump(
            {
                "accelerate": [accelerator.process_index, accelerator.num_processes],
                "monitor": [mon.rank, mon.world_size],
            },
            f,
        )


if __name__ == "__main__":
    main(sys.argv[1])
