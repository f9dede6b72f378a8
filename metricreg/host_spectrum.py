"""Singular values of host (numpy) embeddings: a float32 Gram matrix whose error is checked, else float64.

Why: RankMe on an 8192×512 float32 batch through a float64 Gram costs about half of
``torch.linalg.svdvals`` (the float64 product alone is ~42 of its ~85 ms on one core), while the
float32 product takes ~19 ms. A float32 Gram matrix is not accurate everywhere, though: its
eigenvalues carry an absolute error of order u·λ₁ (u = 2⁻²⁴), so directions below that level are
noise, and a rank-1 matrix read through it has hundreds of spurious singular values near
√u·σ₁ (RankMe 1.04–1.12 instead of 1.0008). So the float32 route is taken only when its answer
is provably close:

1. The rows are shifted near their mean (see :class:`_Parts`), multiplied in float32 (BLAS
   SYRK: ZsᵀZs, or ZsZsᵀ when n < d; the centered product has the smaller error), and the
   centered and uncentered Gram matrices follow by exact float64 corrections.
2. Every eigenvalue is taken to be off by at most ν = ``F32_EIG_NOISE``·u·λ₁(Gc) (the largest
   error measured over structured spectra, rank-1 to isotropic, 16 ≤ min(n, d), n up to the
   25,600-row cap, is 2.9·u·λ₁, on the null space of a rank-d/2 cloud at n = 25,600, median
   2.1; see ``benchmarks/bench_effective_rank.py --study``); eigenvalues at or below ν are set to zero,
   since they cannot be told from rounding. That figure belongs to the BLAS (its accumulation
   order): a BLAS that sums the rows one by one is ~8x worse, so the model is checked once per
   process on that hardest case (:func:`float32_gram_trusted`) and the route is off if it fails.
3. The first-order bound on how much those errors can move the spectral entropy
   H = −Σ pₖ log pₖ (so RankMe and the effective rank, exp H, relatively) is computed from the
   spectrum itself (:func:`entropy_error_bound`). Above ``F32_ENTROPY_TOL`` the float64 route
   runs instead: collapsed and steep spectra (rank-k, power laws past λ ∝ k⁻³) go there, and they
   read exactly what the float64 route reads.

float64 input keeps the float64 route (the caller chose the precision); float16 and bfloat16
are widened to float32 exactly by the caller.
"""

from __future__ import annotations

import math
import threading
from typing import Any

import numpy as np

#: Unit roundoff of float32.
U32 = float(np.finfo(np.float32).eps) / 2

#: Assumed bound on each eigenvalue's error of the float32 centered Gram, in units of u·λ₁(Gc).
#: The worst measured is 2.9 (null space of a rank-d/2 cloud, n = 25,600, 16 ≤ d ≤ 128, 96 draws;
#: median 2.1). An eigenvalue whose error passes ν is kept as a spurious σ of ~√ν, the same size
#: the bound already allows for each zeroed one. Below 16 columns errors reach 4.5: F32_MIN_K.
F32_EIG_NOISE = 5.0

#: The float32 route needs min(n, d) >= this (the error model was measured from here up; below,
#: the Gram is small and the float64 route cheap) and max(n, d) <= this cap on the
#: accumulation length (the row cap, ``arrays.MAX_ROWS``): rounding grows with it.
F32_MIN_K = 16
F32_MAX_SUM = 25_600

#: The float32 answer is kept when the bound on the entropy error (≈ the relative error of
#: RankMe and of the effective rank) is at most this. The bound is a worst case (every error
#: aligned): measured errors of accepted spectra are at least 600x below it. At 1e-3 it can move the
#: collapse rule (RankMe < 1.5) only within 0.0015 of its threshold; RankMe's own spread between
#: independent 8192-row batches of the benchmark distribution is 2e-4 (relative std).
F32_ENTROPY_TOL = 1e-3

#: Below this λ₁ the float32 products could reach the subnormal range: float64 route.
_F32_MIN_SCALE = 1e-20


