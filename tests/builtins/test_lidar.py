"""LiDAR against a numpy float64 reference written from the paper, on numpy, torch and JAX.

Reference (Thilak et al. 2023, arXiv:2312.04000 §3), written independently of the module: loops
over samples for the class means and scatter matrices, the eigenvalues of Σ_w^(−1/2) Σ_b Σ_w^(−1/2)
through the similar matrix L⁻¹ Σ_b L⁻ᵀ (Σ_w = LLᵀ, Cholesky: not the module's eigh route), then
exp(−Σ pᵢ log pᵢ) with pᵢ = λᵢ/Σλ + ε (δ = 1e-4, ε = 1e-7). Tolerance: rtol 1e-8 in float64
(numpy, torch); JAX without x64 rounds the views to float32 first, so it is compared with the
reference on those rounded values (rtol 1e-8) and with the float64 result at rtol 2e-3.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import metricreg as mr
from metricreg import arrays as A
from metricreg.builtins import lidar as L
from tests.builtins.conftest import close, is_framework_array, value
from tests.core.eventfiles import scalars


def lidar_reference(views: np.ndarray, delta: float = 1e-4, eps: float = 1e-7) -> float:
    e = np.asarray(views, dtype=np.float64)
    n, q, d = e.shape
    means = [e[i].mean(axis=0) for i in range(n)]
    grand = sum(means) / n
    sb = np.zeros((d, d))
    sw = np.zeros((d, d))
    for i in range(n):
        diff = (means[i] - grand)[:, None]
        sb += diff @ diff.T
        for j in range(q):
            r = (e[i, j] - means[i])[:, None]
            sw += r @ r.T
    sb /= n - 1
    sw = sw / (n * (q - 1)) + delta * np.eye(d)
    # Σ_w^(−1/2) Σ_b Σ_w^(−1/2) is similar to Σ_w^(−1) Σ_b and to L⁻¹ Σ_b L⁻ᵀ with Σ_w = LLᵀ (Cholesky):
    # the same eigenvalues by a route that shares nothing with the module's eigh-based inverse root
    chol = np.linalg.cholesky(sw)
    m = np.linalg.solve(chol, np.linalg.solve(chol, sb).T)
    lam = np.clip(np.linalg.eigvalsh((m + m.T) / 2), 0.0, None)
    p = lam / lam.sum() + eps
    return float(np.exp(-(p * np.log(p)).sum()))


def views_of(kind: str, seed: int = 0) -> np.ndarray:
    """(n, q, d) views: per-sample centres plus augmentation noise, in several structures."""
    rng = np.random.default_rng(seed)
    if kind == "random":
        n, q, d = 300, 2, 24
        return rng.standard_normal((n, 1, d)) + 0.3 * rng.standard_normal((n, q, d))
    if kind == "low_rank":  # centres span 4 of 32 directions, rotated
        n, q, d = 400, 3, 32
        basis, _ = np.linalg.qr(rng.standard_normal((d, d)))
        centres = rng.standard_normal((n, 4)) @ basis[:4]
        return centres[:, None, :] + 0.1 * rng.standard_normal((n, q, d))
    if kind == "isotropic":
        n, q, d = 500, 4, 16
        return rng.standard_normal((n, 1, d)) + rng.standard_normal((n, q, d))
    if kind == "dominant":  # one direction 100x the others between samples
        n, q, d = 400, 2, 16
        u = rng.standard_normal(d)
        centres = np.outer(100.0 * rng.standard_normal(n), u / np.linalg.norm(u)) + rng.standard_normal((n, d))
        return centres[:, None, :] + 0.5 * rng.standard_normal((n, q, d))
    if kind == "n_lt_d":
        n, q, d = 12, 3, 48
        return rng.standard_normal((n, 1, d)) + 0.5 * rng.standard_normal((n, q, d))
    if kind == "n_gg_d":
        n, q, d = 8000, 2, 6
        return 3.0 + rng.standard_normal((n, 1, d)) * np.linspace(0.5, 2.0, d) + 0.2 * rng.standard_normal((n, q, d))
    raise ValueError(kind)


KINDS = ["random", "low_rank", "isotropic", "dominant", "n_lt_d", "n_gg_d"]


@pytest.mark.parametrize("kind", KINDS)
def test_lidar_matches_the_reference(fw, kind):
    e = views_of(kind)
    x = fw.array(e)
    got = value(L.lidar(x))
    seen = np.asarray(A.to_host(x), dtype=np.float64)  # what the framework holds (float32 for JAX without x64)
    assert close(got, lidar_reference(seen), 1e-8), (kind, got)
    assert close(got, lidar_reference(e), fw.spectral_rtol), (kind, got)


@pytest.mark.parametrize("kind", ["low_rank", "n_lt_d", "dominant"])
def test_device_route_matches_the_reference(fw, kind):
    """The code torch CUDA and JAX with x64 run (covariances in fw's namespace), on real values."""
    e = views_of(kind)
    x = fw.array(e)
    xp = A.namespace(x)
    sw, sb, bad = L.covariances(xp, A.to_float(x, xp))
    assert is_framework_array(sw, fw) and not bool(A.to_host(bad))
    got = value(L.lidar_from_covariances(xp, sw, sb))
    seen = np.asarray(A.to_host(x), dtype=np.float64)
    rtol = 1e-8 if A.float_dtype(xp) == xp.float64 else 5e-3  # float32 eigh on the device
    assert close(got, lidar_reference(seen), rtol), (kind, got)


def test_a_known_lda_spectrum_gives_its_rank():
    """k balanced class directions over isotropic augmentation noise: k equal eigenvalues, LiDAR ≈ k."""
    n, d, k, t, s = 96, 8, 3, 2.0, 0.5
    centres = np.zeros((n, d))
    noise = np.zeros((n, d))
    for i in range(n):
        centres[i, i % k] = t if (i // k) % 2 == 0 else -t  # mean 0, Σ_b = t²(n/k)/(n−1) on k axes
        noise[i, i % d] = s  # Σ_w = 2s²(n/d)/(n(q−1)) I = 2s²/d I
    views = np.stack([centres + noise, centres - noise], axis=1)
    lam = t * t * (n / k) / (n - 1) / (2 * s * s / d + 1e-4)
    p = np.array([lam / (k * lam) + 1e-7] * k + [1e-7] * (d - k))
    expected = float(np.exp(-(p * np.log(p)).sum()))
    assert close(value(L.lidar(views)), expected, 1e-10)
    assert abs(expected - k) < 1e-4


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_torch_views(dtype):
    torch = pytest.importorskip("torch")
    e = views_of("random")
    x = torch.from_numpy(e).to(getattr(torch, dtype))
    got = value(L.lidar(x))
    assert close(got, lidar_reference(x.double().numpy()), 1e-8)
    assert close(got, lidar_reference(e), 0.05)  # the rounding of the views themselves


def test_host_data_is_a_writer_job_and_a_copy(fw):
    e = views_of("random")
    x = fw.array(e.copy())
    out = L.lidar(x)
    assert isinstance(out, A.Deferred)  # host data (and JAX without x64): computed on the writer thread
    if fw.name != "jax":
        x[...] = 0.0  # the loop reuses its buffer after the step: the value is the step's
    assert close(value(out), lidar_reference(e), fw.spectral_rtol)


def test_collapse_reads_low_and_nan_input_gives_nan():
    rng = np.random.default_rng(1)
    assert value(L.lidar(views_of("isotropic"))) > 12.0  # of 16
    flat = np.zeros((300, 2, 16))  # dimensional collapse: samples and views in 2 of 16 directions
    flat[:, :, :2] = rng.standard_normal((300, 1, 2)) + 0.3 * rng.standard_normal((300, 2, 2))
    assert 1.0 < value(L.lidar(flat)) <= 2.0 + 1e-3
    assert close(value(L.lidar(np.ones((50, 2, 16)))), 1.0, 1e-4)  # complete collapse: Σ_b = 0
    bad = views_of("random")
    bad[3, 1, 2] = np.nan
    assert math.isnan(value(L.lidar(bad)))


@pytest.mark.parametrize(
    ("views", "match"),
    [
        (np.zeros((10, 4)), r"lidar: views must be an \(n_samples, n_views, d\) array, got shape \(10, 4\)"),
        (np.zeros((10, 1, 4)), "at least 2 samples and 2 views"),
        ([[1.0]], "views given as a list must hold q >= 2 arrays"),
        (
            [np.zeros((5, 3)), np.zeros((6, 3))],
            r"need \(n_samples, d\) arrays of one shape, got \[\(5, 3\), \(6, 3\)\]",
        ),
        ("views", "views must be an .* array, got str"),
    ],
)
def test_bad_views_name_the_input(views, match):
    with pytest.raises(ValueError, match=match):
        L.lidar(views)


def test_a_list_of_one_array_per_view_is_stacked(fw):
    e = views_of("random")
    got = value(L.lidar([fw.array(e[:, 0]), fw.array(e[:, 1])]))
    assert close(got, value(L.lidar(fw.array(e))), 1e-12)


def test_large_inputs_are_subsampled_to_the_row_cap():
    n, q = A.MAX_ROWS // 2 + 100, 2
    rng = np.random.default_rng(2)
    e = rng.standard_normal((n, 1, 4)) + 0.1 * rng.standard_normal((n, q, 4))
    kept = e[A.row_indices(n, A.MAX_ROWS // q, np, "cpu")]
    assert close(value(L.lidar(e)), lidar_reference(kept), 1e-8)


def test_monitor_writes_lidar_every_1000_steps_and_fans_out_dicts(tmp_path):
    a, b = views_of("random"), views_of("low_rank")
    with mr.Monitor(str(tmp_path)) as mon:
        for step in (0, 500, 1000):
            mon.step(step, views=lambda: {"image": a, "text": b})
        mon.step(1001, embeddings=a[:, 0])  # no views: no LiDAR
        mon.step(2000, views=a)
    written = scalars(tmp_path)
    assert [s for s, _ in written["train/lidar/image"]] == [0, 1000]
    assert close(written["train/lidar/image"][0][1], lidar_reference(a), 1e-6)
    assert close(written["train/lidar/text"][1][1], lidar_reference(b), 1e-6)
    assert [s for s, _ in written["train/lidar"]] == [2000]


def test_the_cuda_route_on_cpu_values(monkeypatch):
    """torch CUDA's route (covariances on the device, eigensolves in a host job) run on CPU tensors."""
    torch = pytest.importorskip("torch")
    monkeypatch.setattr(A, "host_route", lambda x: False)
    monkeypatch.setattr(A, "needs_host_eig", lambda x: True)
    e = views_of("low_rank")
    out = L.lidar(torch.from_numpy(e).float())
    assert isinstance(out, A.Deferred)
    assert close(value(out), lidar_reference(torch.from_numpy(e).float().double().numpy()), 1e-8)
    bad = torch.from_numpy(e).clone()
    bad[0, 0, 0] = float("inf")
    assert math.isnan(value(L.lidar(bad)))


@pytest.mark.parametrize(("n", "q", "d", "rank"), [(10, 2, 120, None), (6, 4, 200, 3), (30, 2, 181, None)])
def test_wide_views_take_the_span_route_and_match_the_reference(n, q, d, rank):
    """d above n·(q + 1) made the writer thread solve two d×d eigenproblems (O(d³): d = 2,048 took 2.5 s,
    d = 8,192 minutes, stalling every write queued behind it); the exact span route matches the
    reference, low-rank centres included (review12)."""
    rng = np.random.default_rng(d)
    centres = (
        rng.standard_normal((n, d)) if rank is None else rng.standard_normal((n, rank)) @ rng.standard_normal((rank, d))
    )
    views = centres[:, None, :] + 0.3 * rng.standard_normal((n, q, d))
    ref = lidar_reference(views)
    assert d > 2 * n * (q + 1) and close(L._lidar_np(views), ref, 1e-8)
    assert close(value(L.lidar(views.astype(np.float32))), lidar_reference(views.astype(np.float32)), 1e-5)
    views[2, 1, 5] = np.nan
    assert np.isnan(L._lidar_np(views))
