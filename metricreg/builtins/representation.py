"""Research signals on ``embeddings`` (informational): VICReg terms, per-dimension scale, α-ReQ.

Every collapse statistic in :mod:`metricreg.builtins.collapse` but ``norm`` is scale-invariant;
the seed loggers also watched the raw scale of each dimension, and researchers compare runs by
the VICReg terms and the eigenspectrum's decay. These metrics have **no health thresholds**:
a rule needs detection evidence on the benchmark of real runs first (DESIGN.md principle 11).

Input: ``embeddings``, an (n, d) array (or (..., d), flattened to rows) or a dict of them (the
metrics fan out per key, like ``collapse``). Rows above 25,600 are sub-sampled as in collapse.

``collapse_scale`` (every 100 steps), with Var the unbiased (1/(n − 1)) variance over samples:

================  ===========================================================================
member            definition
================  ===========================================================================
``vicreg_var``    VICReg variance term (Bardes et al. 2022, γ = 1, ε = 1e-4):
                  (1/d) Σⱼ max(0, 1 − √(Var zⱼ + ε)). 0 when every std ≥ 1, → 1 at collapse.
``vicreg_cov``    VICReg covariance term: (1/d) Σ_{i≠j} Cov(z)ᵢⱼ², 0 for decorrelated features.
``dim_std_mean``  mean over dimensions of √Var zⱼ: the raw scale.
``dim_std_min``   the smallest per-dimension std: a dead (constant) dimension shows as 0.
``norm_std``      std (ddof 1) over samples of the rows' L2 norms ‖zᵢ‖: with ``collapse/norm``
                  (their mean) the "norms collapsing to 0" signal; 0 when every row has the
                  same norm (embeddings on a sphere).
================  ===========================================================================

``eigenspectrum/alpha`` (every 1000 steps): α-ReQ (Agrawal et al. 2022): α in λᵢ ∝ i^(−α),
the least-squares slope of log λᵢ against log i, negated, over the covariance eigenvalues
λᵢ with λᵢ > 1e-6·λ₁ (σᵢ > 1e-3·σ₁: the directions ``collapse/near_zero`` does not count).
It reuses the step's spectrum of ``collapse`` (cached per step in ``shared``), so it
adds no eigensolve; fewer than two such eigenvalues give NaN.

Route: numpy and torch CPU embeddings are copied on the training thread and the terms computed
in numpy float64 on the writer thread (as collapse does); device arrays are computed on their
device in float64 (float32 for JAX without x64), with no host synchronisation.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from metricreg import arrays as A
from metricreg.builtins import collapse
from metricreg.hookspecs import hookimpl
from metricreg.spec import Health, Metric

VICREG_EPS = 1e-4
VICREG_GAMMA = 1.0
ALPHA_MIN_LOG10_SIGMA = -3.0  # σᵢ/σ₁ above 1e-3, i.e. λᵢ/λ₁ above 1e-6
SCALE_MEMBERS = ("vicreg_var", "vicreg_cov", "dim_std_mean", "dim_std_min", "norm_std")

_INFO = " Informational: no health rule until the detection benchmark shows one that stays quiet on healthy runs."

HEALTH_SCALE: dict[str, Health] = {
    "vicreg_var": Health(
        category="collapse",
        nonfinite=None,
        direction="lower_is_better",
        title="VICReg variance term",
        description="(1/d) Σⱼ max(0, 1 − √(Var zⱼ + 1e-4)) (Bardes et al. 2022): 0 when every dimension "
        "has std ≥ 1, → 1 when the embeddings shrink to a point. Scale-dependent: meaningful when the "
        "embeddings are meant to have unit scale." + _INFO,
    ),
    "vicreg_cov": Health(
        category="collapse",
        nonfinite=None,
        direction="lower_is_better",
        title="VICReg covariance term",
        description="(1/d) Σ_{i≠j} Cov(z)ᵢⱼ² (1/(n − 1) normalisation): 0 for decorrelated dimensions, "
        "large when dimensions carry the same information." + _INFO,
    ),
    "dim_std_mean": Health(
        category="collapse",
        nonfinite=None,
        title="per-dimension std (mean)",
        description="Mean over dimensions of the raw std over samples: the embeddings' scale, which "
        "RankMe, effective rank and the normalised std do not see." + _INFO,
    ),
    "dim_std_min": Health(
        category="collapse",
        nonfinite=None,
        title="per-dimension std (min)",
        description="The smallest per-dimension std: 0 for a dead (constant) dimension." + _INFO,
    ),
    "norm_std": Health(
        category="collapse",
        nonfinite=None,
        title="embedding norm std",
        description="Std over samples of the embeddings' L2 norms; their mean is `collapse/norm`. Both "
        "falling towards 0 is the scale collapse (norms shrinking to the origin) that every "
        "scale-invariant member misses; 0 alone means the embeddings lie on a sphere." + _INFO,
    ),
}
HEALTH_ALPHA = Health(
    category="collapse",
    nonfinite=None,
    title="α-ReQ eigenspectrum decay",
    description="α of the power law λᵢ ∝ i^(−α) fitted to the covariance eigenvalues above 1e-6·λ₁ "
    "(Agrawal et al. 2022): larger α = faster decay, fewer directions used; ≈ 1 reported for good "
    "representations (needs d ≳ 100)." + _INFO,
)


# ----------------------------------------------------------------------------- collapse_scale


def scale_terms(xp: Any, z: Any) -> dict[str, Any]:
    """The ``collapse_scale`` members of an (n, d) float matrix, n ≥ 2, on its device."""
    n, d = z.shape
    zc = z - xp.mean(z, axis=0, keepdims=True)
    var = xp.sum(zc * zc, axis=0) / float(n - 1)
    std = xp.sqrt(var)
    hinge = xp.clip(VICREG_GAMMA - xp.sqrt(var + VICREG_EPS), 0.0, None)
    if n >= d:  # the d×d covariance itself; its off-diagonal squared sum, masked (no cancellation)
        cov = (xp.matrix_transpose(zc) @ zc) / float(n - 1)
        off = cov * (1.0 - xp.eye(d, dtype=z.dtype, device=A.device_of(z)))
        off_sq = xp.sum(off * off)
    else:  # ‖ZcᵀZc‖_F = ‖ZcZcᵀ‖_F: an n×n product; off-diagonals dominate here, so no cancellation
        gc = zc @ xp.matrix_transpose(zc)
        off_sq = xp.sum(gc * gc) / float((n - 1) ** 2) - xp.sum(var * var)
    norms = xp.linalg.vector_norm(z, axis=1)
    return {
        "vicreg_var": xp.mean(hinge),
        "vicreg_cov": off_sq / float(d),
        "dim_std_mean": xp.mean(std),
        "dim_std_min": xp.min(std),
        "norm_std": xp.std(norms, correction=1),
    }


def _scale_on_host(z: np.ndarray) -> dict[str, float]:
    """Writer thread: the members in numpy float64 from the training thread's copy.

    Non-finite embeddings give NaN members; numpy's RuntimeWarnings about it (inf − inf) are silenced, as they
    would only reach the console from the writer thread.
    """
    z = np.asarray(z, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        return {k: float(v) for k, v in scale_terms(np, z).items()}


def _check(embeddings: Any) -> None:
    if not A.is_array(embeddings):
        raise TypeError(
            f"input 'embeddings' must be an (n, d) array or a dict of them, got {type(embeddings).__name__}"
        )


def collapse_scale(embeddings: Any) -> dict[str, Any] | None:
    """VICReg variance/covariance terms and per-dimension std statistics (module docstring)."""
    _check(embeddings)
    xp = A.namespace(embeddings)
    z = A.as_matrix(embeddings, A.MAX_ROWS, xp)
    if z.shape[0] < 2:
        return None  # a variance needs two samples
    if A.is_host_data(z):
        return A.on_writer(_scale_on_host, {"z": z}, SCALE_MEMBERS)
    return scale_terms(xp, A.to_float(z, xp))


# --------------------------------------------------------------------------------- α-ReQ


def alpha_from_log_spectrum(xp: Any, log_sigma: Any) -> Any:
    """α from log10(σᵢ/σ₁) (descending): −slope of log λᵢ on log i over λᵢ > 1e-6·λ₁, else NaN."""
    k = log_sigma.shape[0]
    dtype = log_sigma.dtype
    dev = A.device_of(log_sigma)
    x = xp.log10(xp.arange(1, k + 1, dtype=dtype, device=dev))
    y = 2.0 * log_sigma  # log10 λᵢ/λ₁: the same slope as log λᵢ
    w = xp.astype(log_sigma > ALPHA_MIN_LOG10_SIGMA, dtype)
    count = xp.sum(w)
    safe = xp.clip(count, 1.0, None)
    xm = xp.sum(w * x) / safe
    ym = xp.sum(w * y) / safe
    sxx = xp.sum(w * (x - xm) ** 2)
    sxy = xp.sum(w * (x - xm) * (y - ym))
    ok = xp.logical_and(count >= 2.0, sxx > 0.0)
    return xp.where(ok, -sxy / xp.where(ok, sxx, 1.0), xp.nan)


def _alpha_on_host(h: dict[str, Any]) -> float:
    return float(alpha_from_log_spectrum(np, np.asarray(h["log_sigma"], dtype=np.float64)))


def alpha_req(embeddings: Any, step: int = 0, shared: dict | None = None) -> Any:
    """α-ReQ from the collapse family's float64 centered spectrum of this step (module docstring)."""
    _check(embeddings)
    log_sigma = collapse.analyse(embeddings, shared, step)["log_spectrum"]
    if isinstance(log_sigma, A.Deferred):  # computed on the writer thread: fit there too
        return A.Deferred(A.HostJob({"log_sigma": log_sigma}, _alpha_on_host))
    return alpha_from_log_spectrum(A.namespace(log_sigma), log_sigma)


METRICS = [
    Metric(
        "collapse_scale",
        compute=collapse_scale,
        every=100,
        fan_out="embeddings",
        health=HEALTH_SCALE,
        description="Scale of `embeddings`: VICReg variance and covariance terms, per-dimension std mean and "
        "minimum, std of the row norms (informational).",
    ),
    Metric(
        "eigenspectrum/alpha",
        compute=alpha_req,
        every=1000,
        fan_out="embeddings",
        health=HEALTH_ALPHA,
        description=HEALTH_ALPHA.description,
    ),
]


@hookimpl
def metricreg_register_metrics(register):
    for metric in METRICS:
        register(metric)
