"""VICReg terms, per-dimension std and α-ReQ against numpy float64 references written from the papers.

References:
* VICReg (Bardes et al. 2022, arXiv 2105.04906, Eq. 1-4; facebookresearch/vicreg main_vicreg.py):
  std = √(Var + ε) per dimension (unbiased variance), v = mean(relu(γ − std)) with γ = 1, ε = 1e-4;
  c = Σ off_diagonal(cov)² / d with cov = ZcᵀZc / (n − 1).
* α-ReQ (Agrawal et al. 2022): λ = eigenvalues of the empirical covariance, descending; α = −slope
  of the least-squares line through (log i, log λᵢ) (here over λᵢ > 1e-6·λ₁, the non-negligible ones).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import metricreg as mr
from metricreg import arrays as A
from metricreg.builtins import representation as R
from tests.builtins.conftest import close, is_framework_array, value, values
from tests.core.eventfiles import scalars


def vicreg_reference(z: np.ndarray) -> dict[str, float]:
    z = np.asarray(z, dtype=np.float64)
    n, d = z.shape
    std_eps = np.sqrt(z.var(axis=0, ddof=1) + 1e-4)
    zc = z - z.mean(axis=0)
    cov = zc.T @ zc / (n - 1)
    off = cov[~np.eye(d, dtype=bool)]
    std = z.std(axis=0, ddof=1)
    return {
        "vicreg_var": float(np.mean(np.maximum(0.0, 1.0 - std_eps))),
        "vicreg_cov": float((off**2).sum() / d),
        "dim_std_mean": float(std.mean()),
        "dim_std_min": float(std.min()),
        "norm_std": float(np.std(np.sqrt((z * z).sum(axis=1)), ddof=1)),
    }


def alpha_reference(z: np.ndarray) -> float:
    z = np.asarray(z, dtype=np.float64)
    lam = np.sort(np.linalg.eigvalsh(np.cov(z, rowvar=False)))[::-1]
    lam = lam[lam > 1e-6 * lam[0]]
    if lam.size < 2:
        return math.nan
    slope, _ = np.polyfit(np.log(np.arange(1, lam.size + 1)), np.log(lam), 1)
    return float(-slope)


def data(kind: str, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind == "isotropic":  # std 0.5 everywhere: the variance hinge is active
        return 0.5 * rng.standard_normal((512, 32))
    if kind == "low_rank":  # 6 of 32 directions, rotated away from the axes
        q, _ = np.linalg.qr(rng.standard_normal((32, 32)))
        return 2.0 * rng.standard_normal((512, 6)) @ q[:6]
    if kind == "dominant":  # one direction 100x the others
        u = rng.standard_normal(32)
        return np.outer(100.0 * rng.standard_normal(512), u / np.linalg.norm(u)) + rng.standard_normal((512, 32))
    if kind == "n_lt_d":
        return rng.standard_normal((24, 64)) * np.linspace(0.1, 3.0, 64)
    if kind == "n_gg_d":
        return rng.standard_normal((20_000, 8)) * np.linspace(0.2, 2.0, 8) + 5.0
    if kind == "power_law":  # λᵢ ∝ i^(−1.5) by construction, rotated
        d = 128
        q, _ = np.linalg.qr(rng.standard_normal((d, d)))
        scales = np.arange(1, d + 1) ** -0.75
        return (rng.standard_normal((8192, d)) * scales) @ q
    raise ValueError(kind)


KINDS = ["isotropic", "low_rank", "dominant", "n_lt_d", "n_gg_d"]


@pytest.mark.parametrize("kind", KINDS)
def test_scale_terms_match_the_vicreg_reference(fw, kind):
    z = data(kind)
    zq = np.asarray(A.to_host(fw.array(z)), dtype=np.float64)  # the values the framework holds (JAX: float32)
    ref = vicreg_reference(zq)
    out = R.collapse_scale(fw.array(z))
    got = values(out)
    for key, expected in ref.items():  # JAX without x64: float32 on the device, within fw.rtol = 1e-4
        assert close(got[key], expected, fw.rtol), (kind, key, got[key], expected)


def test_structured_cases_read_as_documented():
    iso = values(R.collapse_scale(np.random.default_rng(1).standard_normal((4096, 16))))
    assert iso["vicreg_var"] < 0.02 and iso["vicreg_cov"] < 0.01 and abs(iso["dim_std_mean"] - 1.0) < 0.02
    shrunk = values(R.collapse_scale(1e-3 * np.random.default_rng(1).standard_normal((4096, 16))))
    assert shrunk["vicreg_var"] > 0.98  # embeddings at a point: the hinge is fully active
    dead = np.random.default_rng(2).standard_normal((256, 8))
    dead[:, 3] = 7.0  # one constant dimension
    assert values(R.collapse_scale(dead))["dim_std_min"] == 0.0


def test_norm_std_reads_norms_collapsing_to_zero_and_a_sphere():
    rng = np.random.default_rng(3)
    z = rng.standard_normal((1024, 16)) * rng.uniform(0.5, 1.5, (1024, 1))  # norms spread around 4
    healthy = values(R.collapse_scale(z))["norm_std"]
    assert healthy == pytest.approx(np.std(np.linalg.norm(z, axis=1), ddof=1), rel=1e-12)
    assert values(R.collapse_scale(1e-4 * z))["norm_std"] == pytest.approx(1e-4 * healthy, rel=1e-9)  # shrinking
    sphere = 3.0 * z / np.linalg.norm(z, axis=1, keepdims=True)  # every row at norm 3: no spread
    assert values(R.collapse_scale(sphere))["norm_std"] < 1e-12


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_scale_terms_on_half_precision_torch(dtype):
    torch = pytest.importorskip("torch")
    z = torch.from_numpy(data("dominant").astype(np.float32)).to(getattr(torch, dtype))
    ref = vicreg_reference(z.float().numpy())
    got = values(R.collapse_scale(z))
    for key, expected in ref.items():
        assert close(got[key], expected, 1e-9), (key, got[key], expected)


def test_scale_on_host_data_is_a_writer_job_and_device_data_stays_in_its_framework(fw):
    out = R.collapse_scale(fw.array(data("isotropic")))
    for v in out.values():
        if fw.name == "jax":
            assert is_framework_array(v, fw)
        else:  # numpy / torch CPU: copied now, computed by the writer thread
            assert isinstance(v, A.Deferred)


def test_scale_needs_two_rows_and_nan_input_gives_nan(fw):
    assert R.collapse_scale(fw.array(np.ones((1, 4)))) is None
    z = data("isotropic")
    z[3, 2] = np.nan
    assert all(math.isnan(v) for v in values(R.collapse_scale(fw.array(z))).values())


@pytest.mark.parametrize("kind", [*KINDS, "power_law"])
def test_alpha_matches_the_reference_fit(fw, kind):
    z = data(kind)
    zq = np.asarray(A.to_host(fw.array(z)), dtype=np.float64)
    expected = alpha_reference(zq)
    got = value(R.alpha_req(fw.array(z), step=0, shared={}))
    assert close(got, expected, max(fw.spectral_rtol, 1e-8)), (kind, got, expected)


def test_alpha_recovers_a_known_power_law():
    assert value(R.alpha_req(data("power_law"))) == pytest.approx(1.5, abs=0.1)
    assert value(R.alpha_req(np.random.default_rng(0).standard_normal((20_000, 64)))) < 0.1  # flat spectrum


def test_alpha_of_a_rank_one_cloud_is_nan():
    z = np.outer(np.random.default_rng(0).standard_normal(100), np.ones(8))
    assert math.isnan(value(R.alpha_req(z)))


def test_alpha_reuses_the_collapse_spectrum_of_the_step(monkeypatch):
    calls = []
    real = np.linalg.eigvalsh
    monkeypatch.setattr(np.linalg, "eigvalsh", lambda a, *args, **kw: calls.append(1) or real(a, *args, **kw))
    from metricreg.builtins import collapse

    z = data("low_rank")
    shared: dict = {}
    family = collapse.collapse(z, step=5, shared=shared)
    alpha = R.alpha_req(z, step=5, shared=shared)
    value(family["rankme"]), value(alpha)
    assert len(calls) == 2  # collapse's two spectra; α fits the cached one


def test_monitor_writes_the_fanned_out_tags(tmp_path):
    rng = np.random.default_rng(0)
    ctx, tgt = data("power_law"), 0.5 * rng.standard_normal((256, 16))
    with mr.Monitor(str(tmp_path)) as mon:
        mon.step(0, embeddings=lambda: {"context": ctx, "target": tgt})
    written = scalars(tmp_path)
    assert close(written["train/collapse_scale/target/vicreg_var"][0][1], vicreg_reference(tgt)["vicreg_var"], 1e-6)
    assert close(written["train/collapse_scale/context/dim_std_min"][0][1], vicreg_reference(ctx)["dim_std_min"], 1e-6)
    assert close(written["train/collapse_scale/target/norm_std"][0][1], vicreg_reference(tgt)["norm_std"], 1e-6)
    assert close(written["train/eigenspectrum/context/alpha"][0][1], alpha_reference(ctx), 1e-6)


@pytest.mark.parametrize("kind", ["low_rank", "n_lt_d", "dominant"])
def test_device_route_matches_reference(fw, kind):
    """The on-device code (CUDA, JAX) run on real values: scale terms and the α fit in fw's namespace."""
    z = data(kind)
    zq = np.asarray(A.to_host(fw.array(z)), dtype=np.float64)
    x = fw.array(z)
    xp = A.namespace(x)
    got = values(R.scale_terms(xp, A.to_float(x, xp)))
    for key, expected in vicreg_reference(zq).items():
        assert close(got[key], expected, fw.rtol), (kind, key, got[key], expected)
    sigma = np.sqrt(np.clip(np.sort(np.linalg.eigvalsh(np.cov(zq, rowvar=False)))[::-1], 0.0, None))
    sigma = sigma[: min(zq.shape[0] - 1, zq.shape[1])]
    log_sigma = np.clip(np.log10(np.clip(sigma / sigma[0], 1e-30, None)), -12.0, None)
    alpha = value(R.alpha_from_log_spectrum(xp, fw.array(log_sigma)))
    assert close(alpha, alpha_reference(zq), max(fw.rtol, 1e-9)), (kind, alpha)


def test_a_non_array_names_the_embeddings_input():
    """A list used to fail with "AttributeError: 'list' object has no attribute 'ndim'" (review12 regression)."""
    rows = [[0.0, 1.0], [1.0, 0.0], [1.0, 1.0]]
    with pytest.raises(TypeError, match=r"input 'embeddings' must be an \(n, d\) array or a dict of them, got list"):
        R.collapse_scale(rows)
    with pytest.raises(TypeError, match=r"input 'embeddings' must be an \(n, d\) array or a dict of them, got list"):
        R.alpha_req(rows)