def entropy_error_bound(lam: np.ndarray, nu: float, eps: float, exact_zeros: int = 0) -> float:
    """First-order bound on |ΔH| for H = −Σ pₖ log pₖ, pₖ = σₖ/Σσ + eps, when each λₖ = σₖ² may be off by ν.

    λₖ > ν: σₖ may be off by √λₖ − √(λₖ − ν); λₖ ≤ ν (read as 0): the true σₖ may be up to √(2ν),
    except for the ``exact_zeros`` smallest, known to be exactly 0 (constant columns: dead units).
    Each term is |∂H/∂σₖ| = |log pₖ − Σⱼ p̂ⱼ log pⱼ| / Σσ at the end of σₖ's interval where it
    is largest (the smaller σ), times that interval's half-width. ``lam`` is in any order.
    """
    lam = np.sort(np.clip(np.asarray(lam, dtype=np.float64), 0.0, None))
    kept = lam > nu
    s = np.sqrt(np.where(kept, lam, 0.0))
    total = float(s.sum())
    if total <= 0.0:
        return math.inf
    ds = np.where(kept, s - np.sqrt(np.clip(lam - nu, 0.0, None)), math.sqrt(2.0 * nu))
    ds[: max(0, min(exact_zeros, int((~kept).sum())))] = 0.0
    p = s / total + eps
    mean_log = float(np.sum((s / total) * np.log(p)))
    p_low = np.clip(s - ds, 0.0, None) / total + eps
    return float(np.sum(np.abs(np.log(p_low) - mean_log) * ds) / total)


