"""Prediction quality and cross-modal alignment.

Inputs and tags (``train/…``, or ``<eval split>/…`` when given to ``mon.eval``):

==================================  =======================================================================
``prediction/cosine/{mean,std,      cosine similarity between matching rows of ``predictions`` and ``targets``
min,max}``                          ((n, d) or (..., d), flattened to rows; e.g. JEPA predictor vs target)
``prediction/nmse``                 Σ‖p − t‖² / Σ‖t − t̄‖² over rows: the fraction of the targets' variance
                                    left unexplained (0 perfect, 1 = no better than predicting the mean)
``prediction/psnr``                 10·log10(R² / MSE) between ``reconstruction`` and ``image`` (same shape),
                                    per image, then averaged over the batch: ndim ≥ 4, or 3-D (B, H, W)
                                    grayscale (a 3-D array whose last axis is 1, 3 or 4 is one H×W×C
                                    image); R = ``data_range`` if given, else 255 for integer images, else 1
``prediction/paired/{diag,offdiag,  for ``paired_embeddings`` = (a, b) or {"image": a, "text": b}: cosine of
margin,top1}``                      matched pairs (diag), mean over mismatched pairs (offdiag), their
                                    difference, and the fraction of rows of a whose most similar row of b is
                                    its own pair (retrieval top-1); first 1,024 pairs (fixed selection)
``prediction/similarity``           image: the cosine-similarity matrix of the first 64 pairs, blue (−1) –
                                    white (0) – red (+1), 4× enlarged; a clean diagonal = aligned modalities
==================================  =======================================================================

More than two modalities (``{"text": t, "image": i, "audio": a}``, rows aligned, or a tuple of three
or more, named "0", "1", …): every pair in the dict's order gets the members and the image, tagged
``prediction/paired/<a>_vs_<b>/{diag,offdiag,margin,top1}`` and ``prediction/similarity/<a>_vs_<b>``
(``text_vs_image``, ``text_vs_audio``, ``image_vs_audio``). Two modalities keep the tags above. The
per-pair members are judged like the two-modality ones (the margin rule, pair by pair) and, under
torch.distributed, rank 0's own values (their names come from the data). Pairs grow as m(m − 1)/2,
each an n×n similarity matrix (n ≤ 1,024): more than 8 modalities (28 pairs) is an error naming
``paired_embeddings``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from metricreg import arrays as A
from metricreg.hookspecs import hookimpl
from metricreg.spec import Health, Metric

PAIRED_MAX_ROWS = 1024
PAIRED_MAX_MODALITIES = 8  # 28 pairs: each costs an n×n similarity matrix
IMAGE_PAIRS = 64
IMAGE_SCALE = 4


def _rows(x: Any, xp: Any, max_rows: int | None = None) -> Any:
    x = A.detach(x)
    if x.ndim == 1:
        x = xp.reshape(x, (-1, 1))
    return A.to_float(A.as_matrix(x, max_rows, xp), xp)


def _normalize(xp: Any, x: Any) -> Any:
    return x / xp.clip(xp.linalg.vector_norm(x, axis=1, keepdims=True), 1e-12, None)


_COSINE_KEYS = ("mean", "std", "min", "max")


def _matrix_shape(x: Any) -> tuple[int, int]:
    shape = tuple(x.shape)
    return (math.prod(shape), 1) if len(shape) <= 1 else (math.prod(shape[:-1]), shape[-1])


def _host_pair(predictions: Any, targets: Any) -> bool:
    """Both on the host with matching rows: safe to hand to the writer thread.

    Anything else (device arrays, or shapes that only broadcast or do not match) runs here,
    so a bad pair still fails on the training thread with its error counted against the metric
    rather than turning into a silent NaN in the host job.
    """
    return (
        A.is_host_data(predictions) and A.is_host_data(targets) and _matrix_shape(predictions) == _matrix_shape(targets)
    )


def cosine(predictions: Any, targets: Any) -> dict[str, Any] | None:
    """Row-wise cosine similarity statistics between predictions and targets."""
    if isinstance(predictions, Mapping) or isinstance(targets, Mapping):
        return None  # per-level dicts: metricreg.builtins.levels writes levels/<level>/cosine
    if _host_pair(predictions, targets):  # CPU data: one copy here, the arithmetic on the writer thread
        if _matrix_shape(predictions)[1] < 2:
            return None
        return A.on_writer(_cosine, {"predictions": predictions, "targets": targets}, _COSINE_KEYS)
    return _cosine(predictions, targets)


def _cosine(predictions: Any, targets: Any) -> dict[str, Any] | None:
    xp = A.namespace(predictions, targets)
    p, t = _rows(predictions, xp), _rows(targets, xp)
    if p.shape[1] < 2:
        return None  # cosine of scalars is only a sign
    cos = xp.sum(_normalize(xp, p) * _normalize(xp, t), axis=1)
    n = cos.shape[0]
    return {
        "mean": xp.mean(cos),
        "std": xp.std(cos, correction=1 if n > 1 else 0),
        "min": xp.min(cos),
        "max": xp.max(cos),
    }


def nmse(predictions: Any, targets: Any) -> Any:
    """Σ‖p − t‖² / Σ‖t − t̄‖²: fraction of variance unexplained."""
    if isinstance(predictions, Mapping) or isinstance(targets, Mapping):
        return None  # per-level dicts: metricreg.builtins.levels writes levels/<level>/nmse
    if _host_pair(predictions, targets):  # CPU data: one copy here, the arithmetic on the writer thread
        return A.on_writer(_nmse, {"predictions": predictions, "targets": targets})
    return _nmse(predictions, targets)


def _nmse(predictions: Any, targets: Any) -> Any:
    xp = A.namespace(predictions, targets)
    p, t = _rows(predictions, xp), _rows(targets, xp)
    err = xp.sum((p - t) ** 2)
    var = xp.sum((t - xp.mean(t, axis=0, keepdims=True)) ** 2)
    return xp.where(var > 0, err / xp.where(var > 0, var, 1.0), xp.nan)


def _is_batch(shape: tuple[int, ...]) -> bool:
    """Whether the leading axis indexes images: (B, C, H, W), (B, H, W, C), or (B, H, W) grayscale.

    A 3-D array whose last axis has 1, 3 or 4 entries is one (H, W, C) image.
    """
    return len(shape) >= 4 or (len(shape) == 3 and shape[-1] not in (1, 3, 4))


def check_images(reconstruction: Any, image: Any) -> None:
    """Refuse anything but one array each (a dict of heads, a list): named, instead of drawing or writing nothing.

    No reconstruction metric fans out over a dict; a silent gap, or an AttributeError naming no input, was
    all a dict used to get.
    """
    for name, x in (("reconstruction", reconstruction), ("image", image)):
        if not A.is_array(x):
            keys = f" with keys {sorted(map(str, x))}" if isinstance(x, Mapping) else ""
            raise ValueError(
                f"input {name!r} must be one array (the reconstruction metrics do not fan out over a dict), got a "
                f"{type(x).__name__}{keys}: pass one head's images"
            )


def psnr(reconstruction: Any, image: Any, data_range: Any = None) -> Any:
    """Peak signal-to-noise ratio in dB: the mean of per-image PSNRs over a batch."""
    check_images(reconstruction, image)
    xp = A.namespace(reconstruction, image)
    if data_range is None:
        data_range = 1.0 if xp.isdtype(image.dtype, "real floating") else 255.0
    rec, img = A.to_float(A.detach(reconstruction), xp), A.to_float(A.detach(image), xp)
    sq = (rec - img) ** 2
    mse = xp.mean(xp.reshape(sq, (sq.shape[0], -1)), axis=1) if _is_batch(sq.shape) else xp.mean(sq)
    r2 = data_range * data_range
    value = 10.0 * xp.log10(r2 / xp.clip(mse, r2 * 1e-20, None))
    return xp.mean(value) if value.ndim else value


def _modalities(paired_embeddings: Any) -> list[tuple[str, Any]] | None:
    """(name, array) per modality: dict keys, or positions "0", "1", … of a tuple/list; None if < 2."""
    if isinstance(paired_embeddings, Mapping):
        items = [(str(k), v) for k, v in paired_embeddings.items()]
    elif isinstance(paired_embeddings, (tuple, list)):
        items = [(str(i), v) for i, v in enumerate(paired_embeddings)]
    else:
        return None
    if len(items) < 2:
        return None
    if len(items) > PAIRED_MAX_MODALITIES:
        raise ValueError(
            f"paired_embeddings has {len(items)} modalities ({', '.join(k for k, _ in items)}); at most "
            f"{PAIRED_MAX_MODALITIES} are compared (pairs grow quadratically): pass the ones to align"
        )
    for name, value in items:
        if not A.is_array(value):
            raise ValueError(f"paired_embeddings[{name!r}] must be an (n, d) array, got {type(value).__name__}")
    # Rows are pairs: a modality with other rows (or another width) would be compared with the wrong rows.
    (first, x0), shape0 = items[0], _matrix_shape(items[0][1])
    for name, value in items[1:]:
        if _matrix_shape(value) != shape0:
            raise ValueError(
                f"paired_embeddings[{name!r}] has shape {tuple(value.shape)} but [{first!r}] has "
                f"{tuple(x0.shape)}: paired modalities need the same rows (one per pair) and the same width d"
            )
    return items


def _pairs(items: list[tuple[str, Any]]) -> list[tuple[str | None, int, int]]:
    """(tag key, i, j) for every pair i < j; the key is None for two modalities (the original tags)."""
    if len(items) == 2:
        return [(None, 0, 1)]
    return [(f"{items[i][0]}_vs_{items[j][0]}", i, j) for i in range(len(items)) for j in range(i + 1, len(items))]


def _paired_inputs(paired_embeddings: Any) -> tuple[list[tuple[str | None, int, int]], list[Any], bool] | None:
    """(pairs, modality arrays, all on the host) for paired and similarity_image; None if < 2 modalities.

    All on the host: their work can go to the writer thread. Bad input (a modality with other rows or
    another width) has already raised in ``_modalities``, here on the training thread, so its error is
    counted against the metric rather than turning into a silent NaN in the host job.
    """
    items = _modalities(paired_embeddings)
    if items is None:
        return None
    arrays = [v for _, v in items]
    return _pairs(items), arrays, all(A.is_host_data(v) for v in arrays)


def _pair_stats(xp: Any, a: Any, b: Any) -> dict[str, Any]:
    """diag, offdiag, margin, top1 of two row-normalised matrices (rows aligned)."""
    n = min(a.shape[0], b.shape[0])
    a, b = a[:n, :], b[:n, :]
    sim = a @ xp.matrix_transpose(b)
    diag = xp.sum(a * b, axis=1)
    diag_mean = xp.mean(diag)
    total = xp.sum(sim)
    off = (
        (total - xp.sum(diag)) / float(n * (n - 1))
        if n > 1
        else xp.full((), math.nan, dtype=sim.dtype, device=A.device_of(sim))
    )
    hits = xp.argmax(sim, axis=1) == xp.arange(n, device=A.device_of(sim))
    return {
        "diag": diag_mean,
        "offdiag": off,
        "margin": diag_mean - off,
        "top1": xp.mean(xp.astype(hits, sim.dtype)),
    }


_PAIRED_KEYS = ("diag", "offdiag", "margin", "top1")


def paired(paired_embeddings: Any) -> dict[str, Any] | None:
    """Alignment of paired embedding sets, per pair of modalities (see the module docstring)."""
    prepared = _paired_inputs(paired_embeddings)
    if prepared is None:
        return None
    pairs, arrays, on_host = prepared
    if on_host:
        # CPU data: a copy of at most 1,024 rows per modality here, the n×n products on the writer thread.
        rows = {str(i): _host_rows(v) for i, v in enumerate(arrays)}
        keys = [m if key is None else f"{key}/{m}" for key, _, _ in pairs for m in _PAIRED_KEYS]
        return A.on_writer(lambda **h: _paired([h[str(i)] for i in range(len(h))], pairs), rows, keys)
    return _paired(arrays, pairs)


def _host_rows(x: Any, max_rows: int = PAIRED_MAX_ROWS) -> Any:
    """The rows the device route uses (as ``_rows``: at most max_rows, fixed selection), before the writer's copy."""
    x = A.detach(x)
    return A.as_matrix(x.reshape(-1, 1) if x.ndim == 1 else x, max_rows)


