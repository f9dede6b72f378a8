"""A label-aware online probe: leave-one-out k-NN accuracy of features on a held probe set.

Input: ``probe`` = (features, labels), or {"features": ..., "labels": ...}, or a function
returning either (called only at due steps, e.g. ``probe=lambda: (encoder(x_probe), y_probe)``).
``features`` is (n, ...) (flattened to (n, d)), ``labels`` n integer class ids.

Tag ``probe/knn_accuracy``, every 1000 steps, informational (no rule: the level depends on the
task). Definition: rows L2-normalised (cosine similarity); for each row i, its k = 20 most
similar other rows (i itself left out; k = n − 1 when n ≤ 20) vote with their labels, the class
with the most votes wins, a tie going to the tied class of the nearest neighbour; the value is
the fraction of rows whose vote equals their label. Rows above 4,096 are sub-sampled (fixed
pseudo-random selection, the same every time). Fewer than 2 rows (5 for the linear probe), an empty
probe set included, is an error naming the metric and the input (a failure like any other: training
continues), not a silent gap.

A second probe on the same input, ``probe/linear_accuracy``, fits a closed-form multinomial ridge
classifier (see :func:`linear_accuracy`) on a fixed 80 % of the rows and writes its accuracy on the
other 20 %; always in float64 numpy on the writer thread (O(n·d² + d³), or O(n²·d + n³) when
d > n: ≈ 8 ms on one core at n = 2,000, d = 256, 10 classes; the training thread pays a copy, or on
torch CUDA an asynchronous device-to-host copy).

Cost: O(n²·d) for the similarities (in the features' float32/float64; halves in float32) plus a
partial sort (top-k) per row, in blocks of 512 rows (memory O(512·n)). On host data (numpy,
torch CPU) the training thread only copies features and labels (≈ 0.1 ms for n = 4,096,
d = 256) and the writer thread computes (≈ 120 ms on one core at that size, ≈ 10 ms at
n = 1,024). On an accelerator (torch CUDA, JAX) it runs on the device, without host
synchronisation.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import array_api_compat as aac
import numpy as np

from metricreg import arrays as A
from metricreg.hookspecs import hookimpl
from metricreg.spec import Health, Metric

K = 20
PROBE_MAX_ROWS = 4096
PROBE_EVERY = 1000
BLOCK = 512
RIDGE_ALPHA = 0.1  # λ = RIDGE_ALPHA · n_train on standardised features (see linear_accuracy)
HELD_OUT = 5  # one row in HELD_OUT is held out for the linear probe's accuracy


def _unpack(probe: Any) -> tuple[Any, Any]:
    if isinstance(probe, Mapping):
        if "features" not in probe or "labels" not in probe:
            raise ValueError(f"probe: a dict needs the keys 'features' and 'labels', got {sorted(map(str, probe))}")
        return probe["features"], probe["labels"]
    if isinstance(probe, Sequence) and not isinstance(probe, str) and len(probe) == 2:
        return probe[0], probe[1]
    raise ValueError(
        f"probe: expected (features, labels) or {{'features': ..., 'labels': ...}}, got {type(probe).__name__}"
    )


def _labels_like(features: Any, labels: Any) -> Any:
    """Labels in the features' framework: a list, or host labels for host features of the other kind (no copy).

    Labels on another framework or device than the features would need a copy onto the device on the
    training thread: an error naming both instead.
    """
    if isinstance(labels, (list, tuple)):
        labels = np.asarray(labels)
    if not (A.is_array(features) and A.is_array(labels)) or A.namespace(features) is A.namespace(labels):
        return labels
    cpu_torch = A.is_torch(features) and features.device.type == "cpu"
    if cpu_torch and isinstance(labels, np.ndarray) and labels.dtype.kind in "biuf":  # (strings: no torch dtype)
        return sys.modules["torch"].from_numpy(np.ascontiguousarray(labels))
    if isinstance(features, np.ndarray) and A.is_torch(labels) and labels.device.type == "cpu":
        return labels.detach().numpy()
    raise ValueError(
        f"probe: features are a {type(features).__name__} but labels a {type(labels).__name__}: pass the labels "
        "in the features' framework and on their device"
    )


def _shapes(features: Any, labels: Any) -> tuple[int, int]:
    if not A.is_array(features) or not A.is_array(labels):
        raise ValueError(
            f"probe: features and labels must be arrays, got {type(features).__name__} and {type(labels).__name__}"
        )
    if features.ndim < 2 or labels.ndim != 1:
        raise ValueError(
            f"probe: features must be (n, d) and labels (n,) class ids, got shapes {tuple(features.shape)} and "
            f"{tuple(labels.shape)}"
        )
    if A.is_torch(features) and A.is_torch(labels) and features.device != labels.device:
        raise ValueError(
            f"probe: features are on {features.device} but labels on {labels.device}: put both on one device"
        )
    n = int(features.shape[0])
    if int(labels.shape[0]) != n:
        raise ValueError(f"probe: {n} feature rows but {int(labels.shape[0])} labels")
    return n, math.prod(tuple(features.shape[1:]))


def _enough_rows(metric: str, n: int, minimum: int) -> None:
    """Refuse a probe set too small to score: an error (counted as a failure) rather than a silent gap."""
    if n < minimum:
        raise ValueError(f"{metric}: input 'probe' has {n} rows, needs at least {minimum}")


def knn_accuracy(probe: Any) -> Any:
    """Leave-one-out k-NN accuracy (cosine, k = 20) of the probe set (see the module docstring)."""
    features, labels = _unpack(probe)
    labels = _labels_like(features, labels)
    n, d = _shapes(features, labels)
    _enough_rows("probe/knn_accuracy", n, 2)
    xp = A.namespace(features, labels)
    features, labels = A.detach(features), A.detach(labels)
    features = xp.reshape(features, (n, d))
    if n > PROBE_MAX_ROWS:
        idx = A.row_indices(n, PROBE_MAX_ROWS, xp, A.device_of(features))
        features = xp.take(features, idx, axis=0)
        labels = xp.take(labels, A.row_indices(n, PROBE_MAX_ROWS, xp, A.device_of(labels)), axis=0)
    if A.is_host_data(features) and A.is_host_data(labels):  # one copy here, the O(n²d) on the writer thread
        return A.on_writer(_knn_on_host, {"features": features, "labels": labels})
    return _knn(features, labels)


def _knn_on_host(features: Any, labels: Any) -> Any:
    """Writer thread: :func:`_knn` on host arrays; a non-finite row gives NaN, without numpy's RuntimeWarnings."""
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        return _knn(features, labels)


