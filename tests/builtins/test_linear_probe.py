"""Linear-probe accuracy (closed-form ridge, fixed 80/20 split); numpy / torch / JAX, halves.

Reference: scikit-learn's ``StandardScaler`` fitted on the training rows followed by
``RidgeClassifier(alpha=0.1 * n_train)`` (±1 targets, fitted intercept), an implementation
independent of ours (its own solvers, its own target coding). Accuracy is a count over the held-out
rows, so agreement is exact (tolerance 0, asserted as < 1e-9) on continuous inputs, where no two
class scores tie; inputs are compared in the precision they were given in (float32 on JAX without
x64, float16/bfloat16 rounded).
"""

from __future__ import annotations

import math
import threading

import numpy as np
import pytest

import metricreg as mr
from metricreg import arrays as A
from metricreg.builtins import probe as P
from tests.builtins.conftest import value
from tests.core.eventfiles import scalars

sklearn = pytest.importorskip("sklearn")
from sklearn.linear_model import RidgeClassifier  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402


def reference(features: np.ndarray, labels: np.ndarray) -> float:
    x = features.reshape(len(features), -1).astype(np.float64)
    test = P.held_out_rows(len(x))
    scaler = StandardScaler().fit(x[~test])
    clf = RidgeClassifier(alpha=P.RIDGE_ALPHA * int((~test).sum())).fit(scaler.transform(x[~test]), labels[~test])
    return float(np.mean(clf.predict(scaler.transform(x[test])) == labels[test]))


def clusters(n: int, d: int, classes: int, spread: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((classes, d))
    labels = rng.integers(0, classes, n)
    return centres[labels] + spread * rng.standard_normal((n, d)), labels


def low_rank(n: int, d: int, rank: int, classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    latent, labels = clusters(n, rank, classes, 1.0, seed)
    return latent @ np.random.default_rng(seed + 1).standard_normal((rank, d)), labels


def noise(n: int, d: int, classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d)), rng.integers(0, classes, n)


CASES = {
    "random": lambda: noise(1000, 32, 10, 1),
    "separable": lambda: clusters(300, 16, 5, 0.05, 2),
    "overlapping": lambda: clusters(700, 8, 3, 2.0, 3),
    "low_rank": lambda: low_rank(400, 64, 3, 4, 4),
    "n<d": lambda: clusters(60, 128, 4, 3.0, 5),
    "n>>d": lambda: clusters(3000, 4, 6, 1.5, 6),
    "two_classes": lambda: clusters(200, 10, 2, 3.0, 7),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_matches_scikit_learn_ridge_classifier(fw, case):
    features, labels = CASES[case]()
    got = P.linear_accuracy((fw.array(features), fw.array(labels)))
    assert isinstance(got, A.Deferred)  # always computed on the writer thread, never here
    given = np.asarray(A.to_host(fw.array(features)), dtype=np.float64)  # float32 on JAX without x64
    ref = reference(given, labels)
    assert abs(value(got) - ref) < 1e-9
    if case == "separable":
        assert ref == 1.0
    elif case == "random":
        assert 0.03 < ref < 0.2  # chance is 0.1
    else:
        assert 0.3 < ref < 1.0


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_torch_halves_are_probed_in_float64(dtype):
    torch = pytest.importorskip("torch")
    features, labels = clusters(500, 24, 5, 1.5, seed=8)
    half = torch.from_numpy(features).to(getattr(torch, dtype))
    got = P.linear_accuracy({"features": half, "labels": torch.from_numpy(labels)})
    rounded = half.to(torch.float64).numpy()
    assert abs(value(got) - reference(rounded, labels)) < 1e-9
    assert 0.5 < value(got) < 1.0


def test_split_is_fixed_and_spread_over_ordered_data():
    held = P.held_out_rows(1000)
    assert held.sum() == 200 and np.array_equal(held, P.held_out_rows(1000))
    sorted_labels = np.repeat(np.arange(10), 100)  # a probe set sorted by class
    assert set(np.bincount(sorted_labels[held])) <= set(range(15, 26))  # every class ≈ 20 % held out


def test_rows_above_the_cap_are_the_knn_probes_sample():
    features, labels = clusters(P.PROBE_MAX_ROWS + 300, 8, 3, 2.0, seed=9)
    idx = np.asarray(A.row_indices(len(features), P.PROBE_MAX_ROWS, np, None))
    assert value(P.linear_accuracy((features, labels))) == pytest.approx(
        reference(features[idx], labels[idx]), abs=1e-12
    )


def test_degenerate_and_bad_inputs():
    features, labels = clusters(40, 6, 3, 1.0, seed=10)
    with pytest.raises(ValueError, match="input 'probe' has 4 rows, needs at least 5"):  # none to hold out
        P.linear_accuracy((features[:4], labels[:4]))
    nan = features.copy()
    nan[3, 2] = np.nan
    assert math.isnan(value(P.linear_accuracy((nan, labels))))
    constant = np.ones_like(features)  # a fully collapsed representation: the majority class
    got = value(P.linear_accuracy((constant, labels)))
    held = P.held_out_rows(len(labels))
    majority = np.bincount(labels[~held]).argmax()
    assert got == pytest.approx(np.mean(labels[held] == majority))
    with pytest.raises(ValueError, match="probe: 40 feature rows but 39 labels"):
        P.linear_accuracy((features, labels[:-1]))
    with pytest.raises(ValueError, match=r"probe: expected \(features, labels\)"):
        P.linear_accuracy(features)


def test_monitor_fits_on_the_writer_thread_every_1000_steps(tmp_path, monkeypatch):
    features, labels = clusters(300, 16, 5, 1.0, seed=11)
    threads = []
    real = P._ridge_accuracy

    def recording(*args, **kwargs):
        threads.append(threading.current_thread().name)
        return real(*args, **kwargs)

    monkeypatch.setattr(P, "_ridge_accuracy", recording)
    at_step_0 = features.copy()
    with mr.Monitor(str(tmp_path)) as mon:
        for step in range(1001):
            mon.step(step, probe=lambda: (features, labels))
            if step == 0:  # overwritten in place after the step: the value written is the value at step 0
                features[...] = np.random.default_rng(12).standard_normal(features.shape)
    assert threads and threading.current_thread().name not in threads
    written = scalars(tmp_path)["train/probe/linear_accuracy"]
    assert [s for s, _ in written] == [0, 1000]
    assert written[0][1] == pytest.approx(reference(at_step_0, labels), abs=1e-6)  # float32 in the event file
    assert written[0][1] > 0.9 and written[1][1] < 0.5  # clusters, then noise