def _paired(arrays: list[Any], pairs: list[tuple[str | None, int, int]]) -> dict[str, Any]:
    xp = A.namespace(*arrays)
    unit = [_normalize(xp, _rows(v, xp, PAIRED_MAX_ROWS)) for v in arrays]  # each modality once
    out: dict[str, Any] = {}
    for key, i, j in pairs:
        stats = _pair_stats(xp, unit[i], unit[j])
        out.update(stats if key is None else {f"{key}/{m}": v for m, v in stats.items()})
    return out


def _similarity_pixels(xp: Any, a: Any, b: Any) -> Any:
    """HxWx3 float image in [0, 1] of the cosine-similarity matrix of two (n, d) matrices."""
    n = min(a.shape[0], b.shape[0], IMAGE_PAIRS)
    a, b = _normalize(xp, a[:n, :]), _normalize(xp, b[:n, :])
    v = (xp.clip(a @ xp.matrix_transpose(b), -1.0, 1.0) + 1.0) / 2.0  # 0 blue, 0.5 white, 1 red
    v = xp.where(xp.isfinite(v), v, 0.5)
    idx = xp.arange(n * IMAGE_SCALE, device=A.device_of(v)) // IMAGE_SCALE
    v = xp.take(xp.take(v, idx, axis=0), idx, axis=1)
    r = xp.clip(2.0 * v, 0.0, 1.0)
    b_ = xp.clip(2.0 - 2.0 * v, 0.0, 1.0)
    g = 1.0 - xp.abs(2.0 * v - 1.0)
    return xp.astype(xp.stack([r, g, b_], axis=-1), xp.float32)


