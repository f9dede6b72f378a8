"""Shared integration pieces: the trainer's rank decides who writes; eval keys; stop-on-alert plugin."""

from __future__ import annotations

import os

import pytest

import metricreg as mr
from metricreg.health import Alert
from metricreg.integrations._common import ParamGroups, StopOn, make_monitor, split_key


def test_a_trainer_rank_other_than_zero_never_writes(tmp_path):
    # torch.distributed is not initialised here: only the trainer knows this process is rank 1.
    mon = make_monitor(tmp_path / "run", rank=1, world_size=2)
    mon.step(0, loss=1.0)
    mon.close()
    assert mon.rank == 1
    assert mon.event_file is None
    assert not (tmp_path / "run").exists() or not any("tfevents" in n for n in os.listdir(tmp_path / "run"))


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("val_loss", ("val", "loss")),
        ("val/acc", ("val", "acc")),
        ("val_loss_epoch", ("val", "loss")),
        ("val_loss_step", None),
        ("test_f1", ("test", "f1")),
        ("train_loss", None),
        ("validation", None),
    ],
)
def test_eval_keys(key, expected):
    assert split_key(key, {"val": "val", "test": "test"}) == expected


def test_param_groups_snapshot_keeps_the_rate_read():
    groups = [{"lr": 0.1, "name": "enc", "params": []}, {"lr": 0.01}]
    snap = ParamGroups(groups)
    groups[0]["lr"] = 0.05  # a scheduler stepping afterwards
    assert snap.param_groups == [{"lr": 0.1, "name": "enc"}, {"lr": 0.01}]


def test_stop_on_matches_level_and_tag(tmp_path):
    with pytest.raises(ValueError, match="stop_on"):
        StopOn("sometimes")
    plugin = StopOn("critical", tags=("train/stability/*",))
    with mr.Monitor(tmp_path / "run", builtins=False) as mon:

        def alert(tag, level):
            return Alert(tag, level, "above", 1.0, 2.0, 5, 5, True)

        plugin.metricreg_on_alert(alert("train/stability/spikes/rate", "warn"), mon)
        plugin.metricreg_on_alert(alert("train/optimization/grad_norm", "critical"), mon)
        assert not mon.should_stop
        plugin.metricreg_on_alert(alert("train/stability/spikes/rate", "critical"), mon)
        assert mon.should_stop and "spikes/rate critical at step 5" in mon.stop_reason
