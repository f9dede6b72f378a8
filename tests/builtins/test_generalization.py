"""Generalization gap: training accumulation in `shared`, gaps at each eval, directions, Prechelt GL."""

from __future__ import annotations

import math

import numpy as np
import pytest

from metricreg import directions
from metricreg.builtins import generalization as G
from metricreg.inputs import Inputs
from metricreg.manifest import CONVENTIONAL
from tests.builtins.conftest import close, is_framework_array, values


def inputs(**raw):
    return Inputs(raw, {}, {"step": 0, "event": "step", "shared": {}})


def run(fw, train_series, evals, every=1):
    """Feed training values, then evals; returns the gap results (list per eval)."""
    shared: dict = {}
    state: dict = {}
    out = []
    for chunk, ev in zip(train_series, evals, strict=True):
        for i, row in enumerate(chunk):
            if i % every == 0:
                G.accumulate(inputs(**{k: fw.array(v) for k, v in row.items()}, batch_size=32), shared)
        res = G.gap(inputs(**{k: fw.array(v) for k, v in ev.items()}), shared, state, split="val")
        out.append(res)
    return out


def test_signed_gaps_relative_gaps_and_gl(fw):
    train = [[{"loss": 1.0, "accuracy": 0.9}, {"loss": 3.0, "accuracy": 0.7}], [{"loss": 0.5, "accuracy": 0.95}]]
    evals = [{"loss": 2.5, "accuracy": 0.6}, {"loss": 3.0, "accuracy": 0.7}]
    first, second = run(fw, train, evals)
    # CPU torch scalars are read as host floats (A.host_scalar, as accumulate does): numpy results, the same
    # numbers on the training and the writer thread; other frameworks' arrays stay in their framework.
    host = fw.name == "torch"
    assert all(
        (isinstance(v, (np.ndarray, np.generic)) if host else is_framework_array(v, fw)) or isinstance(v, float)
        for v in first.values()
    )
    first, second = values(first), values(second)
    # loss: eval − train mean (2.0) → 0.5 worse on eval; accuracy: train mean (0.8) − eval → 0.2 worse.
    assert close(first["loss"], 0.5, fw.rtol) and close(first["loss_relative"], 0.25, fw.rtol)
    assert close(first["accuracy"], 0.2, fw.rtol) and close(first["accuracy_relative"], 0.25, fw.rtol)
    # A classifier (an accuracy at eval): no GL, whose rise over-confidence alone explains.
    assert "loss_gl" not in first and "accuracy_gl" not in first and "batch_size" not in first
    # The second window holds only the samples since the first eval.
    assert close(second["loss"], 2.5, fw.rtol) and close(second["loss_relative"], 5.0, fw.rtol)


def test_gl_for_runs_without_a_classification_score(fw):
    train = [[{"loss": 1.0}], [{"loss": 0.5}], [{"loss": 0.4}]]
    evals = [{"loss": 2.5, "psnr": 20.0}, {"loss": 3.0, "psnr": 19.0}, {"loss": 2.0, "psnr": 21.0}]
    first, second, third = (values(r) for r in run(fw, train, evals))
    assert close(first["loss_gl"], 0.0, fw.rtol, atol=1e-6)
    assert close(second["loss_gl"], 100 * (3.0 / 2.5 - 1), fw.rtol)
    assert close(third["loss_gl"], 0.0, fw.rtol, atol=1e-6)  # a new best


def test_gl_of_a_negative_loss_is_undefined_not_an_improvement(fw):
    """Regression: val −0.9 → −0.3 gave GL −67 (never alarms); GL needs a positive error."""
    train = [[{"loss": -1.0}], [{"loss": -1.0}]]
    evals = [{"loss": -0.9}, {"loss": -0.3}]
    _, second = (values(r) for r in run(fw, train, evals))
    assert math.isnan(second["loss_gl"])
    assert G.HEALTH["loss_gl"].nonfinite is None  # NaN here means "undefined", not an alert


def test_python_numbers_and_callables():
    shared: dict = {}
    G.accumulate(inputs(loss=2.0, psnr=30.0, embeddings=lambda: 1 / 0), shared)
    G.accumulate(inputs(loss=4.0, psnr=32.0), shared)
    res = values(G.gap(inputs(loss=3.3, psnr=28.0, other=np.ones(3)), shared, {}, split="val"))
    assert close(res["loss"], 0.3, 1e-12)
    assert close(res["psnr"], 3.0, 1e-12) and close(res["psnr_relative"], 3.0 / 31.0, 1e-12)
    assert set(res) == {"loss", "loss_relative", "loss_gl", "psnr", "psnr_relative"}


