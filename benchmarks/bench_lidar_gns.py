"""Cost of LiDAR and the gradient noise scale against a training step (issue 12's research signals).

Anchor: one step of the overhead benchmark's loop (MLP 64 → 256 → 256 → 10, batch 256, AdamW, torch
CPU), shared with the other signal-cost scripts in signal_costs.py. Each part is timed per due call
with ``time.thread_time`` (the calling thread's CPU time), best of ``--repeat`` medians, printed as
a ratio to the training step and as its amortised share (cost / schedule interval / step).

* LiDAR at n = 1000 samples, 2 views, d = 256 (float32 torch CPU): the training thread only
  snapshots the views; the covariances and the two eigensolves run on the writer thread.
* gradient_noise with ``accumulate(model)``: per micro-step (K = 4 micro-batches of 64), and the
  metric itself; and the list route (4 flat gradient copies the user made).

Run: OMP_NUM_THREADS=1 python benchmarks/bench_lidar_gns.py [--repeat N]
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("METRICREG_DISABLE_PLUGIN_AUTOLOAD", "1")

import numpy as np
import torch
from signal_costs import Anchor, CostTable, per_call

from metricreg import arrays as A
from metricreg.builtins import gradient_noise, lidar


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    anchor = Anchor()
    net, x, y = anchor.net, anchor.x, anchor.y
    table = CostTable(anchor.seconds(args.repeat), width=42)
    row = table.row
    rng = np.random.default_rng(0)
    views = torch.from_numpy(rng.standard_normal((1000, 1, 256)) + 0.3 * rng.standard_normal((1000, 2, 256)))
    views = views.float()
    row("lidar n=1000 q=2 d=256: snapshot", per_call(lambda: lidar.lidar(views), 20, args.repeat), 1000)
    snap = A.host_snapshot(views)
    row(
        "lidar n=1000 q=2 d=256: compute",
        per_call(lambda: lidar._lidar_np(snap), 3, args.repeat),
        1000,
        "writer thread",
    )

    acc = gradient_noise.accumulate(net, microbatch_size=64)
    chunks = list(zip(x.chunk(4), y.chunk(4), strict=True))

    def micro_steps() -> None:
        net.zero_grad()
        acc.begin(0)
        for xk, yk in chunks:
            (torch.nn.functional.cross_entropy(net(xk), yk) / 4).backward()
            acc.micro_step()

    def backward_only() -> None:
        net.zero_grad()
        for xk, yk in chunks:
            (torch.nn.functional.cross_entropy(net(xk), yk) / 4).backward()

    helper = per_call(micro_steps, 20, args.repeat) - per_call(backward_only, 20, args.repeat)
    row("gradient_noise: 4 micro_step() calls", max(helper, 0.0), 100)
    micro_steps()
    row(
        "gradient_noise: metric on accumulate()",
        per_call(lambda: gradient_noise.gradient_noise(acc), 50, args.repeat),
        100,
    )
    flat = [torch.cat([p.grad.reshape(-1) for p in net.parameters()]).clone() for _ in range(4)]
    row(
        "gradient_noise: metric on 4 flat grads",
        per_call(lambda: gradient_noise.gradient_noise(flat), 50, args.repeat),
        100,
    )

    table.print()


if __name__ == "__main__":
    main()
