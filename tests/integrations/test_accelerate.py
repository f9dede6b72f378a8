"""metricreg.integrations.accelerate with the real accelerate: ranks, and accelerator.log reaching the Monitor.

accelerate's own TensorBoard tracker runs beside the metricreg tracker; both outputs are read
back with TensorBoard's loader.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("accelerate")

import torch
from accelerate import Accelerator

import metricreg as mr
from metricreg.integrations.accelerate import HealthTracker, monitor

from .conftest import active_alerts, scalars

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[2]


def test_accelerator_log_reaches_the_monitor_at_the_same_steps(tmp_path, digits):
    x, y = (torch.from_numpy(a) for a in digits)
    accelerator = Accelerator(
        cpu=True, project_dir=str(tmp_path), log_with=["tensorboard", HealthTracker(tmp_path / "mr")]
    )
    accelerator.init_trackers("acc")
    mon = accelerator.get_tracker("metricreg", unwrap=True)
    assert isinstance(mon, mr.Monitor)
    assert (mon.rank, mon.world_size) == (accelerator.process_index, accelerator.num_processes) == (0, 1)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    model, opt = accelerator.prepare(model, opt)
    for step in range(101):
        i = (step * 32) % 1472
        loss = torch.nn.functional.cross_entropy(model(x[i : i + 32]), y[i : i + 32])
        accelerator.backward(loss)
        opt.step()
        opt.zero_grad()
        accelerator.log({"train_loss": loss.item(), "epoch_fraction": step / 47}, step=step)
        if step % 50 == 49:
            with torch.no_grad():
                val = torch.nn.functional.cross_entropy(model(x[1500:]), y[1500:]).item()
            accelerator.log({"val_loss": val}, step=step)
    accelerator.end_training()

    ours, theirs = scalars(tmp_path / "mr"), scalars(tmp_path / "acc")
    acc_loss = dict(theirs["train_loss"])
    assert [s for s, _ in ours["train/loss"]][:3] == [0, 10, 20]
    for step, value in ours["train/loss"]:
        assert value == pytest.approx(acc_loss[step], rel=1e-6)
    assert [s for s, _ in ours["val/loss"]] == [s for s, _ in theirs["val_loss"]] == [49, 99]
    for (_, a), (_, b) in zip(ours["val/loss"], theirs["val_loss"], strict=True):
        assert a == pytest.approx(b, rel=1e-6)
    assert [s for s, _ in ours["train/epoch_fraction"]] == list(range(101))
    assert "gap/loss" in ours
    assert active_alerts(tmp_path / "mr") == []


def test_the_loop_feeding_the_monitor_itself_is_not_doubled(tmp_path):
    accelerator = Accelerator(cpu=True)
    mon = monitor(accelerator, tmp_path / "mr")
    tracker = HealthTracker(mon)
    for step in range(21):
        mon.step(step, loss=torch.tensor(float(step)))
        tracker.log({"train_loss": 1000.0}, step=step)  # already fed: not a second loss point
    mon.close()
    assert scalars(tmp_path / "mr")["train/loss"] == [(0, 0.0), (10, 10.0), (20, 20.0)]


def test_bad_argument_names_itself():
    with pytest.raises(TypeError, match="HealthTracker"):
        HealthTracker(42)


@pytest.mark.slow
def test_two_processes_under_torchrun(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(_free_port()),
         str(Path(__file__).with_name("accelerate_ddp_worker.py")), str(tmp_path)],
        env=env, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-4000:]
    for rank in (0, 1):
        record = json.loads((tmp_path / f"rank{rank}.json").read_text())
        assert record["monitor"] == record["accelerate"] == [rank, 2]
    assert len([p for p in os.listdir(tmp_path / "mr") if "tfevents" in p]) == 1  # rank 0 writes
    ours, theirs = scalars(tmp_path / "mr"), dict(scalars(tmp_path / "acc")["train_loss"])
    assert [s for s, _ in ours["train/loss"]] == [0, 10, 20]
    for step, value in ours["train/loss"]:
        assert value == pytest.approx(theirs[step], rel=1e-5)  # the mean over both ranks


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
