"""mon.eval with real torchmetrics objects: they are computed, a collection fans out by member name."""

from __future__ import annotations

import pytest

pytest.importorskip("torchmetrics")

import torch
from torchmetrics import MeanSquaredError, MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score

import metricreg as mr

from .conftest import scalars


def test_eval_computes_metrics_and_collections(tmp_path):
    preds = torch.tensor([0, 1, 2, 2, 1, 0, 1, 2])
    target = torch.tensor([0, 1, 2, 1, 1, 0, 2, 2])
    accuracy = MulticlassAccuracy(num_classes=3, average="micro")
    collection = MetricCollection({"f1": MulticlassF1Score(num_classes=3), "acc_macro": MulticlassAccuracy(3)})
    accuracy.update(preds, target)
    collection.update(preds, target)
    mse = MeanSquaredError()
    mse.update(torch.tensor([1.0, 2.0]), torch.tensor([1.5, 2.0]))
    with mr.Monitor(tmp_path / "run") as mon:
        mon.step(0, loss=torch.tensor(1.0))
        mon.eval(0, accuracy=accuracy, mse=mse, scores=collection, loss=0.5)
    values = {tag: points[-1][1] for tag, points in scalars(tmp_path / "run").items()}
    assert values["val/accuracy"] == pytest.approx(accuracy.compute().item())
    assert values["val/accuracy"] == pytest.approx(6 / 8)
    assert values["val/mse"] == pytest.approx(0.125)
    assert values["val/f1"] == pytest.approx(collection["f1"].compute().item())
    assert values["val/acc_macro"] == pytest.approx(collection["acc_macro"].compute().item())
    assert "val/scores" not in values
    assert values["val/loss"] == 0.5
