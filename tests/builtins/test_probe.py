"""Leave-one-out k-NN probe accuracy (k = 20, cosine); numpy / torch / JAX.

Reference: a plain-numpy loop (one row at a time, collections.Counter vote, tie to the nearest
neighbour's class). Accuracy is a count over rows, so agreement is exact (tolerance 0) on
continuous random features, where no two similarities tie (abs 1e-6 < 1/n: float32 on JAX).
"""

from __future__ import annotations

import threading
from collections import Counter

import numpy as np
import pytest

import metricreg as mr
from metricreg import arrays as A
from metricreg.builtins import probe as P
from tests.builtins.conftest import is_framework_array, value
from tests.core.eventfiles import scalars


def reference(features: np.ndarray, labels: np.ndarray, k: int = 20) -> float:
    f = features.reshape(len(features), -1).astype(np.float64)
    f = f / np.linalg.norm(f, axis=1, keepdims=True)
    k = min(k, len(f) - 1)
    hits = 0
    for i in range(len(f)):
        sims = f @ f[i]
        sims[i] = -np.inf
        nearest = np.argsort(-sims, kind="stable")[:k]
        neighbour_labels = [labels[j] for j in nearest]
        counts = Counter(neighbour_labels)
        top = max(counts.values())
        vote = next(lab for lab in neighbour_labels if counts[lab] == top)
        hits += vote == labels[i]
    return hits / len(f)


