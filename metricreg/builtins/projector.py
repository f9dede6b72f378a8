"""Embeddings for TensorBoard's own PROJECTOR tab (PCA / t-SNE / UMAP of the rows, coloured by label).

Input: ``projector`` = features, (features, labels), a dict of those (one projector entry per key:
``{"image": z_img, "text": (z_txt, captions)}``), or a function returning any of them (called only
at due steps). ``features`` is (n, ...) (flattened to (n, d)); ``labels`` n values (class ids or
strings) shown as the projector's metadata.

Opt-in: nothing is written unless ``projector=`` is given, because every write puts a text file on
disk (≈ 12 bytes per value: ≈ 3 MB for 1,000 × 256). Then every 5000 steps, up to 1,000 rows (a
fixed pseudo-random selection, the same rows each time, so steps can be compared), and at most
1,024,000 values per write (≈ 12 MB): wide features get ⌊1,024,000 / d⌋ rows, and d above
1,024,000 is an error naming the input (project the features first). Kind
``embedding``: the writer thread writes the files (:mod:`metricreg.projector`); the training
thread only takes a copy (host data) or starts an asynchronous device-to-host copy (torch CUDA).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from metricreg import arrays as A
from metricreg.hookspecs import hookimpl
from metricreg.projector import Embedding
from metricreg.spec import Metric

PROJECTOR_EVERY = 5000
PROJECTOR_MAX_ROWS = 1000
PROJECTOR_MAX_VALUES = 1_024_000  # ≈ 12 MB of text per write


def _unpack(value: Any) -> tuple[Any, Any]:
    if A.is_array(value):
        return value, None
    if isinstance(value, Sequence) and not isinstance(value, str) and len(value) == 2:
        return value[0], value[1]
    raise ValueError(f"projector: expected features, (features, labels) or a dict of them, got {type(value).__name__}")


def projector(projector: Any) -> Any:
    """Up to 1,000 rows of ``features`` (and their labels) for the PROJECTOR tab, written off the training thread."""
    features, labels = _unpack(projector)
    if not A.is_array(features) or features.ndim < 2:
        raise ValueError(
            f"projector: features must be an (n, d) array, got {type(features).__name__} "
            f"of shape {tuple(getattr(features, 'shape', ()))}"
        )
    n, d = int(features.shape[0]), math.prod(tuple(features.shape[1:]))
    if n == 0 or d == 0:
        return None
    if d > PROJECTOR_MAX_VALUES:
        raise ValueError(
            f"projector: features have {d:,} values per row (shape {tuple(features.shape)}), more than the "
            f"{PROJECTOR_MAX_VALUES:,} written per step: pass a projection (an embedding), not the raw data"
        )
    cap = min(PROJECTOR_MAX_ROWS, PROJECTOR_MAX_VALUES // d)  # rows and bytes on disk both bounded
    if labels is not None:
        if not A.is_array(labels):
            labels = np.asarray(list(labels))
        if labels.ndim != 1 or int(labels.shape[0]) != n:
            raise ValueError(
                f"projector: {n} feature rows need n labels (one per row), got shape {tuple(labels.shape)}"
            )
    xp = A.namespace(features)
    features = xp.reshape(A.detach(features), (n, d))
    if n > cap:
        features = xp.take(features, A.row_indices(n, cap, xp, A.device_of(features)), axis=0)
        if labels is not None:
            lp = A.namespace(labels)
            labels = lp.take(labels, A.row_indices(n, cap, lp, A.device_of(labels)), axis=0)
    if A.is_torch(features) and features.device.type != "cpu" and features.dtype not in (xp.float32, xp.float64):
        features = xp.astype(features, xp.float32)  # halves: widened on the device (async) for the host copy
    if labels is not None and A.is_host_data(labels):
        labels = np.array(A.to_host(labels))  # a copy in the labels' own dtype (class ids stay integers)
    arrays = {"tensor": features} if labels is None else {"tensor": features, "labels": A.detach(labels)}
    if all(A.is_host_data(a) for a in arrays.values()):
        return A.on_writer(Embedding, arrays)
    return A.Deferred(A.HostJob(arrays, lambda host: Embedding(**host)))


METRICS = [
    Metric(
        "projector",
        compute=projector,
        every=PROJECTOR_EVERY,
        kind="embedding",
        fan_out="projector",
        description="Rows of the given embeddings (and labels) written for TensorBoard's PROJECTOR tab.",
    ),
]


@hookimpl
def metricreg_register_inputs(register):
    register(
        "projector",
        description="features, (features, labels) or a dict of them: rows for TensorBoard's PROJECTOR tab (opt-in)",
    )


@hookimpl
def metricreg_register_metrics(register):
    for metric in METRICS:
        register(metric)
