"""Per-image PSNR spread and histogram against a numpy float64 reference.

Reference: PSNRᵢ = 10·log10(R² / MSEᵢ), MSEᵢ the mean squared error over image i's pixels, R the
data range (1 for float images, 255 for uint8); std with ddof 1.
"""

from __future__ import annotations

import numpy as np
import pytest

import metricreg as mr
from metricreg import arrays as A
from metricreg.builtins import prediction as P
from metricreg.builtins import reconstruction as R
from tests.builtins.conftest import close, is_framework_array, value, values
from tests.core.eventfiles import load, scalars


def reference(rec: np.ndarray, img: np.ndarray, r: float) -> np.ndarray:
    rec, img = np.asarray(rec, dtype=np.float64), np.asarray(img, dtype=np.float64)
    return np.array(
        [10.0 * np.log10(r * r / max(((a - b) ** 2).mean(), r * r * 1e-20)) for a, b in zip(rec, img, strict=True)]
    )


def batch(kind: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray, float]:
    rng = np.random.default_rng(seed)
    if kind == "random":  # (B, C, H, W), noise of a different level per image
        img = rng.random((8, 3, 16, 16))
        return img + rng.standard_normal((8, 1, 1, 1)) * 0.05 * rng.standard_normal(img.shape), img, 1.0
    if kind == "one_bad":  # seven good reconstructions, one far off: min and std show it, the mean hides it
        img = rng.random((8, 16, 16, 3))
        rec = img + 0.01 * rng.standard_normal(img.shape)
        rec[5] = rng.random((16, 16, 3))
        return rec, img, 1.0
    if kind == "perfect":  # identical images: capped at 200 dB
        img = rng.random((4, 1, 8, 8))
        rec = img.copy()
        rec[0] += 0.1
        return rec, img, 1.0
    if kind == "grayscale":  # (B, H, W)
        img = rng.random((6, 10, 12))
        return img + 0.02 * rng.standard_normal(img.shape), img, 1.0
    if kind == "uint8":
        img = rng.integers(0, 256, (5, 3, 8, 8)).astype(np.uint8)
        rec = np.clip(img.astype(int) + rng.integers(-9, 10, img.shape), 0, 255).astype(np.uint8)
        return rec, img, 255.0
    raise ValueError(kind)


KINDS = ["random", "one_bad", "perfect", "grayscale", "uint8"]


@pytest.mark.parametrize("kind", KINDS)
def test_spread_and_histogram_match_reference(fw, kind):
    rec, img, r = batch(kind)
    rq, iq = (np.asarray(A.to_host(fw.array(x)), dtype=np.float64) for x in (rec, img))
    ref = reference(rq, iq, r)
    got = values(R.psnr_spread(fw.array(rec), fw.array(img)))
    rtol = max(fw.rtol, 1e-9)
    assert close(got["std"], float(ref.std(ddof=1)), rtol, 1e-9), (kind, got, ref)
    assert close(got["min"], float(ref.min()), rtol) and close(got["max"], float(ref.max()), rtol)
    hist = R.psnr_hist(fw.array(rec), fw.array(img))
    assert is_framework_array(hist, fw)
    np.testing.assert_allclose(np.asarray(A.to_host(hist), dtype=np.float64), ref, rtol=rtol)


def test_spread_agrees_with_prediction_psnr_and_sees_the_bad_image():
    rec, img, _ = batch("one_bad")
    per_image = reference(rec, img, 1.0)
    assert value(P.psnr(rec, img)) == pytest.approx(per_image.mean(), rel=1e-12)  # the same definition
    got = values(R.psnr_spread(rec, img))
    assert got["min"] == pytest.approx(per_image[5], rel=1e-12) and got["max"] - got["min"] > 20.0


def test_perfect_reconstruction_is_capped_not_infinite():
    img = np.random.default_rng(0).random((3, 4, 4, 1))
    got = values(R.psnr_spread(img, img.copy()))
    assert got == {"std": 0.0, "min": pytest.approx(200.0), "max": pytest.approx(200.0)}


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_torch(dtype):
    torch = pytest.importorskip("torch")
    rec, img, _ = batch("random")
    rt = torch.from_numpy(rec.astype(np.float32)).to(getattr(torch, dtype))
    it = torch.from_numpy(img.astype(np.float32)).to(getattr(torch, dtype))
    ref = reference(rt.double().numpy(), it.double().numpy(), 1.0)
    got = values(R.psnr_spread(rt, it))
    assert close(got["min"], float(ref.min()), 1e-9) and close(got["std"], float(ref.std(ddof=1)), 1e-9)


def test_single_image_has_no_spread_and_mismatched_shapes_name_both():
    img = np.random.default_rng(0).random((8, 8, 3))  # one H×W×C image
    assert R.psnr_spread(img, img) is None and R.psnr_hist(img, img) is None
    with pytest.raises(ValueError, match=r"reconstruction \(2, 8, 8, 3\) and image \(2, 8, 8, 1\)"):
        R.psnr_spread(np.zeros((2, 8, 8, 3)), np.zeros((2, 8, 8, 1)))


def test_monitor_writes_spread_and_histogram(tmp_path):
    rec, img, _ = batch("one_bad")
    with mr.Monitor(str(tmp_path)) as mon:
        mon.step(0, reconstruction=rec, image=img)
    written = scalars(tmp_path)
    ref = reference(rec, img, 1.0)
    assert close(written["train/prediction/psnr_spread/min"][0][1], float(ref.min()), 1e-6)
    assert "train/prediction/psnr_hist" in load(tmp_path).Tags()["histograms"]


@pytest.mark.parametrize("which", ["reconstruction", "image"])
def test_a_dict_of_heads_is_an_error_naming_the_input_in_every_reconstruction_metric(tmp_path, which):
    """A dict (one entry per head) drew no reconstruction image and reported nothing, and failed psnr and
    psnr_spread with an AttributeError naming no input (review12 regression): none of them fans out over a
    dict, so each is now an error naming the input and its keys; the other metrics and training go on."""
    rec, img, _ = batch("random")
    inputs = {"reconstruction": rec, "image": img}
    inputs[which] = {"rgb": inputs[which], "depth": inputs[which]}
    with mr.Monitor(str(tmp_path)) as mon:
        for step in range(2):
            mon.step(step, loss=1.0, **inputs)
        errors = mon.errors
    metrics = ("prediction/psnr", "prediction/psnr_spread", "prediction/psnr_hist", "prediction/reconstructions")
    for metric in metrics:
        (error,) = [e for name, e in errors.items() if name.endswith(metric)]
        assert f"input '{which}' must be one array" in error["last_message"], metric
        assert "got a dict with keys ['depth', 'rgb']" in error["last_message"], metric
    written = scalars(tmp_path)
    assert "train/loss" in written  # the rest of the step is written
    assert not any(tag.startswith("train/prediction/") for tag in written)
