"""Prediction quality (cosine, NMSE, PSNR) and paired-embedding alignment; numpy / torch / JAX."""

from __future__ import annotations

import math

import numpy as np
import pytest

from metricreg import arrays as A
from metricreg.builtins import prediction as R
from tests.builtins.conftest import close, is_framework_array, value, values


def test_cosine_statistics_match_reference(fw):
    rng = np.random.default_rng(0)
    p, t = rng.standard_normal((4, 25, 8)), rng.standard_normal((4, 25, 8))
    got = R.cosine(fw.array(p), fw.array(t))
    # CPU data (numpy, torch CPU) is copied and computed on the writer thread; device arrays stay put.
    host = A.is_host_data(fw.array(p))
    assert all(isinstance(v, A.Deferred) if host else is_framework_array(v, fw) for v in got.values())
    got = values(got)
    pf, tf = p.reshape(-1, 8), t.reshape(-1, 8)
    cos = (pf * tf).sum(1) / np.linalg.norm(pf, axis=1) / np.linalg.norm(tf, axis=1)
    for k, ref in {"mean": cos.mean(), "std": cos.std(ddof=1), "min": cos.min(), "max": cos.max()}.items():
        assert close(got[k], ref, fw.rtol, atol=1e-7), k


def test_nmse_is_fraction_of_variance_unexplained(fw):
    rng = np.random.default_rng(1)
    t = rng.standard_normal((200, 6)) + 5.0
    assert close(value(R.nmse(fw.array(t), fw.array(t))), 0.0, 0.0, atol=1e-12)
    mean_pred = np.broadcast_to(t.mean(0), t.shape)
    assert close(value(R.nmse(fw.array(mean_pred), fw.array(t))), 1.0, fw.rtol)
    p = t + 0.1 * rng.standard_normal(t.shape)
    ref = ((p - t) ** 2).sum() / ((t - t.mean(0)) ** 2).sum()
    assert close(value(R.nmse(fw.array(p), fw.array(t))), ref, fw.rtol)
    assert math.isnan(value(R.nmse(fw.array(np.ones((3, 2))), fw.array(np.ones((3, 2))))))


def test_psnr_matches_reference(fw):
    rng = np.random.default_rng(2)
    img = rng.random((4, 3, 8, 8))
    rec = np.clip(img + 0.05 * rng.standard_normal(img.shape), 0, 1)
    mse = ((rec - img) ** 2).reshape(4, -1).mean(1)
    assert close(value(R.psnr(fw.array(rec), fw.array(img))), float(np.mean(10 * np.log10(1.0 / mse))), fw.rtol)
    single = value(R.psnr(fw.array(rec[0, 0]), fw.array(img[0, 0])))
    assert close(single, float(10 * np.log10(1 / ((rec[0, 0] - img[0, 0]) ** 2).mean())), fw.rtol)
    u8 = (img[0].transpose(1, 2, 0) * 255).astype(np.uint8)
    assert value(R.psnr(fw.array(u8), fw.array(u8))) == pytest.approx(200.0)  # capped, finite


def test_paired_alignment(fw):
    rng = np.random.default_rng(3)
    a = rng.standard_normal((64, 16))
    b = a + 0.3 * rng.standard_normal(a.shape)
    got = values(R.paired((fw.array(a), fw.array(b))))
    an = a / np.linalg.norm(a, axis=1, keepdims=True)
    bn = b / np.linalg.norm(b, axis=1, keepdims=True)
    sim = an @ bn.T
    off = (sim.sum() - np.trace(sim)) / (64 * 63)
    assert close(got["diag"], np.trace(sim) / 64, fw.rtol) and close(got["offdiag"], off, fw.rtol, atol=1e-7)
    assert close(got["margin"], np.trace(sim) / 64 - off, fw.rtol)
    assert got["top1"] == float((sim.argmax(1) == np.arange(64)).mean())
    shuffled = values(R.paired({"image": fw.array(a), "text": fw.array(b[::-1].copy())}))
    assert shuffled["margin"] < 0.2 and shuffled["top1"] < 0.2
    assert R.paired(fw.array(a)) is None


def test_similarity_image(fw):
    rng = np.random.default_rng(4)
    a = rng.standard_normal((100, 8))
    img = np.asarray(R.similarity_image((fw.array(a), fw.array(a))))
    assert img.shape == (256, 256, 3) and img.dtype == np.float32
    assert img.min() >= 0.0 and img.max() <= 1.0
    assert np.allclose(img[0, 0], [1.0, 0.0, 0.0], atol=1e-6)  # diagonal: cosine 1 → red


def test_psnr_of_a_grayscale_batch_is_the_mean_of_per_image_psnrs():
    """Regression: a (B, H, W) batch was pooled into one image (24.0 dB against 34.2 dB)."""
    from metricreg.builtins.prediction import psnr

    rng = np.random.default_rng(0)
    image = rng.random((4, 8, 8))
    noise = np.array([0.001, 0.01, 0.05, 0.2])[:, None, None] * rng.standard_normal((4, 8, 8))
    rec = image + noise
    per_image = [10 * np.log10(1.0 / np.mean((rec[i] - image[i]) ** 2)) for i in range(4)]
    assert float(psnr(rec, image)) == pytest.approx(float(np.mean(per_image)), rel=1e-9)
    # One H×W×3 image stays one image.
    one = rng.random((8, 8, 3))
    assert float(psnr(one + 0.01, one)) == pytest.approx(40.0, rel=1e-9)


def test_cpu_predictions_are_the_values_at_their_step():
    """The writer computes cosine/NMSE later: an in-place update after the step must not leak in."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    p, t = rng.standard_normal((64, 8)), rng.standard_normal((64, 8))
    expected_cos = values(R.cosine(p.copy(), t.copy()))
    expected_nmse = value(R.nmse(p.copy(), t.copy()))
    tp, tt = torch.from_numpy(p.copy()), torch.from_numpy(t.copy())
    cos, err = R.cosine(tp, tt), R.nmse(tp, tt)
    tp.mul_(-3.0)  # the loop reuses its buffers before the writer thread gets to them
    tt.zero_()
    assert values(cos) == pytest.approx(expected_cos, rel=1e-12)
    assert value(err) == pytest.approx(expected_nmse, rel=1e-12)


def test_mismatched_cpu_pair_still_fails_on_the_training_thread():
    """A bad pair must raise where the Monitor counts it, not become a NaN on the writer thread."""
    with pytest.raises(Exception):  # noqa: B017 - whatever the array library raises
        R.cosine(np.ones((6, 4)), np.ones((6, 3)))
    with pytest.raises(Exception):  # noqa: B017
        R.nmse(np.ones((6, 4)), np.ones((5, 4)))
