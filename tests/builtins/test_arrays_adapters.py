"""metricreg.arrays and metricreg.adapters: the shared helpers of the built-in metrics."""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest

from metricreg import adapters
from metricreg import arrays as A
from tests.builtins.conftest import close, is_framework_array, value


def reference_rankme(z: np.ndarray, eps: float = 1e-7) -> float:
    s = np.linalg.svd(np.asarray(z, dtype=np.float64), compute_uv=False)
    p = s / s.sum() + eps
    return float(np.exp(-(p * np.log(p)).sum()))


def test_row_indices_are_distinct_deterministic_and_spread(fw):
    xp = A.namespace(fw.array(np.zeros(1)))
    dev = A.device_of(fw.array(np.zeros(1)))
    idx = np.asarray(A.to_host(A.row_indices(10_000, 1000, xp, dev)))
    assert len(set(idx.tolist())) == 1000
    assert idx.min() >= 0 and idx.max() < 10_000
    assert np.array_equal(idx, np.asarray(A.to_host(A.row_indices(10_000, 1000, xp, dev))))
    # Spread over the whole batch: every tenth of it is sampled.
    assert len(set((idx // 1000).tolist())) == 10


@pytest.mark.parametrize("shape", [(300, 20), (20, 300)])
def test_spectrum_matches_svd(fw, shape):
    rng = np.random.default_rng(0)
    z = rng.standard_normal(shape) @ np.diag(np.logspace(0, -2, shape[1]))
    s = np.asarray(A.to_host(A.spectrum(fw.array(z))))
    ref = np.linalg.svd(z, compute_uv=False)
    assert s.shape == ref.shape
    np.testing.assert_allclose(s, ref, rtol=fw.spectral_rtol * 10, atol=1e-6 * ref[0])
    sc = np.asarray(A.to_host(A.spectrum(fw.array(z), center=True)))
    ref_c = np.linalg.svd(z - z.mean(0), compute_uv=False)[: min(shape[0] - 1, shape[1])]
    np.testing.assert_allclose(sc, ref_c, rtol=fw.spectral_rtol * 10, atol=1e-6 * ref[0])


def test_rankme_matches_svd_reference_and_stays_on_device(fw):
    rng = np.random.default_rng(1)
    z = rng.standard_normal((1280, 128)) + 0.5
    r = A.rankme(fw.array(z))
    assert is_framework_array(r, fw)
    assert close(value(r), reference_rankme(z), fw.spectral_rtol)


def test_rankme_finite_sample_ceiling():
    # Reference table: RankMe/d of i.i.d. Gaussian data is 0.80 at n = d and 0.987 at n = 10d.
    rng = np.random.default_rng(2)
    d = 128
    assert abs(value(A.rankme(rng.standard_normal((d, d)))) / d - 0.80) < 0.02
    assert abs(value(A.rankme(rng.standard_normal((10 * d, d)))) / d - 0.987) < 0.005
    assert abs(value(A.rankme(rng.standard_normal((10 * d, d)))) - 126.3) < 0.3


def test_row_cap_subsamples_rows():
    rng = np.random.default_rng(3)
    z = rng.standard_normal((5000, 8))
    capped = A.as_matrix(z, max_rows=1000)
    assert capped.shape == (1000, 8)
    assert A.as_matrix(rng.standard_normal((4, 5, 8))).shape == (20, 8)


def test_nonfinite_input_gives_nan_not_an_exception(fw):
    z = np.random.default_rng(4).standard_normal((64, 8))
    for bad in (np.nan, np.inf):
        zb = z.copy()
        zb[3, 2] = bad
        assert math.isnan(value(A.rankme(fw.array(zb))))
        assert np.isnan(np.asarray(A.to_host(A.spectrum(fw.array(zb))))).all()


def test_float64_gram_route_is_exact_on_ill_conditioned_input():
    # Reference: 4096×64 with σ log-spaced 1 … 1e-8 is exact in float64 through the Gram route.
    rng = np.random.default_rng(5)
    u, _ = np.linalg.qr(rng.standard_normal((4096, 64)))
    v, _ = np.linalg.qr(rng.standard_normal((64, 64)))
    sig = np.logspace(0, -8, 64)
    z = (u * sig) @ v.T
    assert close(value(A.rankme(z)), reference_rankme(z), 1e-6)


def test_host_job_and_deferred_are_numbers_for_the_writer():
    from metricreg import host

    job = A.HostJob({"g": np.eye(3) * 4.0}, lambda h: {"a": float(h["g"].trace()), "b": np.ones(3)})
    d = A.Deferred(job, "a")
    assert float(d) == 12.0 and host.to_float(d) == 12.0
    assert np.asarray(A.Deferred(job, "b")).shape == (3,)
    failing = A.HostJob({"g": np.eye(2)}, lambda h: 1 / 0)
    assert math.isnan(float(A.Deferred(failing)))


def test_entropy_rank_of_zero_spectrum_is_one():
    assert close(value(A.entropy_rank(np.zeros(16))), 1.0, 1e-4)


# ------------------------------------------------------------------------------ adapters


def test_core_imports_neither_torch_nor_jax():
    import subprocess

    code = (
        "import sys, metricreg, metricreg.arrays, metricreg.adapters\n"
        "import metricreg.builtins.collapse, metricreg.builtins.ema, metricreg.builtins.optimization\n"
        "import metricreg.builtins.stability, metricreg.builtins.system, metricreg.builtins.prediction\n"
        "import metricreg.builtins.generalization, metricreg.builtins.performance, metricreg.builtins.loss\n"
        "assert 'torch' not in sys.modules and 'jax' not in sys.modules, sorted(sys.modules)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_named_parameters_torch_module_strips_wrappers():
    torch = pytest.importorskip("torch")
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))

    class Wrapper(torch.nn.Module):
        def __init__(self, module):
            super().__init__()
            self.module = module

    names = [n for n, _ in adapters.named_parameters(Wrapper(net))]
    assert names == ["0.weight", "0.bias", "2.weight", "2.bias"]
    pairs = adapters.matched_parameters(Wrapper(net), net)
    assert [n for n, _, _ in pairs] == names
    assert all(not p.requires_grad for _, p, _ in pairs)


def test_named_arrays_of_nested_dicts_and_jax_pytrees():
    tree = {"enc": {"w": np.ones((2, 2)), "b": np.zeros(2)}, "head": [np.ones(3)]}
    assert [n for n, _ in adapters.named_arrays(tree)] == ["enc.w", "enc.b", "head.0"]
    jax = pytest.importorskip("jax")
    jtree = jax.tree_util.tree_map(jax.numpy.asarray, tree)
    names = sorted(n for n, _ in adapters.named_parameters(jtree))
    assert names == ["enc.b", "enc.w", "head.0"]


def test_global_norm_matches_clip_grad_norm():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))
    net(torch.randn(32, 8)).pow(2).mean().backward()
    ref = torch.nn.utils.clip_grad_norm_(net.parameters(), float("inf"))
    ours = adapters.global_norm([g for _, g in adapters.named_grads(net)])
    assert close(float(ours), float(ref), 1e-6)
    grads_np = {n: g.numpy() for n, g in adapters.named_grads(net)}
    assert close(value(adapters.global_norm(list(grads_np.values()))), float(ref), 1e-6)


def test_group_name():
    assert adapters.group_name("encoder.layers.0.weight") == "encoder"
    assert adapters.group_name("encoder.layers.0.weight", 2) == "encoder.layers"
    assert adapters.group_name("weight") == "root"
    assert adapters.group_name("0.bias") == "0"


def test_sample_flat_is_exact_below_the_cap_and_unbiased_above():
    rng = np.random.default_rng(6)
    small = rng.standard_normal((10, 10))
    s, w = adapters.sample_flat(small)
    assert w == 1.0 and s.shape == (100,)
    big = rng.standard_normal((300, 300))
    s, w = adapters.sample_flat(big, cap=20_000)
    est = value(adapters.sampled_sq_norm([(s, w)]))
    assert close(est, float((big**2).sum()), 0.03)
