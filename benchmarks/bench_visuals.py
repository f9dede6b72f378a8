"""Cost of the pictures (per-pair alignment, feature histograms, reconstruction grids) against a training step.

Anchor: one step of the overhead benchmark's loop (MLP 64 → 256 → 256 → 10, batch 256, AdamW, torch
CPU), shared with the other signal-cost scripts in signal_costs.py. Each output is timed per due
call with ``time.thread_time`` (the calling thread's CPU time), best of ``--repeat`` medians, split
into what the training thread pays (the compute function: slicing, copies, device arithmetic) and
what the writer thread pays (host job, histogram binning, PNG encoding; rows marked "+copy" include
the training thread's part), and printed as a ratio to the training step and as its amortised share
(cost / schedule interval / step).

Run: OMP_NUM_THREADS=1 python benchmarks/bench_visuals.py [--repeat N]
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("METRICREG_DISABLE_PLUGIN_AUTOLOAD", "1")

import torch
from signal_costs import CostTable, anchor_step, per_call

from metricreg import events, host
from metricreg.builtins import prediction, visuals


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    table = CostTable(anchor_step(args.repeat), width=36, first="output", last="thread")
    row = table.row
    two = {m: torch.randn(256, 64) for m in ("text", "image")}
    three = {**two, "audio": torch.randn(256, 64)}
    row("paired, 2 modalities 256x64", per_call(lambda: prediction.paired(two), 50, args.repeat), 100, "training")
    row("paired, 3 modalities 256x64", per_call(lambda: prediction.paired(three), 50, args.repeat), 100, "training")
    row(
        "paired, 3 modalities (+copy)",
        per_call(lambda: [host.to_float(v) for v in prediction.paired(three).values()], 50, args.repeat),
        100,
        "writer",
    )
    row(
        "similarity, 3 modalities",
        per_call(lambda: prediction.similarity_image(three), 20, args.repeat),
        1000,
        "training",
    )
    row(
        "similarity + PNGs, 3 pairs (+copy)",
        per_call(
            lambda: [events.image_value(k, host.to_numpy(v)) for k, v in prediction.similarity_image(three).items()],
            10,
            args.repeat,
        ),
        1000,
        "writer",
    )

    z = torch.randn(256, 256)
    row("features 256x256", per_call(lambda: visuals.features(z), 50, args.repeat), 1000, "training")
    big = torch.randn(4096, 512)
    row("features 4096x512", per_call(lambda: visuals.features(big), 20, args.repeat), 1000, "training")
    feats = {k: host.to_numpy(v) for k, v in visuals.features(big).items()}
    row(
        "features histograms 4096x512",
        per_call(lambda: [events.histogram_value(k, v) for k, v in feats.items()], 20, args.repeat),
        1000,
        "writer",
    )

    img = torch.rand(64, 3, 32, 32)
    rec = (img + 0.05 * torch.randn_like(img)).clamp(0, 1)
    row(
        "reconstructions 64x3x32x32",
        per_call(lambda: visuals.reconstruction_image(rec, img), 50, args.repeat),
        1000,
        "training",
    )
    row(
        "reconstructions grid + PNG (+slice)",
        per_call(
            lambda: events.image_value("r", host.to_numpy(visuals.reconstruction_image(rec, img))), 20, args.repeat
        ),
        1000,
        "writer",
    )

    table.print()


if __name__ == "__main__":
    main()
