"""The checked float32 Gram route (metricreg.host_spectrum): metrics against a float64 SVD.

The route may only be taken where its answer is as good as the float64 one for the metrics:
RankMe and the effective rank within 1e-4 relative of a float64 numpy SVD (the route's own
guarantee is a 1e-3 bound; measured errors are far smaller), the collapse rule (RankMe < 1.5)
decided the same, complete collapse still reading RankMe ≈ 1.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from metricreg import arrays as A
from metricreg import host_spectrum as H
from metricreg.builtins import collapse as C

N, D = 4096, 256
TOL = 1e-4


def rotation(d: int, rng: np.random.Generator) -> np.ndarray:
    return np.linalg.qr(rng.standard_normal((d, d)))[0]


def spectral(scales: np.ndarray, mean: float = 0.0, n: int = N, d: int = D, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return ((rng.standard_normal((n, d)) * scales) @ rotation(d, rng).T + mean).astype(np.float32)


def rank_k(k: int, offset: float = 0.0, n: int = N, d: int = D, seed: int = 0) -> np.ndarray:
    """Rank exactly k: coefficients (shifted by ``offset``, which moves the mean along the span) times k rows."""
    rng = np.random.default_rng(seed)
    return ((rng.standard_normal((n, k)) + offset) @ rng.standard_normal((k, d))).astype(np.float32)


def ref_rankme(z: np.ndarray) -> float:
    return float(A.entropy_rank(np.linalg.svd(z.astype(np.float64), compute_uv=False), np))


def ref_erank(z: np.ndarray) -> float:
    z64 = z.astype(np.float64)
    n, d = z.shape
    s = np.linalg.svd(z64 - z64.mean(axis=0), compute_uv=False)[: max(1, min(n - 1, d))]
    return float(A.entropy_rank(s, np))


# Inputs the float32 route must accept (so the test proves the fast path is exact enough).
ACCEPTED = {
    "three decades + mean": lambda: spectral(np.logspace(0, -3, D), mean=0.1),
    "isotropic": lambda: spectral(np.ones(D)),
    "mean 100 + isotropic": lambda: spectral(np.ones(D), mean=100.0),
    "ReLU features": lambda: np.maximum(spectral(np.logspace(0, -2, D)), 0),
    "n < d": lambda: spectral(np.logspace(0, -2, 512), mean=0.5, n=128, d=512),
    "n >> d": lambda: spectral(np.logspace(0, -3, 64), mean=0.1, n=20_000, d=64),
}
# Inputs whose small singular values a float32 Gram cannot resolve: they must take float64.
REFUSED = {
    "rank-1": lambda: rank_k(1, offset=3.0),
    "rank-10": lambda: rank_k(10),
    "constant rows": lambda: np.tile(np.random.default_rng(0).standard_normal(D), (N, 1)).astype(np.float32),
    "power law k^-2": lambda: spectral(np.arange(1, D + 1) ** -2.0),
    "rank-1 + 1e-4 noise": lambda: (rank_k(1, offset=1.0) + 1e-4 * spectral(np.ones(D), seed=1)).astype(np.float32),
}


@pytest.mark.parametrize("name", sorted(ACCEPTED))
def test_float32_route_is_taken_and_matches_float64_svd(name):
    z = ACCEPTED[name]()
    assert H.f32_spectra(z, True, A.RANKME_EPS) is not None, f"{name}: the float32 route should accept this input"
    rankme = float(A.rankme(z))
    assert rankme == pytest.approx(ref_rankme(z), rel=TOL)
    family = {m: float(v) for m, v in C.collapse(z).items()}
    assert family["rankme"] == pytest.approx(ref_rankme(z), rel=TOL)
    assert family["effective_rank"] == pytest.approx(ref_erank(z), rel=TOL)
    # The singular values themselves: float32 rounding is ~u·σ₁²/σₖ in σₖ, so compare relative to σ₁.
    s = np.asarray(A.spectrum(z), dtype=np.float64)
    ref = np.linalg.svd(z.astype(np.float64), compute_uv=False)
    np.testing.assert_allclose(s / ref[0], ref / ref[0], rtol=0, atol=1e-5)


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_unresolvable_spectra_take_the_float64_route(name):
    z = REFUSED[name]()
    assert H.f32_spectra(z, True, A.RANKME_EPS) is None
    assert H.f32_spectra(z, False, A.RANKME_EPS) is None
    ref = ref_rankme(z)
    assert float(A.rankme(z)) == pytest.approx(ref, rel=TOL)
    assert (float(C.collapse(z)["rankme"]) < 1.5) == (ref < 1.5)


def test_complete_collapse_reads_one_where_an_unchecked_float32_gram_does_not():
    """A float32 Gram's rounding gives a rank-1 batch hundreds of spurious directions."""
    z = rank_k(1, offset=3.0, n=25_600, d=512)
    g32 = (z.T @ z).astype(np.float64)
    unchecked = float(A.entropy_rank(np.sqrt(np.clip(np.linalg.eigvalsh(g32), 0, None)), np))
    assert unchecked > 1.05  # the failure the check exists for
    ref = ref_rankme(z)
    assert ref < 1.001
    assert float(A.rankme(z)) == pytest.approx(ref, rel=TOL)
    assert float(C.collapse(z)["rankme"]) == pytest.approx(ref, rel=TOL)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_torch_inputs_take_the_float32_route(dtype):
    torch = pytest.importorskip("torch")
    z = torch.from_numpy(ACCEPTED["three decades + mean"]()).to(getattr(torch, dtype))
    widened = z.float().numpy()
    assert H.f32_spectra(widened, True, A.RANKME_EPS) is not None
    assert float(A.rankme(z)) == pytest.approx(ref_rankme(widened), rel=TOL)
    family = {m: float(v) for m, v in C.collapse(z).items()}
    assert family["effective_rank"] == pytest.approx(ref_erank(widened), rel=TOL)


