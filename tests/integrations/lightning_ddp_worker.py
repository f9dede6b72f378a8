"""A Lightning DDP run on 2 CPU processes (gloo), for test_lightning_ddp.py.

Lightning's "ddp" strategy starts rank 1 by running this script again, as it does for users.
Rank 0 asks its Monitor to stop at step 12; every rank must leave at the same step.
Usage: python lightning_ddp_worker.py OUT_DIR
"""

from __future__ import annotations

import json
import os
import sys

os.environ["METRICREG_DISABLE_PLUGIN_AUTOLOAD"] = "1"

import lightning.pytorch as pl
import numpy as np
import torch
from sklearn.datasets import load_digits
from torch.utils.data import DataLoader, TensorDataset

from metricreg.integrations.lightning import HealthCallback

torch.set_num_threads(1)


class Model(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = torch.nn.functional.cross_entropy(self.net(x), y)
        self.log("train_loss", loss, sync_dist=True)  # the mean over ranks, as metricreg reduces it
        if self.global_rank == 0 and self.global_step == 12:
            health = next(cb for cb in self.trainer.callbacks if isinstance(cb, HealthCallback))
            health.mon.request_stop("test: rank 0 only")
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.05)


def main(out: str) -> None:
    data = load_digits()
    x = torch.from_numpy((data.data / 16.0).astype(np.float32))
    y = torch.from_numpy(data.target.astype(np.int64))
    pl.seed_everything(0, verbose=False)
    callback = HealthCallback()
    trainer = pl.Trainer(
        default_root_dir=out,
        logger=pl.loggers.TensorBoardLogger(out, name="tb", version="v0"),
        callbacks=[callback],
        accelerator="cpu",
        devices=2,
        strategy="ddp",
        max_steps=100,
        log_every_n_steps=1,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
    )
    trainer.fit(Model(), DataLoader(TensorDataset(x, y), batch_size=32))
    with open(os.path.join(out, f"rank{trainer.global_rank}.json"), "w") as f:
        json.dump({"global_step": trainer.global_step, "world_size": trainer.world_size}, f)


if __name__ == "__main__":
    main(sys.argv[1])
