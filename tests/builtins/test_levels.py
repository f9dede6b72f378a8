"""Prediction cosine / NMSE fanned out over levels; numpy / torch / JAX.

Reference: plain numpy per level (tolerance fw.rtol, atol 1e-7 for cosines near 0); the
single-pair metrics keep their values when given arrays.
"""

from __future__ import annotations

import numpy as np
import pytest

import metricreg as mr
from metricreg.builtins import levels as L
from metricreg.builtins import prediction as P
from tests.builtins.conftest import close, value, values
from tests.core.eventfiles import load, scalars


def level_data(seed: int = 0) -> tuple[dict, dict]:
    rng = np.random.default_rng(seed)
    targets = {f"l{i}": rng.standard_normal((40, 8)) + i for i in range(3)}
    predictions = {k: t + (0.2 + int(k[1])) * rng.standard_normal(t.shape) for k, t in targets.items()}
    return predictions, targets


def ref_cosine(p: np.ndarray, t: np.ndarray) -> dict[str, float]:
    cos = (p * t).sum(1) / np.linalg.norm(p, axis=1) / np.linalg.norm(t, axis=1)
    return {"mean": cos.mean(), "std": cos.std(ddof=1), "min": cos.min(), "max": cos.max()}


def ref_nmse(p: np.ndarray, t: np.ndarray) -> float:
    return float(((p - t) ** 2).sum() / ((t - t.mean(0)) ** 2).sum())


def test_each_level_matches_the_numpy_reference(fw):
    predictions, targets = level_data()
    pairs = L.derive_pairs(fw.tree(predictions), fw.tree(targets))
    assert list(pairs) == ["l0", "l1", "l2"]
    for level, pair in pairs.items():
        got = values(L.level_cosine(pair))
        for k, ref in ref_cosine(predictions[level], targets[level]).items():
            assert close(got[k], ref, fw.rtol, atol=1e-7), (level, k)
        assert close(value(L.level_nmse(pair)), ref_nmse(predictions[level], targets[level]), fw.rtol), level


def test_plain_arrays_leave_the_single_pair_metrics_alone(fw):
    predictions, targets = level_data()
    p, t = fw.array(predictions["l1"]), fw.array(targets["l1"])
    assert L.derive_pairs(p, t) is None
    assert L.level_cosine(None) is None and L.level_nmse(None) is None
    assert close(value(P.nmse(p, t)), ref_nmse(predictions["l1"], targets["l1"]), fw.rtol)
    assert P.cosine(fw.tree(predictions), fw.tree(targets)) is None  # dicts: the levels metrics' job
    assert P.nmse(fw.tree(predictions), fw.tree(targets)) is None


def test_mismatched_levels_and_malformed_pairs_are_named():
    predictions, targets = level_data()
    with pytest.raises(ValueError, match=r"only in predictions \['l2'\], only in targets \[\]"):
        L.derive_pairs(predictions, {k: targets[k] for k in ("l0", "l1")})
    with pytest.raises(ValueError, match="predictions is a dict of levels but targets is a ndarray"):
        L.derive_pairs(predictions, targets["l0"])
    with pytest.raises(ValueError, match=r"each level must be a \(prediction, target\) pair.*length 3"):
        L.level_cosine((1, 2, 3))


def test_monitor_writes_one_family_per_level(tmp_path):
    predictions, targets = level_data()
    with mr.Monitor(str(tmp_path)) as mon:
        for step in range(101):
            mon.step(step, predictions=predictions, targets=targets)
        mon.step(200, prediction_pairs={"l0": (predictions["l0"], targets["l0"])})
    written = scalars(tmp_path)
    for level in ("l0", "l1", "l2"):
        ref = ref_cosine(predictions[level], targets[level])
        assert written[f"train/levels/{level}/cosine/mean"][0][1] == pytest.approx(ref["mean"], rel=1e-6)
        assert written[f"train/levels/{level}/nmse"][0][1] == pytest.approx(
            ref_nmse(predictions[level], targets[level]), rel=1e-6
        )
    assert [s for s, _ in written["train/levels/l0/nmse"]] == [0, 100, 200]
    assert not any(tag.startswith("train/prediction/cosine") for tag in written)
    assert "_metricreg/errors" not in load(tmp_path).Tags()["tensors"]  # dicts are no failure of any metric