def _knn(features: Any, labels: Any, k: int = K) -> Any:
    xp = A.namespace(features, labels)
    # float32 stays float32 (ranking needs no more; the O(n²d) product is twice as fast), halves widen.
    f = A.detach(features) if features.dtype in (xp.float32, xp.float64) else xp.astype(features, xp.float32)
    f = f / xp.clip(xp.linalg.vector_norm(f, axis=1, keepdims=True), 1e-12, None)
    n = f.shape[0]
    k = min(k, n - 1)
    device = A.device_of(f)
    cols = xp.arange(n, device=device)
    ft = xp.matrix_transpose(f)
    correct = None
    for start in range(0, n, BLOCK):
        stop = min(start + BLOCK, n)
        sim = f[start:stop, :] @ ft
        rows = xp.arange(start, stop, device=device)
        sim = xp.where(cols[None, :] == rows[:, None], -xp.inf, sim)  # leave one out
        nearest = _nearest(xp, sim, k)
        votes_for = xp.reshape(xp.take(labels, xp.reshape(nearest, (-1,)), axis=0), (stop - start, k))
        # votes[i, j]: how many of row i's neighbours share neighbour j's label; argmax takes the first
        # (nearest) neighbour of a most-voted class.
        votes = xp.sum(xp.astype(votes_for[:, :, None] == votes_for[:, None, :], xp.int32), axis=2)
        winner = xp.argmax(votes, axis=1)
        pick = xp.arange(k, device=device)[None, :] == winner[:, None]
        hit = xp.logical_and(pick, votes_for == xp.take(labels, rows, axis=0)[:, None])
        part = xp.sum(xp.astype(hit, f.dtype))
        correct = part if correct is None else correct + part
    accuracy = correct / float(n)
    # a non-finite feature has no meaningful neighbours (NaN similarities sort anywhere): NaN, as the linear probe
    return xp.where(xp.all(xp.isfinite(f)), accuracy, xp.full_like(accuracy, math.nan))


def _nearest(xp: Any, sim: Any, k: int) -> Any:
    """Column indices of the k largest entries per row, most similar first (a partial sort where possible)."""
    if isinstance(sim, np.ndarray):
        part = np.argpartition(-sim, k - 1, axis=1)[:, :k] if k < sim.shape[1] else np.argsort(-sim, axis=1)
        order = np.argsort(-np.take_along_axis(sim, part, axis=1), axis=1, kind="stable")
        return np.take_along_axis(part, order, axis=1)
    if A.is_torch(sim):
        return sys.modules["torch"].topk(sim, k, dim=1).indices
    if "jax" in sys.modules and aac.is_jax_array(sim):
        return sys.modules["jax"].lax.top_k(sim, k)[1]
    return xp.argsort(-sim, axis=1, stable=True)[:, :k]