class _Parts:
    """The float32 products of the shifted rows, and the exact corrections to G and Gc.

    The rows are shifted by m, the float64 mean of a fixed subsample of them (any vector near
    the mean serves: what matters is that the shifted values Zs = Z − m have the spread's
    magnitude, not the mean's, before they are multiplied in float32). With c = Zsᵀ1, summed
    in float32 over those small values, the corrections are exact identities:
    Gc = ZsᵀZs − ccᵀ/n and G = ZsᵀZs + c·mᵀ + m·cᵀ + n·mmᵀ (their n×n forms when n < d).
    Float64 column means would cost a full pass (~2 ms of ~30 at 8192×512).
    """

    def __init__(self, z: np.ndarray) -> None:
        n, d = z.shape
        self.n, self.d = n, d
        m = z[:: max(1, n // 256)].mean(axis=0, dtype=np.float64).astype(np.float32)
        self.zs = z - m
        self.m = m.astype(np.float64)  # the shift actually subtracted
        with np.errstate(over="ignore", invalid="ignore"):  # an overflow is checked by ``finite``
            self.c = (np.ones(n, dtype=np.float32) @ self.zs).astype(np.float64)
            self.gs = (self.zs.T @ self.zs if n >= d else self.zs @ self.zs.T).astype(np.float64)  # SSYRK

    @property
    def finite(self) -> bool:
        """False after a float32 overflow or for a non-finite entry (the float64 route decides)."""
        return bool(np.isfinite(np.trace(self.gs)) and np.isfinite(self.c).all() and np.isfinite(self.m).all())

    @property
    def dead(self) -> int:
        """Exactly zero shifted columns (constant columns: dead units); 0 when n < d."""
        return int(np.count_nonzero(np.diag(self.gs) == 0.0)) if self.n >= self.d else 0

    def centered(self) -> np.ndarray:
        n, c = self.n, self.c
        if n >= self.d:
            return self.gs - np.outer(c, c / n)
        r = self.zs @ (c / n)  # float64 (numpy widens zs)
        return self.gs - r[:, None] - r[None, :] + float(c @ c) / n**2

    def uncentered(self) -> np.ndarray:
        n, c, m = self.n, self.c, self.m
        if n >= self.d:
            # c·mᵀ + m·cᵀ + n·mmᵀ = [u m]·[m u]ᵀ with u = c + n·m/2: one rank-2 product, a third
            # of the time of two outer products and two additions (0.1 vs 0.3 ms at d = 512)
            u = c + 0.5 * n * m
            return self.gs + np.stack([u, m], axis=1) @ np.stack([m, u])
        w = self.zs @ m
        return self.gs + w[:, None] + w[None, :] + float(m @ m)

    def centered_top(self, iterations: int = 10) -> float:
        """λ₁(Gc) by power iteration on Gs − ccᵀ/n applied implicitly (a lower estimate)."""
        if self.n < self.d:
            return _top_eigenvalue(self.centered(), iterations)
        gs, c, n = self.gs, self.c, self.n
        return _top_eigenvalue(lambda x: gs @ x - c * (float(c @ x) / n), iterations, np.diag(gs) - c * c / n)


def eigvalsh(a: np.ndarray) -> np.ndarray:
    """Ascending eigenvalues of a symmetric float64 matrix, read from its upper triangle.

    Why ``UPLO="U"``: numpy hands LAPACK the transposed (column-major) copy, and ``dsyevd``
    reduces that triangle ~4% faster at 512×512 (7.8 vs 8.2 ms on one core; the eigensolve is
    over a quarter of RankMe's float32 route). Both triangles of the Gram matrices here agree
    to rounding (the corrections are added in either order): the same answer to ~u₆₄·λ₁.
    """
    return np.linalg.eigvalsh(a, UPLO="U")


def _floored_sv(lam: np.ndarray, nu: float) -> np.ndarray:
    """Descending singular values from ascending eigenvalues, those at or below ν set to 0."""
    return np.sqrt(np.where(lam > nu, lam, 0.0))[::-1].copy()


def f32_spectra(z: np.ndarray, centered: bool, eps: float) -> tuple[np.ndarray, np.ndarray | None] | None:
    """(σ of Z, σ of the centered Z or None), descending, through float32 products; None when not accurate enough.

    ``centered=False`` (RankMe alone) skips the centered eigensolve: λ₁(Gc), which sets ν, then
    comes from a few power iterations (a lower estimate converging from below; the margin in
    ``F32_EIG_NOISE`` covers it).
    """
    n, d = z.shape
    if min(n, d) < F32_MIN_K or max(n, d) > F32_MAX_SUM or not float32_gram_trusted():
        return None
    parts = _Parts(z)
    if not parts.finite:
        return None
    # Constant columns (dead ReLU units) are exact zero rows and columns of Gc in float32 too:
    # they give exact zero eigenvalues of Gc, and all but one of them stay zero in G.
    dead = parts.dead
    lam_c = None
    if centered:  # checked first: a collapsed batch fails here, before the second eigensolve
        lam_c = eigvalsh(parts.centered())
        top = float(lam_c[-1])
        nu = F32_EIG_NOISE * U32 * top
        kc = max(1, min(n - 1, d))
        if (
            not top > _F32_MIN_SCALE
            or entropy_error_bound(lam_c[::-1][:kc], nu, eps, dead - (d - kc)) > F32_ENTROPY_TOL
        ):
            return None
    else:
        top = parts.centered_top()
        if not top > _F32_MIN_SCALE:
            return None
        nu = F32_EIG_NOISE * U32 * top
    lam = eigvalsh(parts.uncentered())
    if entropy_error_bound(lam, nu, eps, max(0, dead - 1)) > F32_ENTROPY_TOL:
        return None
    return _floored_sv(lam, nu), None if lam_c is None else _floored_sv(lam_c, nu)


def _top_eigenvalue(a: Any, iterations: int = 10, diag: np.ndarray | None = None) -> float:
    """λ₁ of a symmetric PSD matrix (or of the map ``a``) by power iteration: the Rayleigh quotient.

    Starts from √diag (inside the dominant columns); ~0.3 ms at 512×512.
    """
    apply = a if callable(a) else a.__matmul__
    start = np.diag(a) if diag is None else diag
    x = np.sqrt(np.clip(start, 0.0, None)) + 1e-300
    for _ in range(iterations):
        y = apply(x)
        norm = float(np.linalg.norm(y))
        if not norm > 0.0:
            return 0.0
        x = y / norm
    return float(x @ apply(x))


_TRUSTED: list[bool] = []
_TRUSTED_LOCK = threading.Lock()


def float32_gram_trusted() -> bool:
    """Whether this process's BLAS meets the float32 error model (measured once, 0.1–0.3 s).

    The probe is the hardest case measured: a rank-32 cloud with a mean offset in 64 columns,
    25,600 rows, whose null-space eigenvalues show the float32 Gram's rounding directly. The
    route stays on when their error is within 3/4 of ν (~2·u·λ₁ with numpy's OpenBLAS).
    """
    if not _TRUSTED:
        with _TRUSTED_LOCK:
            if not _TRUSTED:
                try:
                    _TRUSTED.append(_probe_error() <= 0.75 * F32_EIG_NOISE)
                except Exception:  # a BLAS that cannot even run the probe: float64 only
                    _TRUSTED.append(False)
    return _TRUSTED[0]


def _probe_error() -> float:
    """Largest eigenvalue error of the float32 centered Gram on the probe, in units of u·λ₁."""
    rng = np.random.default_rng(8)
    n, d = F32_MAX_SUM, 64
    basis = np.linalg.qr(rng.standard_normal((d, d)))[0][: d // 2]
    z = (rng.standard_normal((n, d // 2)) @ basis + 5.0).astype(np.float32)
    parts = _Parts(z)
    if not parts.finite:
        return math.inf
    z64 = z.astype(np.float64)
    zc = z64 - z64.mean(axis=0)
    exact = np.linalg.eigvalsh(zc.T @ zc)
    return float(np.abs(np.linalg.eigvalsh(parts.centered()) - exact).max() / (U32 * exact[-1]))
