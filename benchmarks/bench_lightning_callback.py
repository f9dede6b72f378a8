"""Overhead of metricreg's Lightning HealthCallback on a small Lightning fit.

The same Lightning fit (MLP 64 → 256 → 256 → 10 on synthetic data, batch 256, SGD, gradient
clipping, ``STEPS`` optimizer steps) runs with Lightning's own per-step work only, and with
``HealthCallback`` (default schedules), best of ``--repeat`` each. Prints seconds per step and
the ratio monitored / bare. Lightning itself costs tens of microseconds per step, so on a
model this small the ratio is an upper bound on what a real model would see.

Run: python benchmarks/bench_lightning_callback.py [--steps N] [--repeat N]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

os.environ.setdefault("METRICREG_DISABLE_PLUGIN_AUTOLOAD", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from signal_costs import anchor_model

from metricreg.integrations.lightning import HealthCallback


class MLP(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.net = anchor_model()

    def training_step(self, batch, batch_idx):
        x, y = batch
        return torch.nn.functional.cross_entropy(self.net(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


def run(steps: int, monitored: bool) -> float:
    torch.manual_seed(0)
    data = TensorDataset(torch.randn(256 * 64, 64), torch.randint(0, 10, (256 * 64,)))
    with tempfile.TemporaryDirectory() as tmp:
        trainer = pl.Trainer(
            max_steps=steps,
            accelerator="cpu",
            gradient_clip_val=1.0,
            logger=False,
            callbacks=[HealthCallback(os.path.join(tmp, "mr"))] if monitored else [],
            enable_progress_bar=False,
            enable_model_summary=False,
            enable_checkpointing=False,
        )
        start = time.perf_counter()
        trainer.fit(MLP(), DataLoader(data, batch_size=256))
        return (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    bare = min(run(args.steps, False) for _ in range(args.repeat))
    monitored = min(run(args.steps, True) for _ in range(args.repeat))
    print(f"lightning fit, bare          : {bare * 1e3:8.3f} ms/step")
    print(f"with HealthCallback          : {monitored * 1e3:8.3f} ms/step")
    print(f"ratio monitored / bare       : {monitored / bare:8.3f}x")


if __name__ == "__main__":
    main()
