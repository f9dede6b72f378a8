"""metricreg.integrations.lightning against the real Lightning, on scikit-learn's digits.

Each run writes Lightning's own TensorBoardLogger output and the callback's metricreg run
beside it; both are read back with TensorBoard's loader and compared point by point.
"""

from __future__ import annotations

import copy
import json
import math
import os

import pytest

pytest.importorskip("lightning")

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

import metricreg as mr
from metricreg.integrations.lightning import HealthCallback

from .conftest import active_alerts, scalars

torch.set_num_threads(1)


class DigitsMLP(pl.LightningModule):
    """A tiny classifier that logs what Lightning users log, plus the pre-clip gradient norm."""

    def __init__(self, lr: float = 0.05, stop_at: int | None = None) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))
        self.lr = lr
        self.stop_at = stop_at

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = torch.nn.functional.cross_entropy(self.net(x), y)
        self.log("train_loss", loss)
        self._window = [*getattr(self, "_window", []), loss.detach()]
        if self.stop_at is not None and self.global_step == self.stop_at:
            health = next(cb for cb in self.trainer.callbacks if isinstance(cb, HealthCallback))
            health.mon.request_stop("test: stop requested")
        return loss

    def on_before_optimizer_step(self, optimizer):
        # Lightning calls this after the callbacks' hook and before clipping: its own pre-clip norm.
        norms = pl.utilities.grad_norm(self, norm_type=2)
        self.log("lightning_grad_norm", norms["grad_2.0_norm_total"])
        # The raw losses of the micro-batches this optimizer step accumulated (fewer at an epoch's end).
        self.log("window_mean_loss", torch.stack(self._window).mean())
        self._window = []

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self.net(x)
        self.log("val_loss", torch.nn.functional.cross_entropy(logits, y))
        self.log("val/acc", (logits.argmax(-1) == y).float().mean())

    def configure_optimizers(self):
        opt = torch.optim.SGD(self.parameters(), lr=self.lr, momentum=0.9)
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.99)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def _loaders(digits, batch_size=32):
    x, y = digits
    train = TensorDataset(torch.from_numpy(x[:1500]), torch.from_numpy(y[:1500]))
    val = TensorDataset(torch.from_numpy(x[1500:]), torch.from_numpy(y[1500:]))
    g = torch.Generator().manual_seed(0)
    return DataLoader(train, batch_size=batch_size, shuffle=True, generator=g), DataLoader(val, batch_size=128)


def _trainer(tmp_path, callbacks, **kwargs):
    kwargs.setdefault("max_steps", 101)
    return pl.Trainer(
        default_root_dir=tmp_path,
        logger=pl.loggers.TensorBoardLogger(tmp_path, name="tb", version="v0"),
        callbacks=callbacks,
        accelerator="cpu",
        devices=1,
        log_every_n_steps=1,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        **kwargs,
    )


def test_steps_values_and_validation_match_lightnings_own_logger(tmp_path, digits):
    pl.seed_everything(0, verbose=False)
    train, val = _loaders(digits)
    trainer = _trainer(tmp_path, [HealthCallback()], val_check_interval=40, max_steps=120)
    model = DigitsMLP()
    trainer.fit(model, train, val)
    trainer.validate(model, val, verbose=False)  # after fit: a new point at the final step, no crash

    lightning_dir = tmp_path / "tb" / "v0"
    ours, theirs = scalars(lightning_dir / "metricreg"), scalars(lightning_dir)
    assert ours["train/loss"][0][0] == 0  # step 0 is written
    lightning_loss = dict(theirs["train_loss"])
    for step, value in ours["train/loss"]:
        assert value == pytest.approx(lightning_loss[step], rel=1e-5), step
    lightning_norm = dict(theirs["lightning_grad_norm"])
    for step, value in ours["train/optimization/grad_norm"]:
        assert value == pytest.approx(lightning_norm[step], rel=1e-4), step
    # Validation at Lightning's validation steps, with its values: val_loss -> val/loss, val/acc -> val/acc.
    assert [s for s, _ in ours["val/loss"]] == [s for s, _ in theirs["val_loss"]]
    for (_, a), (_, b) in zip(ours["val/loss"], theirs["val_loss"], strict=True):
        assert a == pytest.approx(b, rel=1e-6)
    assert [s for s, _ in ours["val/acc"]] == [s for s, _ in theirs["val/acc"]]
    assert ours["val/loss"][-1][0] == 120  # the validate() after fit, at the final step
    # The learning rate the step used (before the scheduler stepped): 0.05 * 0.99**step.
    for step, lr in ours["train/optimization/lr"]:
        assert lr == pytest.approx(0.05 * 0.99**step, rel=1e-5)
    assert ours["train/optimization/momentum"][0][1] == pytest.approx(0.9)
    assert "train/optimization/update_ratio" in ours
    # Not written twice: Lightning already logs the epoch.
    assert "train/epoch" not in ours
    assert active_alerts(lightning_dir / "metricreg") == []