def test_float64_input_keeps_the_float64_route(monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("float64 input must not take the float32 route")

    monkeypatch.setattr(H, "f32_spectra", forbidden)
    z = ACCEPTED["three decades + mean"]().astype(np.float64)
    assert float(A.rankme(z)) == pytest.approx(ref_rankme(z), rel=1e-9)
    assert float(C.collapse(z)["effective_rank"]) == pytest.approx(ref_erank(z), rel=1e-9)


@pytest.mark.parametrize("scale", [1e20, 1e-24])
def test_scales_float32_cannot_hold_fall_back_to_float64(scale):
    """Squares overflow (1e20) or reach the subnormal range (1e-24) in float32."""
    z = (ACCEPTED["isotropic"]().astype(np.float64) * scale).astype(np.float32)
    assert H.f32_spectra(z, True, A.RANKME_EPS) is None
    assert float(A.rankme(z)) == pytest.approx(ref_rankme(z), rel=TOL)


def test_non_finite_input_reads_nan():
    z = ACCEPTED["isotropic"]()
    z[3, 4] = np.nan
    assert math.isnan(float(A.rankme(z)))
    assert math.isnan(float(C.collapse(z)["rankme"]))


def test_entropy_error_bound_covers_perturbations_within_the_error_model():
    """Any change of each eigenvalue by at most ν moves the entropy by at most the bound."""
    rng = np.random.default_rng(0)
    lam = np.logspace(0, -7, 200) * 1e4
    nu = 3e-3
    bound = H.entropy_error_bound(lam, nu, A.RANKME_EPS)
    assert 0 < bound < 1

    def entropy(lam_: np.ndarray) -> float:
        floored = np.where(lam_ > nu, lam_, 0.0)
        return math.log(float(A.entropy_rank(np.sqrt(floored), np)))

    base = entropy(lam)
    worst = 0.0
    for _ in range(200):
        true = np.clip(lam + rng.uniform(-nu, nu, lam.shape), 0, None)
        worst = max(worst, abs(math.log(float(A.entropy_rank(np.sqrt(true), np))) - base))
    # all eigenvalues moved the same way: the aligned worst case the bound is built for
    for sign in (-1.0, 1.0):
        true = np.clip(lam + sign * nu, 0, None)
        worst = max(worst, abs(math.log(float(A.entropy_rank(np.sqrt(true), np))) - base))
    assert worst <= bound
    assert worst > bound / 100  # and it is not vacuous


def test_exact_zero_columns_are_not_counted_as_unresolved():
    """Dead ReLU units are exact zeros in float32 too: they must not push a batch off the fast route."""
    z = ACCEPTED["three decades + mean"]()
    z[:, :40] = 0.0
    assert H.f32_spectra(z, True, A.RANKME_EPS) is not None
    assert float(A.rankme(z)) == pytest.approx(ref_rankme(z), rel=TOL)
    assert float(C.collapse(z)["effective_rank"]) == pytest.approx(ref_erank(z), rel=TOL)


def test_the_bundled_openblas_meets_the_error_model():
    """numpy's wheels ship OpenBLAS, whose blocked float32 accumulation the model was measured on."""
    blas = np.__config__.CONFIG["Build Dependencies"]["blas"]["name"]
    if "openblas" not in blas:
        pytest.skip(f"numpy built against {blas}: the probe decides at run time")
    assert H._probe_error() <= 0.75 * H.F32_EIG_NOISE
    assert H.float32_gram_trusted()


def test_a_blas_that_fails_the_probe_turns_the_route_off(monkeypatch):
    monkeypatch.setattr(H, "_TRUSTED", [False])
    z = ACCEPTED["three decades + mean"]()
    assert H.f32_spectra(z, True, A.RANKME_EPS) is None
    assert float(A.rankme(z)) == pytest.approx(ref_rankme(z), rel=1e-9)


@pytest.mark.parametrize("shape", [(4096, 8), (8, 4096)])
def test_fewer_than_16_directions_take_the_float64_route(shape):
    z = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    assert H.f32_spectra(z, True, A.RANKME_EPS) is None


@pytest.mark.parametrize("shape", [(4096, 256), (128, 512), (20_000, 64)])
@pytest.mark.parametrize("mean", [0.1, 100.0])
def test_gram_corrections_match_float64_products_within_the_error_model(shape, mean):
    """Gc and G rebuilt from the shifted float32 product against the float64 products of the same rows.

    Gc is within ν in norm. G's eigenvalues are within ν except the top one (the mean's
    direction): the float32 column sums' error δc enters G as δc·mᵀ + m·δcᵀ, which moves
    λ₁(G) ≥ n‖mean‖² by up to ~100·u·λ₁(Gc) at mean 100, a relative 1e-11, and the others only
    to second order.
    """
    n, d = shape
    z = spectral(np.logspace(0, -2, d), mean=mean, n=n, d=d)
    parts = H._Parts(z)
    z64 = z.astype(np.float64)
    zc = z64 - z64.mean(axis=0)
    exact_g, exact_gc = (z64.T @ z64, zc.T @ zc) if n >= d else (z64 @ z64.T, zc @ zc.T)
    nu = H.F32_EIG_NOISE * H.U32 * np.linalg.eigvalsh(exact_gc)[-1]
    assert np.linalg.norm(parts.centered() - exact_gc, 2) <= nu
    lam, ref = H.eigvalsh(parts.uncentered()), np.linalg.eigvalsh(exact_g)
    np.testing.assert_allclose(lam[:-1], ref[:-1], rtol=0, atol=nu)
    assert abs(lam[-1] - ref[-1]) <= nu + 1e-9 * ref[-1]


def _cpu_has_avx512() -> bool:
    try:
        with open("/proc/cpuinfo") as f:
            return " avx512f" in f.read()
    except OSError:
        return False


@pytest.mark.slow
@pytest.mark.skipif(not _cpu_has_avx512(), reason="needs a CPU with AVX-512 to run OpenBLAS's SkylakeX kernels")
def test_the_route_holds_its_accuracy_under_openblas_avx512_kernels():
    """docs/performance.md advises OPENBLAS_CORETYPE=SkylakeX where numpy's OpenBLAS picks its AVX2
    kernels on an AVX-512 CPU (AMD Zen 4): the SYRK then runs 1.75x faster but sums in another
    order. Every accuracy test of this module must still pass with those kernels."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "OPENBLAS_CORETYPE": "SkylakeX", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", "not avx512", __file__],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