def similarity_image(paired_embeddings: Any) -> Any:
    """The similarity image of the first pairs; a dict of them per pair of modalities beyond two."""
    prepared = _paired_inputs(paired_embeddings)
    if prepared is None:
        return None
    pairs, arrays, on_host = prepared
    if on_host:
        # CPU data: a copy of the first 64 rows per modality here, the matrices and colours on the writer thread
        rows = {str(i): _host_rows(v, A.MAX_ROWS)[:IMAGE_PAIRS] for i, v in enumerate(arrays)}
        keys = None if pairs[0][0] is None else [key for key, _, _ in pairs]
        return A.on_writer(lambda **h: _similarity_images([h[str(i)] for i in range(len(h))], pairs), rows, keys)
    return _similarity_images(arrays, pairs)


def _similarity_images(arrays: list[Any], pairs: list[tuple[str | None, int, int]]) -> Any:
    xp = A.namespace(*arrays)
    # the rows the host route draws (the first 64 of the fixed selection), converted alone: not all n
    rows = [A.to_float(_host_rows(v, A.MAX_ROWS)[:IMAGE_PAIRS, :], xp) for v in arrays]
    images = {key: _similarity_pixels(xp, rows[i], rows[j]) for key, i, j in pairs}
    return images.get(None, images)