def test_accumulation_gives_the_raw_loss_and_clipping_the_pre_clip_norm(tmp_path, digits):
    pl.seed_everything(0, verbose=False)
    train, _ = _loaders(digits, batch_size=16)
    cb = HealthCallback(os.fspath(tmp_path / "mr"))
    trainer = _trainer(tmp_path, [cb], max_steps=31, accumulate_grad_batches=4, gradient_clip_val=0.5)
    trainer.fit(DigitsMLP(), train)

    ours, theirs = scalars(tmp_path / "mr"), scalars(tmp_path / "tb" / "v0")
    window_mean = dict(theirs["window_mean_loss"])  # the mean of the 4 raw micro-batch losses
    last_micro = dict(theirs["train_loss"])  # Lightning logs the stepping micro-batch's raw loss
    assert ours["train/loss"][0][1] == pytest.approx(last_micro[0], rel=0.2)  # not divided by 4
    for step, value in ours["train/loss"]:
        assert value == pytest.approx(window_mean[step], rel=1e-5), step
    lightning_norm = dict(scalars(tmp_path / "tb" / "v0")["lightning_grad_norm"])
    norms = dict(ours["train/optimization/grad_norm"])
    assert all(norms[s] == pytest.approx(lightning_norm[s], rel=1e-4) for s in norms)
    assert max(norms.values()) > 0.5  # above the clip value: read before Lightning clipped
    clip = ours["train/optimization/clip_fraction"]
    assert clip and all(0.0 <= v <= 1.0 for _, v in clip)


def test_should_stop_reaches_the_trainer(tmp_path, digits):
    pl.seed_everything(0, verbose=False)
    train, _ = _loaders(digits)
    trainer = _trainer(tmp_path, [HealthCallback(os.fspath(tmp_path / "mr"))], max_steps=200)
    trainer.fit(DigitsMLP(stop_at=12), train)
    # Requested at step 12, shared at the next check (every 10 optimizer steps): step 20.
    assert trainer.global_step == 21
    assert trainer.should_stop


def test_validate_only_and_test_runs(tmp_path, digits):
    _, val = _loaders(digits)
    model = DigitsMLP()

    class TestSteps(DigitsMLP):
        def test_step(self, batch, batch_idx):
            x, y = batch
            self.log("test_loss", torch.nn.functional.cross_entropy(self.net(x), y), on_step=True, on_epoch=True)

    trainer = _trainer(tmp_path, [HealthCallback(os.fspath(tmp_path / "mr"))])
    trainer.validate(model, val, verbose=False)
    trainer.test(TestSteps(), val, verbose=False)
    ours = scalars(tmp_path / "mr")
    assert [s for s, _ in ours["val/loss"]] == [0]
    assert [s for s, _ in ours["test/loss"]] == [0]  # test_loss_epoch -> test/loss; test_loss_step skipped
    assert math.isfinite(ours["test/loss"][0][1])


