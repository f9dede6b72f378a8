"""Non-finite inputs give NaN values and no numpy RuntimeWarning on the console.

The writer thread's float64 work (LiDAR, collapse_scale, the collapse family, the k-NN probe) printed
"invalid value encountered in subtract/divide/matmul" for inf inputs (review12 regression), although the
documented result is NaN in, NaN out. Through a real Monitor; ``catch_warnings(record=True)`` records the
writer thread's warnings too (the filter is process-wide).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import metricreg as mr
from tests.core.eventfiles import scalars


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_a_non_finite_input_writes_nan_without_runtime_warnings(tmp_path, bad):
    rng = np.random.default_rng(0)
    embeddings = rng.standard_normal((64, 8))
    embeddings[3, 2] = bad
    views = rng.standard_normal((32, 2, 8))
    views[1, 0, 0] = bad
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with mr.Monitor(str(tmp_path)) as mon:
            mon.step(0, embeddings=embeddings, views=views, probe=(embeddings, np.arange(64) % 3))
        errors = mon.errors
    assert [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)] == []
    assert errors == {}
    written = scalars(tmp_path)
    tags = ["train/lidar", "train/probe/knn_accuracy", "train/probe/linear_accuracy"]
    tags += [f"train/collapse_scale/{m}" for m in ("vicreg_var", "vicreg_cov", "dim_std_mean", "dim_std_min")]
    tags += ["train/collapse/effective_rank"]
    for tag in tags:
        assert math.isnan(written[tag][0][1]), tag