HEALTH_COSINE = {
    "mean": Health(
        category="prediction",
        direction="higher_is_better",
        title="prediction cosine (mean)",
        description="Mean cosine similarity between predictions and their targets.",
    ),
    "std": Health(
        category="prediction",
        title="prediction cosine (std)",
        description="Spread of the per-row cosine; ≈ 0 together with a mean ≈ 1 can mean the targets collapsed.",
    ),
    "min": Health(category="prediction", title="prediction cosine (min)", description="Worst row."),
    "max": Health(category="prediction", title="prediction cosine (max)", description="Best row."),
}
HEALTH_NMSE = Health(
    category="prediction",
    warn_above=1.0,
    persistence=3,
    direction="lower_is_better",
    title="normalised MSE",
    description="Σ‖p − t‖² / Σ‖t − t̄‖²: 0 is perfect, 1 is no better than predicting the mean target.",
    remedy="Predictions are worse than a constant: check that predictions and targets are aligned (same "
    "order, same normalisation), lower the learning rate, or verify the targets are not moving faster "
    "than the predictor can follow (EMA momentum).",
)
HEALTH_PSNR = Health(
    category="prediction",
    direction="higher_is_better",
    title="PSNR (dB)",
    description="Peak signal-to-noise ratio of the reconstruction, 10·log10(R²/MSE).",
)
HEALTH_PAIRED = {
    "diag": Health(
        category="prediction",
        direction="higher_is_better",
        title="matched-pair cosine",
        description="Mean cosine of matched pairs.",
    ),
    "offdiag": Health(
        category="prediction",
        title="mismatched-pair cosine",
        description="Mean cosine of mismatched pairs; → diag when the modalities do not align.",
    ),
    # Judged against the run's best: at initialisation the margin is ≈ 0 (nothing aligned yet), so no
    # absolute floor can hold; once aligned, healthy benchmark runs never lose it, and misaligned pairs
    # drop it to ≈ 0 at once (docs/metrics.md, "Detection benchmark"). The matched cosine (diag) alone
    # is no floor: when pairs stop matching the towers drift together and diag stays at 0.2–0.7.
    "margin": Health(
        category="prediction",
        warn_below=0.0,
        baseline="best",
        critical_below_frac=0.25,
        persistence=2,
        direction="higher_is_better",
        title="alignment margin",
        description="Matched minus mismatched cosine: > 0 once the two embeddings align. Critical below 0.25× "
        "the run's best for 2 points (matched pairs lost most of their advantage over random pairs); warn "
        "below 0.",
        remedy="Matched pairs are no more similar than random pairs: check that the pairs are in the same "
        "order, that the contrastive temperature is sensible, and that neither tower collapsed.",
    ),
    "top1": Health(
        category="prediction",
        direction="higher_is_better",
        title="retrieval top-1",
        description="Fraction of rows whose nearest neighbour in the other modality is their pair.",
    ),
}
# With three or more modalities every pair writes "<a>_vs_<b>/<member>": the same rules, pair by pair
# (a "*/" entry judges a member under any key; metricreg.manifest looks it up after the exact name).
HEALTH_PAIRED.update({f"*/{member}": health for member, health in list(HEALTH_PAIRED.items())})