def linear_accuracy(probe: Any) -> Any:
    """Held-out accuracy of a closed-form multinomial ridge classifier on the probe set (writer thread).

    Split: the rows ``(i·a) mod n`` for i < ⌈n/5⌉ (``a`` the fixed multiplier of
    :func:`metricreg.arrays.row_indices`: pseudo-random, the same every time) are held out, the
    other rows train. Features are standardised with the training rows' mean and standard deviation
    (constant columns are left at 0); targets are one-hot over the classes seen in training, centred;
    ``W = (XᵀX + λI)⁻¹XᵀY`` (or ``Xᵀ(XXᵀ + λI)⁻¹Y`` when d > n_train) with the fixed rule
    ``λ = 0.1·n_train`` (mean squared error + 0.1·‖W‖²). A held-out row is predicted as the argmax
    of ``xW + ȳ`` (a class unseen in training counts as a miss). This equals scikit-learn's
    ``RidgeClassifier(alpha=λ)`` on the standardised features. Needs n ≥ 5 (else an error).
    """
    features, labels = _unpack(probe)
    labels = _labels_like(features, labels)
    n, d = _shapes(features, labels)
    _enough_rows("probe/linear_accuracy", n, HELD_OUT)
    xp = A.namespace(features, labels)
    features, labels = A.detach(features), A.detach(labels)
    features = xp.reshape(features, (n, d))
    if n > PROBE_MAX_ROWS:
        features = xp.take(features, A.row_indices(n, PROBE_MAX_ROWS, xp, A.device_of(features)), axis=0)
        labels = xp.take(labels, A.row_indices(n, PROBE_MAX_ROWS, xp, A.device_of(labels)), axis=0)
    if A.is_torch(features) and features.device.type != "cpu" and features.dtype not in (xp.float32, xp.float64):
        features = xp.astype(features, xp.float32)  # halves: widened on the device (async) for the host copy
    arrays = {"features": features, "labels": labels}
    if A.is_host_data(features) and A.is_host_data(labels):
        return A.on_writer(_ridge_accuracy, arrays)
    return A.Deferred(A.HostJob(arrays, lambda h: _ridge_accuracy(**h)))  # device: async copy, host float64


def held_out_rows(n: int) -> np.ndarray:
    """The boolean mask of the rows the linear probe holds out (the same every time for a given n)."""
    mask = np.zeros(n, dtype=bool)
    mask[np.asarray(A.row_indices(n, -(-n // HELD_OUT), np, None))] = True
    return mask


def _ridge_accuracy(features: Any, labels: Any) -> float:
    x = np.asarray(features, dtype=np.float64)
    y = np.asarray(labels)
    if not np.isfinite(x).all():
        return math.nan  # a non-finite representation has no meaningful probe accuracy
    test = held_out_rows(len(x))
    x_train, y_train, x_test, y_test = x[~test], y[~test], x[test], y[test]
    mean = x_train.mean(axis=0)
    std = x_train.std(axis=0)
    std[~(std > 0)] = 1.0  # constant (or non-finite) columns: centred to 0, not divided by 0
    x_train = (x_train - mean) / std
    x_test = (x_test - mean) / std
    classes, index = np.unique(y_train, return_inverse=True)
    targets = np.zeros((len(y_train), len(classes)))
    targets[np.arange(len(y_train)), index] = 1.0
    offset = targets.mean(axis=0)
    targets -= offset
    lam = RIDGE_ALPHA * len(x_train)
    if x_train.shape[1] <= len(x_train):
        gram = x_train.T @ x_train
        gram[np.diag_indices_from(gram)] += lam
        weights = np.linalg.solve(gram, x_train.T @ targets)
    else:  # n < d: the dual (kernel) form solves an n × n system instead
        kernel = x_train @ x_train.T
        kernel[np.diag_indices_from(kernel)] += lam
        weights = x_train.T @ np.linalg.solve(kernel, targets)
    predicted = classes[np.argmax(x_test @ weights + offset, axis=1)]
    return float(np.mean(predicted == y_test))


HEALTH_PROBE = Health(
    category="probe",
    direction="higher_is_better",
    title="k-NN probe accuracy",
    description="Leave-one-out 20-NN accuracy (cosine similarity, majority vote) of the features of a held "
    "probe set: how linearly-local the classes are in the representation. Informational: the level depends "
    "on the task; a fall while the loss improves is a sign the representation is degrading.",
    nonfinite=None,
)

HEALTH_LINEAR = Health(
    category="probe",
    direction="higher_is_better",
    title="linear probe accuracy",
    description="Held-out accuracy (fixed 80/20 split) of a closed-form ridge classifier (one-hot targets, "
    "standardised features, λ = 0.1·n_train) on the features of a held probe set: how linearly separable the "
    "classes are. Informational: the level depends on the task; a fall while the loss improves is a sign the "
    "representation is degrading.",
    nonfinite=None,
)

METRICS = [
    Metric(
        "probe/knn_accuracy",
        compute=knn_accuracy,
        every=PROBE_EVERY,
        health=HEALTH_PROBE,
        description=HEALTH_PROBE.description,
    ),
    Metric(
        "probe/linear_accuracy",
        compute=linear_accuracy,
        every=PROBE_EVERY,
        health=HEALTH_LINEAR,
        description=HEALTH_LINEAR.description,
    ),
]


@hookimpl
def metricreg_register_inputs(register):
    register("probe", description="(features, labels) of a held probe set, or a function returning them")


@hookimpl
def metricreg_register_metrics(register):
    for metric in METRICS:
        register(metric)