def test_ema_teacher_from_lightnings_weight_averaging_or_a_named_attribute(tmp_path, digits):
    pl.seed_everything(0, verbose=False)
    train, _ = _loaders(digits)
    ema = pl.callbacks.EMAWeightAveraging(decay=0.99)
    trainer = _trainer(tmp_path, [ema, HealthCallback(os.fspath(tmp_path / "mr"))], max_steps=21)
    trainer.fit(DigitsMLP(), train)
    assert any(tag.startswith("train/ema/") for tag in scalars(tmp_path / "mr"))

    class WithTeacher(DigitsMLP):
        def __init__(self):
            super().__init__()
            self.teacher = copy.deepcopy(self.net).requires_grad_(False)  # a frozen copy: it drifts apart

    trainer = _trainer(
        tmp_path / "b", [HealthCallback(os.fspath(tmp_path / "mr2"), ema_attr="teacher", ema_of="net")], max_steps=21
    )
    trainer.fit(WithTeacher(), train)
    assert any(tag.startswith("train/ema/") for tag in scalars(tmp_path / "mr2"))


def test_bad_argument_names_the_argument():
    with pytest.raises(ValueError, match="stop_check_every"):
        HealthCallback(stop_check_every=0)
    assert issubclass(HealthCallback, pl.Callback)
    assert mr.Monitor  # the core stays importable alongside


def test_stop_on_a_spike_alert_names_the_batches_to_skip(tmp_path, digits):
    """Lightning's SpikeDetection, from metricreg's spike rule: stop, and say which batches to skip."""
    pl.seed_everything(0, verbose=False)
    train, _ = _loaders(digits)

    class Spiky(DigitsMLP):
        def training_step(self, batch, batch_idx):
            loss = super().training_step(batch, batch_idx)
            return loss * 50.0 if self.global_step == 30 else loss  # a corrupt batch

        def on_train_batch_start(self, batch, batch_idx):
            if self.global_step == 35:  # let the writer thread judge step 30 before the check at 40
                next(cb for cb in self.trainer.callbacks if isinstance(cb, HealthCallback)).mon.flush()

    health = HealthCallback(
        os.fspath(tmp_path / "mr"),
        stop_on="warn",
        stop_tags=("train/stability/spikes*",),
        # The spike flag is informational by default (noise spikes are no failure); SpikeDetection's
        # "stop on the first spike" is one member's rule in config.
        config={"loss": {"every": 1}, "stability/spikes": {"every": 1, "health": {"detected": {"warn_above": 0.5}}}},
        flops_per_batch=1e6,
        peak_flops=1e9,
    )
    trainer = _trainer(tmp_path, [health], max_steps=200)
    trainer.fit(Spiky(), train)
    assert trainer.global_step == 41  # stopped at the first check after the alert
    record = json.loads((tmp_path / "mr" / "skip_batches.json").read_text())
    assert record["tag"] == "train/stability/spikes/detected" and record["step"] == 30
    assert record["skip"] == [{"step": 29, "epoch": 0, "batch_idx": 29}, {"step": 30, "epoch": 0, "batch_idx": 30}]
    ours = scalars(tmp_path / "mr")
    flops = dict(ours["train/performance/flops_per_s"])
    assert flops and all(v > 0 for v in flops.values())
    for step, mfu in ours["train/performance/mfu"]:
        assert mfu == pytest.approx(flops[step] / 1e9, rel=1e-6)


def test_standalone_pytorch_lightning_package(tmp_path, digits):
    ptl = pytest.importorskip("pytorch_lightning")
    from metricreg.integrations.lightning import callback_class

    class Tiny(ptl.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = torch.nn.Linear(64, 10)

        def training_step(self, batch, batch_idx):
            x, y = batch
            loss = torch.nn.functional.cross_entropy(self.net(x), y)
            self.log("train_loss", loss)
            return loss

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.05)

    train, _ = _loaders(digits)
    callback = callback_class(ptl)()
    trainer = ptl.Trainer(
        max_steps=21,
        accelerator="cpu",
        log_every_n_steps=1,
        callbacks=[callback],
        logger=ptl.loggers.TensorBoardLogger(tmp_path, name="tb", version="v0"),
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
    )
    trainer.fit(Tiny(), train)
    ours, theirs = scalars(tmp_path / "tb" / "v0" / "metricreg"), dict(scalars(tmp_path / "tb" / "v0")["train_loss"])
    assert [s for s, _ in ours["train/loss"]] == [0, 10, 20]
    assert all(v == pytest.approx(theirs[s], rel=1e-5) for s, v in ours["train/loss"])