METRICS = [
    Metric(
        "prediction/cosine",
        compute=cosine,
        every=100,
        health=HEALTH_COSINE,
        reduce="mean",
        description="Cosine similarity between predictions and targets: mean, std, min, max.",
    ),
    Metric(
        "prediction/nmse",
        compute=nmse,
        every=100,
        health=HEALTH_NMSE,
        reduce="mean",
        description=HEALTH_NMSE.description,
    ),
    Metric(
        "prediction/psnr",
        compute=psnr,
        every=10,
        health=HEALTH_PSNR,
        reduce="mean",
        description=HEALTH_PSNR.description,
    ),
    Metric(
        "prediction/paired",
        compute=paired,
        every=100,
        health=HEALTH_PAIRED,
        reduce="mean",
        description="Alignment of paired embeddings: matched vs mismatched cosine, margin, retrieval top-1.",
    ),
    Metric(
        "prediction/similarity",
        compute=similarity_image,
        every=1000,
        kind="image",
        description="Cosine-similarity matrix of the first 64 pairs of paired_embeddings (blue −1, red +1); one "
        "per pair of modalities beyond two.",
    ),
]


@hookimpl
def metricreg_register_inputs(register):
    register("predictions", description="(n, d) predictions, compared row by row with targets")
    register("targets", description="(n, d) targets for predictions")
    register("reconstruction", description="reconstructed image(s), same shape as image")
    register("image", description="reference image(s): (H, W[, C]) or a batch (B, ...) with ndim >= 4")
    register("data_range", description="PSNR peak value R (default 1 for float images, 255 for integers)")
    register(
        "paired_embeddings",
        description="(a, b) or {'image': a, 'text': b, ...}: row i of each pairs with row i of the others "
        "(every pair of up to 8 modalities)",
    )


@hookimpl
def metricreg_register_metrics(register):
    for metric in METRICS:
        register(metric)