def clusters(n: int, d: int, classes: int, spread: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((classes, d))
    labels = rng.integers(0, classes, n)
    return centres[labels] + spread * rng.standard_normal((n, d)), labels


@pytest.mark.parametrize(
    "n,d,classes,spread",
    [(300, 16, 5, 1.0), (700, 8, 3, 2.0), (60, 128, 4, 3.0), (15, 4, 2, 0.5)],  # n ≫ d, several blocks, n < d, n ≤ k
)
def test_matches_the_numpy_loop_reference(fw, n, d, classes, spread):
    features, labels = clusters(n, d, classes, spread, seed=n)
    got = P.knn_accuracy((fw.array(features), fw.array(labels)))
    host = A.is_host_data(fw.array(features))
    assert isinstance(got, A.Deferred) if host else is_framework_array(got, fw)
    ref = reference(features.astype(np.float32) if fw.name == "jax" else features, labels)
    assert value(got) == pytest.approx(ref, abs=1e-6)  # < 1/n: the same count of hits (float32 on JAX)
    assert 0.0 < ref < 1.0 or n == 15


def test_device_route_matches_on_torch_and_on_float16():
    torch = pytest.importorskip("torch")
    features, labels = clusters(400, 12, 4, 1.5, seed=7)
    got = P._knn(torch.from_numpy(features), torch.from_numpy(labels))
    assert isinstance(got, torch.Tensor) and value(got) == pytest.approx(reference(features, labels), abs=1e-12)
    half = features.astype(np.float16)
    assert value(P.knn_accuracy({"features": half, "labels": labels})) == pytest.approx(
        reference(half.astype(np.float64), labels), abs=1e-6
    )  # float16 is compared in float32: the same count of hits


def test_structured_inputs_separable_random_and_bad_input():
    features, labels = clusters(200, 8, 4, 0.01, seed=1)
    assert value(P.knn_accuracy((features, labels))) == 1.0  # well-separated classes
    rng = np.random.default_rng(2)
    noise = value(P.knn_accuracy((rng.standard_normal((1000, 32)), rng.integers(0, 10, 1000))))
    assert 0.03 < noise < 0.2  # chance is 0.1
    with pytest.raises(ValueError, match="probe: 200 feature rows but 199 labels"):
        P.knn_accuracy((features, labels[:-1]))
    with pytest.raises(ValueError, match=r"probe: expected \(features, labels\)"):
        P.knn_accuracy(features)
    with pytest.raises(ValueError, match="labels \\(n,\\) class ids"):
        P.knn_accuracy((features, np.eye(4)[labels]))


def test_rows_above_the_cap_are_a_fixed_sample():
    features, labels = clusters(P.PROBE_MAX_ROWS + 500, 8, 3, 2.0, seed=3)
    idx = np.asarray(A.row_indices(len(features), P.PROBE_MAX_ROWS, np, None))
    ref = reference(features[idx], labels[idx])
    assert value(P.knn_accuracy((features, labels))) == pytest.approx(ref, abs=1e-12)


def test_monitor_computes_on_the_writer_thread_every_1000_steps(tmp_path, monkeypatch):
    features, labels = clusters(300, 16, 5, 1.0, seed=300)
    threads = []
    real = P._knn

    def recording(*args, **kwargs):
        threads.append(threading.current_thread().name)
        return real(*args, **kwargs)

    monkeypatch.setattr(P, "_knn", recording)
    calls = []

    def make_probe():
        calls.append(1)
        return features, labels

    with mr.Monitor(str(tmp_path)) as mon:
        for step in range(1001):
            mon.step(step, probe=make_probe)
        assert threading.current_thread().name not in threads
    assert len(calls) == 2  # the callable runs at due steps only
    assert threads and threading.current_thread().name not in threads
    written = scalars(tmp_path)["train/probe/knn_accuracy"]
    assert [s for s, _ in written] == [0, 1000]
    assert written[0][1] == pytest.approx(reference(features, labels), abs=1e-6)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_features_give_nan_not_a_number_that_looks_real(fw, bad):
    """A NaN or inf feature row used to sort somewhere among the neighbours and give a plausible accuracy
    (0.36 for 0.385 clean) while the linear probe wrote NaN (review12 regression)."""
    features, labels = clusters(200, 8, 3, 1.0, seed=5)
    features[17, 3] = bad
    got = P.knn_accuracy((fw.array(features), fw.array(labels)))
    assert np.isnan(value(got))
    assert np.isnan(value(P.linear_accuracy((fw.array(features), fw.array(labels)))))


def test_labels_from_another_host_framework_or_a_list_are_used():
    """Encoder features as a torch CPU tensor with the dataset's numpy labels (the usual probe set) failed with
    "Multiple namespaces for array inputs", naming neither the probe nor its labels; a list of labels was
    refused (review12 regression). Device features with host labels are an error naming both."""
    torch = pytest.importorskip("torch")
    features, labels = clusters(300, 8, 3, 1.0, seed=6)
    knn, linear = reference(features, labels), value(P.linear_accuracy((features, labels)))
    for probe_set in (
        (torch.from_numpy(features), labels),
        (torch.from_numpy(features), labels.tolist()),
        (features, tuple(labels.tolist())),
        (features, torch.from_numpy(labels)),
    ):
        assert value(P.knn_accuracy(probe_set)) == pytest.approx(knn, abs=1e-12)
        assert value(P.linear_accuracy(probe_set)) == pytest.approx(linear, abs=1e-12)
    jnp = pytest.importorskip("jax.numpy")
    with pytest.raises(ValueError, match="probe: features are a .* but labels a ndarray: pass the labels in the"):
        P.knn_accuracy((jnp.asarray(features), labels))


@pytest.mark.parametrize("rows", [0, 1, 4])
def test_a_probe_set_too_small_is_an_error_naming_metric_input_and_minimum(tmp_path, rows):
    """Too few rows (or an empty probe set) used to write nothing and report nothing (review12 regression):
    each probe now fails with a message naming itself, the input and the minimum; training continues."""
    features, labels = clusters(max(rows, 1), 8, 3, 1.0, seed=7)
    features, labels = features[:rows], labels[:rows]
    with mr.Monitor(str(tmp_path)) as mon:
        for step in range(2):
            mon.step(step, probe=(features, labels))
        errors = mon.errors
    written = scalars(tmp_path)
    expected = {"probe/linear_accuracy": 5} if rows >= 2 else {"probe/knn_accuracy": 2, "probe/linear_accuracy": 5}
    for metric, minimum in expected.items():
        (error,) = [e for name, e in errors.items() if name.endswith(metric)]
        assert f"{metric}: input 'probe' has {rows} rows, needs at least {minimum}" in error["last_message"]
        assert f"train/{metric}" not in written
    if rows >= 2:
        assert [s for s, _ in written["train/probe/knn_accuracy"]] == [0]
