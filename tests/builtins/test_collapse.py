"""Collapse family: against straightforward numpy references, equal across numpy / torch / JAX."""

from __future__ import annotations

import math

import numpy as np
import pytest

from metricreg import arrays as A
from metricreg.builtins import collapse as C
from tests.builtins.conftest import close, is_framework_array, value, values


def entropy_rank(s: np.ndarray, eps: float = 1e-7) -> float:
    p = s / s.sum() + eps
    return float(np.exp(-(p * np.log(p)).sum()))


def reference(z: np.ndarray) -> dict[str, float]:
    """The collapse family computed the obvious way: SVDs and explicit pairwise cosines."""
    z = np.asarray(z, dtype=np.float64)
    n, d = z.shape
    s = np.linalg.svd(z, compute_uv=False)
    sc = np.linalg.svd(z - z.mean(0), compute_uv=False)[: min(n - 1, d)]
    zh = z / np.linalg.norm(z, axis=1, keepdims=True)
    cos = zh @ zh.T
    return {
        "rankme": entropy_rank(s),
        "rankme_ratio": entropy_rank(s) / min(n, d),
        "effective_rank": entropy_rank(sc),
        "effective_rank_ratio": entropy_rank(sc) / min(n - 1, d),
        "std": float(zh.std(axis=0, ddof=1).mean() * math.sqrt(d)),
        "mean_cos": float((cos.sum() - np.trace(cos)) / (n * (n - 1))),
        "norm": float(np.linalg.norm(z, axis=1).mean()),
        "near_zero": float((sc / sc[0] < 1e-3).sum()),
        "near_zero_ratio": float((sc / sc[0] < 1e-3).sum()) / min(n - 1, d),
    }


def data(kind: str, n: int = 512, d: int = 32, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind == "gaussian":
        return rng.standard_normal((n, d))
    if kind == "offset":  # healthy cloud with a mean offset: RankMe drops, centered erank does not
        return rng.standard_normal((n, d)) + 3.0
    if kind == "dimensional":  # only 8 of d directions used, rotated away from the axes
        q, _ = np.linalg.qr(rng.standard_normal((d, d)))
        return (rng.standard_normal((n, 8)) @ q[:8]) + 1e-9 * rng.standard_normal((n, d))
    if kind == "complete":  # every row points the same way, norms differ
        u = rng.standard_normal(d)
        return np.outer(1.0 + 0.1 * rng.random(n), u) + 1e-9 * rng.standard_normal((n, d))
    if kind == "wide":
        return rng.standard_normal((24, 64))
    raise ValueError(kind)


@pytest.mark.parametrize("kind", ["gaussian", "offset", "dimensional", "complete", "wide"])
def test_matches_reference(fw, kind):
    z = data(kind)
    got = C.collapse(fw.array(z))
    assert list(got) == list(C.ORDER)
    # Host data (numpy, torch CPU) and JAX without x64 go to the writer thread as one float64 host
    # job; anything else stays an array of the input's framework.
    host = A.host_route(fw.array(z))
    assert all(isinstance(v, A.Deferred) if host else is_framework_array(v, fw) for v in got.values())
    ref = reference(z)
    got = values(got)
    rtol = fw.spectral_rtol
    if kind in ("dimensional", "complete"):
        # Directions at 1e-9 of σ₁: the Gram route resolves σ down to ~1e-8·σ₁ in float64 (~3e-4·σ₁ in
        # float32), so their tiny share of the entropy differs from the SVD's: 1e-6 (float64), 5e-2 (float32).
        rtol = max(rtol, 1e-6 if fw.spectral_rtol < 1e-6 else 5e-2)
    for member in ("rankme", "rankme_ratio", "effective_rank", "effective_rank_ratio"):
        assert close(got[member], ref[member], rtol), (member, got[member], ref[member])
    assert close(got["std"], ref["std"], fw.rtol, atol=1e-6)
    assert close(got["mean_cos"], ref["mean_cos"], fw.rtol, atol=1e-6)
    assert close(got["norm"], ref["norm"], fw.rtol)
    if fw.name != "jax" or kind not in ("dimensional", "complete"):
        assert got["near_zero"] == ref["near_zero"]
        assert close(got["near_zero_ratio"], ref["near_zero_ratio"], 1e-12)


def test_equal_across_frameworks(fw):
    z = data("offset", 400, 24, seed=7).astype(np.float32)
    base = values(C.collapse(z))
    got = values(C.collapse(fw.array(z)))
    for member, expected in base.items():
        assert close(got[member], expected, fw.spectral_rtol, atol=1e-5), member


def test_readings_of_the_three_regimes():
    healthy = values(C.collapse(data("gaussian", 2048, 16)))
    dim = values(C.collapse(data("dimensional", 2048, 16)))
    complete = values(C.collapse(data("complete", 2048, 16)))
    assert healthy["rankme"] > 0.95 * 16 and healthy["std"] > 0.95 and abs(healthy["mean_cos"]) < 0.01
    assert 7.5 < dim["rankme"] < 8.05 and dim["near_zero"] == 8 and dim["std"] > 0.5
    assert complete["rankme"] < 1.05 and complete["std"] < 1e-3 and complete["mean_cos"] > 0.999
    assert complete["near_zero"] == 15


def test_mean_offset_lowers_rankme_not_centered_rank():
    # Reference §1.2: d = 128, Gaussian, offset 3.0: uncentered RankMe ≈ 76, centered ≈ 127.5.
    z = np.random.default_rng(0).standard_normal((4096, 128))
    r = values(C.collapse(z + 3.0))
    assert abs(r["rankme"] - 76.1) < 1.5
    assert abs(r["effective_rank"] - 127.5) < 0.5


def test_nan_input_gives_nan_members(fw):
    z = data("gaussian", 64, 8)
    z[5, 1] = np.nan
    got = values(C.collapse(fw.array(z)))
    assert all(math.isnan(v) for v in got.values())
    spec = np.asarray(C.collapse_spectrum(fw.array(z)))
    assert np.isnan(spec).all()


def test_spectrum_histogram_and_per_step_cache(fw):
    z = fw.array(data("dimensional", 256, 16))
    shared: dict = {}
    fam = C.collapse(z, step=3, shared=shared)
    spec = C.collapse_spectrum(z, step=3, shared=shared)
    entries = shared[C._CACHE_KEY]["entries"]
    assert len(entries) == 1  # the second metric reused the first one's spectrum
    s = np.asarray(spec, dtype=np.float64)
    assert s.shape == (16,) and s[0] == 0.0 and s.min() >= C.SPECTRUM_FLOOR_LOG10
    assert (s < -3).sum() == value(fam["near_zero"]) == 8
    C.collapse(z, step=4, shared=shared)
    assert shared[C._CACHE_KEY]["step"] == 4


def test_bfloat16_and_token_shaped_embeddings():
    torch = pytest.importorskip("torch")
    z = torch.randn(8, 64, 32).to(torch.bfloat16)  # (batch, tokens, d)
    got = values(C.collapse(z))
    assert 25 < got["rankme"] <= 32
    assert close(got["rankme_ratio"], got["rankme"] / 32, 1e-9)


def test_constant_embeddings_do_not_divide_by_zero():
    got = values(C.collapse(np.ones((50, 8))))
    assert close(got["rankme"], 1.0, 1e-4) and close(got["effective_rank"], 1.0, 1e-4)
    assert got["near_zero"] == 8 and got["std"] < 1e-12 and close(got["mean_cos"], 1.0, 1e-12)
