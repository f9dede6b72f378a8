"""The collapse family's host route: float64 on the writer thread, the value of its own step.

numpy arrays, torch CPU tensors and JAX arrays without x64 are measured as one host job
(metricreg.arrays.HostJob) that the writer thread runs: the training thread only snapshots
the rows. These tests pin what a user relies on: JAX without x64 gets float64-grade spectra
(it used to be float32: small singular values off by several hundred percent), an in-place
update after the step does not leak into the value written for it, and the O(n·d²) work
really runs off the calling thread.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

import metricreg as mr
from metricreg import arrays as A
from metricreg.builtins import collapse as C
from tests.builtins.conftest import close, values
from tests.builtins.test_collapse import reference
from tests.core.eventfiles import scalars


def near_collapse(n: int = 1024, d: int = 64, seed: int = 0) -> np.ndarray:
    """One dominant direction, 8 directions at 1e-3 of it, isotropic noise at 1e-5: float32."""
    rng = np.random.default_rng(seed)
    u = rng.standard_normal(d)
    q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    z = np.outer(1.0 + 0.1 * rng.random(n), u)
    z += 1e-3 * rng.standard_normal((n, 8)) @ q[:8] + 1e-5 * rng.standard_normal((n, d))
    return z.astype(np.float32)


def centered_ratios(z: np.ndarray) -> np.ndarray:
    z = z.astype(np.float64)
    s = np.linalg.svd(z - z.mean(0), compute_uv=False)[: min(z.shape[0] - 1, z.shape[1])]
    return s / s[0]


def test_jax_without_x64_matches_a_float64_reference_at_collapse():
    jax = pytest.importorskip("jax")
    if jax.config.read("jax_enable_x64"):
        pytest.skip("this regression is about JAX without jax_enable_x64")
    z = near_collapse()
    got = values(C.collapse(jax.numpy.asarray(z)))
    ref = reference(z)  # numpy float64 SVDs of the same float32 data
    for member, expected in ref.items():
        assert close(got[member], expected, 1e-6, atol=1e-9), (member, got[member], expected)
    # The noise-floor directions (σ/σ₁ ≈ 1e-5) are where a float32 Gram matrix fails (4-5x off).
    spectrum = 10.0 ** np.asarray(C.collapse_spectrum(jax.numpy.asarray(z)), dtype=np.float64)
    np.testing.assert_allclose(spectrum[:16], centered_ratios(z)[:16], rtol=1e-6)


@pytest.mark.parametrize("framework", ["numpy", "torch"])
@pytest.mark.parametrize("max_rows", [None, 300])
def test_value_written_is_the_value_at_its_step(framework, max_rows):
    """An in-place update after the step (a reused buffer) must not change the step's value."""
    z = near_collapse(n=600, d=16, seed=1).astype(np.float64)
    expected = {m: v for m, v in values(C.analyse(z.copy(), max_rows=max_rows)["members"]).items()}
    if framework == "torch":
        torch = pytest.importorskip("torch")
        buf = torch.from_numpy(z.copy())
        result = C.analyse(buf, max_rows=max_rows)
        buf.normal_()  # the training loop overwrites its buffer before the writer runs
    else:
        buf = z.copy()
        result = C.analyse(buf, max_rows=max_rows)
        buf[:] = np.random.default_rng(2).standard_normal(buf.shape)
    got = values(result["members"])
    assert got == pytest.approx(expected, rel=1e-12, abs=1e-15)
    assert close(got["rankme"], reference(z if max_rows is None else np.asarray(A.as_matrix(z, 300)))["rankme"], 1e-6)


def test_heavy_work_runs_on_the_writer_thread(tmp_path, monkeypatch):
    """Through a real Monitor: no eigensolve on the training thread, correct values in the file."""
    torch = pytest.importorskip("torch")
    calls: list[str] = []
    real = np.linalg.eigvalsh

    def recording(a, *args, **kwargs):
        calls.append(threading.current_thread().name)
        return real(a, *args, **kwargs)

    monkeypatch.setattr(np.linalg, "eigvalsh", recording)
    z = near_collapse(n=512, d=32, seed=3)
    buf = torch.from_numpy(z.copy())
    with mr.Monitor(str(tmp_path)) as mon:
        mon.step(0, embeddings=buf)
        buf.zero_()  # reused buffer: the written value must still be step 0's
        assert threading.current_thread().name not in calls
    # This near-collapsed float32 batch fails the float32 route's error check after its centered
    # eigensolve (metricreg.host_spectrum), then takes the float64 route's two: all on the writer.
    assert len(calls) == 3
    assert threading.current_thread().name not in calls
    written = scalars(tmp_path)
    ref = reference(z)
    assert close(written["train/collapse/rankme"][0][1], ref["rankme"], 1e-6)
    assert close(written["train/collapse/effective_rank"][0][1], ref["effective_rank"], 1e-6)
