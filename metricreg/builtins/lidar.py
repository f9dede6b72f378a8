"""LiDAR: the effective rank of the LDA matrix of several views per sample (informational).

Thilak et al. 2023, "LiDAR: Sensing Linear Probing Performance in Joint Embedding SSL
Architectures" (arXiv:2312.04000, §3): each sample x is a surrogate class whose members are
the embeddings e_{x,j} of its q augmentations (views). With μ_x the mean of the sample's views
and μ the mean of the μ_x, over n samples:

    Σ_b = 1/(n − 1) Σ_x (μ_x − μ)(μ_x − μ)ᵀ                       between-class covariance (Eq. 2)
    Σ_w = 1/(n(q − 1)) Σ_x Σ_j (e_{x,j} − μ_x)(e_{x,j} − μ_x)ᵀ + δI   within-class covariance (Eq. 3)
    Σ_lidar = Σ_w^(−1/2) Σ_b Σ_w^(−1/2)                             the LDA matrix (Eq. 4)
    LiDAR = exp(−Σᵢ pᵢ log pᵢ),  pᵢ = λᵢ/‖λ‖₁ + ε                   its smooth rank (Eq. 5)

with λ the eigenvalues of Σ_lidar, δ = 1e-4 (the paper's value) and ε = 1e-7 (RankMe's, as in
:mod:`metricreg.arrays`). (Equation numbers follow arXiv:2312.04000v1 as we recall it; the
normalisations 1/(n − 1) and 1/(n(q − 1)) and δ = 1e-4 agree with an independent open-source
implementation, stable-pretraining's LiDAR callback.) High LiDAR: many directions that
separate samples relative to how much augmentations move them; it tracked linear-probe
accuracy better than RankMe in the paper. Needs q ≥ 2 views and n ≥ 2 samples.

Input ``views``: an (n, q, d) array, a list of q (n, d) arrays (one per view: ``[z1, z2]``), or a
dict of either (one LiDAR per key, like ``embeddings``).
Samples above 25,600 / q are sub-sampled (the fixed selection of ``collapse``). Runs every 1000
steps, only when ``views`` is given. No health rule: a rule needs detection evidence first.

Route: numpy and torch CPU views (and JAX without x64, which lacks float64) are copied on the
training thread (O(n·q·d)) and everything else runs in numpy float64 on the writer thread; on
torch CUDA the two d×d covariances are formed on the device and the eigensolves run on the host
(``eigh`` would synchronise); JAX with x64 computes on its device. Cost at n = 1000, q = 2,
d = 256 (``benchmarks/bench_lidar_gns.py``): 0.04 ms of copy on the training thread, ≈ 19 ms of
float64 work on the writer thread, every 1000 steps. Wide host views (d > 2·n·(q + 1)) are solved
exactly in the span of their rows, O(d·n²q²) instead of O(d³) (d = 4,096, n = 256, q = 2: 1.6-2.1 s
instead of 29-36 s of writer-thread time).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from metricreg import arrays as A
from metricreg.hookspecs import hookimpl
from metricreg.spec import Health, Metric

DELTA = 1e-4
EPS = A.RANKME_EPS
LIDAR_EVERY = 1000

HEALTH = Health(
    category="collapse",
    nonfinite=None,
    direction="higher_is_better",
    title="LiDAR",
    description="Effective rank of Σ_w^(−1/2) Σ_b Σ_w^(−1/2), the LDA matrix of `views` with each sample's "
    "augmentations as one class (Thilak et al. 2023): how many directions separate samples more than "
    "augmentations move them. Tracked linear-probe accuracy in the paper. Informational: no health rule until "
    "the detection benchmark shows one that stays quiet on healthy runs.",
)


def _stacked(views: list | tuple) -> Any:
    """A list of q (n, d) arrays, one per view, as an (n, q, d) array (one copy)."""
    if len(views) < 2 or not all(A.is_array(v) for v in views):
        raise ValueError("lidar: views given as a list must hold q >= 2 arrays of shape (n_samples, d), one per view")
    shapes = {tuple(v.shape) for v in views}
    if len(shapes) != 1 or len(next(iter(shapes))) != 2:
        raise ValueError(f"lidar: views given as a list need (n_samples, d) arrays of one shape, got {sorted(shapes)}")
    xp = A.namespace(views[0])
    return xp.stack([A.detach(v) for v in views], axis=1)


def _check(views: Any) -> Any:
    """(n, q, d) views as an array, sub-sampled; a clear error for any other shape."""
    if isinstance(views, (list, tuple)):
        views = _stacked(views)
    if not A.is_array(views):
        raise ValueError(f"lidar: views must be an (n_samples, n_views, d) array, got {type(views).__name__}")
    shape = tuple(views.shape)
    if len(shape) != 3:
        raise ValueError(f"lidar: views must be an (n_samples, n_views, d) array, got shape {shape}")
    n, q, d = shape
    if q < 2 or n < 2 or d < 1:
        raise ValueError(f"lidar: views needs at least 2 samples and 2 views per sample, got shape {shape}")
    views = A.detach(views)
    cap = max(2, A.MAX_ROWS // q)
    if n > cap:
        xp = A.namespace(views)
        views = xp.take(views, A.row_indices(n, cap, xp, A.device_of(views)), axis=0)
    return views


def covariances(xp: Any, e: Any) -> tuple[Any, Any, Any]:
    """(Σ_w + δI, Σ_b, bad) of an (n, q, d) float array, on its device (Eqs. 2–3)."""
    n, q, d = e.shape
    mu_x = xp.mean(e, axis=1)  # (n, d)
    c = mu_x - xp.mean(mu_x, axis=0, keepdims=True)
    sb = (xp.matrix_transpose(c) @ c) / float(n - 1)
    r = xp.reshape(e - mu_x[:, None, :], (n * q, d))
    eye = xp.eye(d, dtype=e.dtype, device=A.device_of(e))
    sw = (xp.matrix_transpose(r) @ r) / float(n * (q - 1)) + DELTA * eye
    bad = xp.logical_not(xp.isfinite(xp.sum(xp.linalg.diagonal(sw)) + xp.sum(xp.linalg.diagonal(sb))))
    zero = xp.zeros_like(sw)
    return xp.where(bad, eye, sw), xp.where(bad, zero, sb), bad


def lda_eigenvalues(xp: Any, sw: Any, sb: Any) -> Any:
    """The eigenvalues (clipped at 0) of Σ_w^(−1/2) Σ_b Σ_w^(−1/2) (Eq. 4)."""
    w, u = xp.linalg.eigh(sw)
    inv_sqrt = (u * (1.0 / xp.sqrt(xp.clip(w, 1e-300, None)))[None, :]) @ xp.matrix_transpose(u)
    m = inv_sqrt @ sb @ inv_sqrt
    m = (m + xp.matrix_transpose(m)) / 2.0  # exactly symmetric for eigvalsh
    return xp.clip(xp.linalg.eigvalsh(m), 0.0, None)


def lidar_from_covariances(xp: Any, sw: Any, sb: Any) -> Any:
    """exp(entropy) of the eigenvalues of Σ_w^(−1/2) Σ_b Σ_w^(−1/2) (Eqs. 4–5)."""
    return A.entropy_rank(lda_eigenvalues(xp, sw, sb), xp, EPS)


def _lidar_np(e: np.ndarray) -> float:
    """Writer thread: LiDAR of the snapshot in numpy float64 (NaN for non-finite input).

    Σ_b and Σ_w − δI live in the span U of the n·(q + 1) rows of the centred views and class means
    (r ≤ n·(q + 1) dimensions) and Σ_w is δ on its complement, so
    Σ_w^(−1/2) Σ_b Σ_w^(−1/2) = U M Uᵀ with M the same matrix of the views projected on U: its
    eigenvalues are M's and d − r zeros. Exact, and O(d·r²) instead of the O(d³) eigensolves: taken
    when d > 2r, where it is faster (d = 4,096, n = 256, q = 2: 2.1 s instead of 29 s on one core).
    """
    e = np.asarray(e, dtype=np.float64)
    n, q, d = e.shape
    if d > 2 * n * (q + 1):
        if not np.isfinite(e).all():
            return float("nan")
        mu_x = e.mean(axis=1)
        rows = np.concatenate([(e - mu_x[:, None, :]).reshape(n * q, d), mu_x - mu_x.mean(axis=0)])
        basis = np.linalg.qr(rows.T)[0]  # (d, r) orthonormal, r = n·(q + 1)
        sw, sb, _ = covariances(np, e @ basis)
        lam = np.concatenate([lda_eigenvalues(np, sw, sb), np.zeros(d - basis.shape[1])])
        return float(A.entropy_rank(lam, np, EPS))
    sw, sb, bad = covariances(np, e)
    return float("nan") if bool(bad) else float(lidar_from_covariances(np, sw, sb))


def _finish(h: dict[str, Any]) -> float:
    return float("nan") if bool(h["bad"]) else float(lidar_from_covariances(np, h["sw"], h["sb"]))


def _lidar_host(views: np.ndarray) -> float:
    """Writer thread: :func:`_lidar_np`; non-finite views give NaN (documented), without numpy's RuntimeWarnings
    (inf − inf) on the console."""
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        return _lidar_np(views)


def lidar(views: Any) -> Any:
    """LiDAR of one (n, q, d) view array (module docstring), a 0-d value or a Deferred host job."""
    e = _check(views)
    if A.host_route(e):
        return A.Deferred(A.HostJob({"views": A.host_snapshot(e)}, lambda h: _lidar_host(h["views"])))
    xp = A.namespace(e)
    sw, sb, bad = covariances(xp, A.to_float(e, xp))
    if A.needs_host_eig(sw):
        return A.Deferred(A.HostJob({"sw": sw, "sb": sb, "bad": bad}, _finish))
    return xp.where(bad, xp.nan, lidar_from_covariances(xp, sw, sb))


METRICS = [
    Metric(
        "lidar",
        compute=lidar,
        every=LIDAR_EVERY,
        fan_out="views",
        health=HEALTH,
        description=HEALTH.description,
    ),
]


@hookimpl
def metricreg_register_inputs(register):
    register("views", description="(n_samples, n_views, d) embeddings of several augmentations per sample, or a dict")


@hookimpl
def metricreg_register_metrics(register):
    for metric in METRICS:
        register(metric)