def test_first_eval_of_a_new_split_uses_everything_since_start():
    shared: dict = {}
    G.accumulate(inputs(loss=1.0), shared)
    assert G.gap(inputs(loss=2.0), shared, {}, split="val")["loss"] == 1.0
    G.accumulate(inputs(loss=3.0), shared)
    test = values(G.gap(inputs(loss=2.0), shared, {}, split="test"))
    assert test["test/loss"] == 0.0  # since start: mean(1, 3) = 2; a second split is prefixed
    val = values(G.gap(inputs(loss=2.0), shared, {}, split="val"))
    assert val["loss"] == -1.0  # since the previous val eval: 3


def test_no_training_values_no_gap():
    assert G.gap(inputs(loss=1.0), {}, {}, split="val") is None
    assert G.gap(inputs(loss=1.0), None, {}) is None


def test_zero_train_mean_gives_nan_relative_gap():
    shared: dict = {}
    G.accumulate(inputs(loss=0.0), shared)
    res = values(G.gap(inputs(loss=1.0), shared, {}, split="val"))
    assert res["loss"] == 1.0 and math.isnan(res["loss_relative"])


@pytest.mark.parametrize(
    ("name", "direction"),
    [
        ("loss", "lower_is_better"),
        ("val_loss", "lower_is_better"),
        ("accuracy", "higher_is_better"),
        ("top1_acc", "higher_is_better"),
        ("top1_error", "lower_is_better"),
        ("psnr", "higher_is_better"),
        ("clip_sim", "higher_is_better"),
        ("mIoU", "higher_is_better"),
        ("perplexity", "lower_is_better"),
        ("something", "lower_is_better"),
    ],
)
def test_directions_by_name(name, direction):
    assert G.direction_of(name) == direction


def test_registered_direction_wins():
    directions.set_direction("bleu_custom_zz", "lower_is_better")
    try:
        assert G.direction_of("bleu_custom_zz") == "lower_is_better"
    finally:
        directions._DIRECTIONS.pop("bleu_custom_zz")
    with pytest.raises(ValueError):
        directions.set_direction("x", "up")


def test_health_rules_are_the_manifest_conventions():
    assert G.HEALTH["loss_relative"] == CONVENTIONAL["gap/*_relative"]
    assert G.HEALTH["accuracy_relative"] == CONVENTIONAL["gap/*_relative"]
    assert G.HEALTH["loss_gl"] == CONVENTIONAL["gap/*_gl"]
    assert G.HEALTH["loss"].warn_above is None
    assert not G.HEALTH["loss_relative"].has_thresholds  # explodes as the training loss nears 0
    assert G.HEALTH["accuracy"].critical_above is None  # the raw gap is shown; the _overfit member judges
    assert G.HEALTH["accuracy_overfit"].critical_above == 0.08 and G.HEALTH["top1_overfit"].critical_above == 0.08


def test_score_gap_counts_only_while_the_eval_loss_is_above_its_best(fw):
    train = [[{"loss": 0.1, "accuracy": 1.0}]] * 4
    # eval loss: 0.5 (first), 0.4 (new best), 0.45 (above best), 0.42 (still above 0.4)
    evals = [{"loss": lv, "accuracy": 0.8} for lv in (0.5, 0.4, 0.45, 0.42)]
    got = [values(r) for r in run(fw, train, evals)]
    assert [close(r["accuracy"], 0.2, fw.rtol) for r in got] == [True] * 4
    overfit = [r["accuracy_overfit"] for r in got]
    assert close(overfit[0], 0.0, fw.rtol, atol=1e-12) and close(overfit[1], 0.0, fw.rtol, atol=1e-12)
    assert close(overfit[2], 0.2, fw.rtol) and close(overfit[3], 0.2, fw.rtol)
    # Without an eval loss the gap alone is judged.
    alone = values(run(fw, [[{"accuracy": 1.0}]], [{"accuracy": 0.8}])[0])
    assert close(alone["accuracy_overfit"], 0.2, fw.rtol)
    metric = {m.name: m for m in G.METRICS}["gap"]
    assert metric.split == "gap" and metric.schedule.event == "eval"


def test_accumulate_skips_non_scalars_by_type_but_never_a_scalar():
    """accumulate remembers types that are never scalars (a model, None, a bool): a later scalar of another
    type under the same name, and every scalar beside them, is still summed exactly."""
    torch = pytest.importorskip("torch")
    model = torch.nn.Linear(2, 2)
    shared: dict = {}
    given = [None, True, torch.tensor(0.5), np.float32(1.5), 2, torch.tensor([0.25, 0.75])]
    for value in given:  # the same name: None and the bool are skipped, the rest summed
        G.accumulate(inputs(loss=value, model=model, accuracy=torch.tensor(0.75), flag=False), shared)
    window = shared[G.WINDOWS_KEY]["*"]
    assert set(window) == {"loss", "accuracy"}  # neither the model nor the bools
    assert window["loss"][1] == 3 and float(window["loss"][0]) == 0.5 + 1.5 + 2.0  # the 2-element tensor is no scalar
    assert window["accuracy"] == [0.75 * len(given), len(given)]
