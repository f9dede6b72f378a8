"""Feature histograms and the reconstruction grid, on numpy / torch / JAX and float16/bfloat16 torch.

The grid reference is built here from the documented layout (targets above, reconstructions below,
2 white pixels between tiles, integer enlargement to ≥ 64 px, x / R clipped to [0, 1]).
"""

from __future__ import annotations

import numpy as np
import pytest

from metricreg import arrays as A
from metricreg.builtins import visuals as V

# --------------------------------------------------------------------------- feature histograms


def sample(result: dict, key: str) -> np.ndarray:
    return np.asarray(A.to_host(result[key]), dtype=np.float64)


def test_small_embeddings_are_drawn_whole(fw):
    z = np.random.default_rng(0).standard_normal((50, 16)) * 3 + 1
    got = V.features(fw.array(z))
    assert np.allclose(sample(got, "values"), z.ravel(), rtol=fw.rtol)
    assert np.allclose(sample(got, "norms"), np.linalg.norm(z, axis=1), rtol=fw.rtol)


def test_large_embeddings_are_sampled_as_whole_rows(fw):
    rng = np.random.default_rng(1)
    n, d = 6000, 32
    z = rng.standard_normal((n, d))
    got = V.features(fw.array(z))
    values, norms = sample(got, "values"), sample(got, "norms")
    assert values.size == V.FEATURE_MAX_VALUES and norms.size == V.FEATURE_MAX_ROWS
    rows = values.reshape(-1, d)
    dist = (rows**2).sum(1)[:, None] + (z**2).sum(1)[None, :] - 2 * rows @ z.T  # squared distances to z's rows
    picked = dist.argmin(1)
    assert np.all(dist[np.arange(len(rows)), picked] <= 1e-5)  # each is a whole row of z
    assert len(set(picked)) == len(picked)  # distinct rows
    assert max(picked) > n // 2  # spread over the batch, not its head
    all_norms = np.linalg.norm(z, axis=1)
    assert np.all(np.min(np.abs(norms[:, None] - all_norms[None, :]), axis=1) <= 1e-5 * norms)
    again = sample(V.features(fw.array(z)), "values")
    assert np.array_equal(values, again)  # a fixed selection


def test_very_wide_embeddings_cut_at_the_value_cap(fw):
    z = np.arange(3 * 20_000, dtype=np.float64).reshape(3, 20_000)
    values = sample(V.features(fw.array(z, "float32")), "values")
    assert values.size == V.FEATURE_MAX_VALUES
    row = int(values[0]) // 20_000
    assert np.array_equal(values, z[row, : V.FEATURE_MAX_VALUES])


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_features_half_precision_torch(dtype):
    torch = pytest.importorskip("torch")
    z = torch.from_numpy(np.random.default_rng(2).standard_normal((40, 24)) * 50).to(getattr(torch, dtype))
    exact = z.double().numpy()
    got = V.features(z)
    assert np.array_equal(sample(got, "values"), exact.ravel())
    assert np.allclose(sample(got, "norms"), np.linalg.norm(exact, axis=1), rtol=1e-12)  # no fp16 overflow


def test_features_skip_what_is_not_an_array():
    assert V.features({"nested": np.ones((2, 2))}) is None
    assert V.features(np.ones((0, 4))) is None


# --------------------------------------------------------------------------- reconstruction grid


def reference_grid(img_bhwc: np.ndarray, rec_bhwc: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Independent reference: (k, h, w, c) arrays in display range [lo, hi] -> the documented grid."""
    k = min(4, len(img_bhwc))

    def tile(x):
        x = np.clip((x.astype(np.float64) - lo) / (hi - lo), 0, 1)
        scale = max(1, -(-64 // max(x.shape[:2])))
        return np.kron(x, np.ones((scale, scale, 1)))

    top = [tile(img_bhwc[i]) for i in range(k)]
    bottom = [tile(rec_bhwc[i]) for i in range(k)]
    h, _, c = top[0].shape
    gap_col = np.ones((h, 2, c))

    def row(tiles):
        parts = []
        for i, t in enumerate(tiles):
            parts += [gap_col, t] if i else [t]
        return np.concatenate(parts, axis=1)

    top_row, bottom_row = row(top), row(bottom)
    return np.concatenate([top_row, np.ones((2, top_row.shape[1], c)), bottom_row], axis=0)


def grid(rec, img, data_range=None) -> np.ndarray:
    return np.asarray(V.reconstruction_image(rec, img, data_range))


def pair(shape, seed=3):
    rng = np.random.default_rng(seed)
    img = rng.random(shape)
    return np.clip(img + 0.2 * rng.standard_normal(shape), -0.5, 1.5), img  # rec overshoots: clipped


@pytest.mark.parametrize(
    ("shape", "to_bhwc"),
    [
        ((6, 8, 8), lambda x: x[..., None]),  # (B, H, W) grayscale
        ((5, 8, 10, 3), lambda x: x),  # (B, H, W, C)
        ((3, 3, 10, 8), lambda x: x.transpose(0, 2, 3, 1)),  # (B, C, H, W)
        ((2, 1, 8, 8), lambda x: x.transpose(0, 2, 3, 1)),  # (B, 1, H, W)
        ((8, 8, 3), lambda x: x[None]),  # one (H, W, C) image
        ((8, 8), lambda x: x[None, ..., None]),  # one (H, W) image
    ],
)
def test_grid_layouts_match_the_reference(fw, shape, to_bhwc):
    rec, img = pair(shape)
    got = grid(fw.array(rec), fw.array(img))
    ref = reference_grid(to_bhwc(img), to_bhwc(rec), 0.0, 1.0)
    assert got.shape == ref.shape and np.allclose(got, ref, atol=1e-6)


def test_grid_of_rgba_drops_alpha(fw):
    rec, img = pair((2, 8, 8, 4))
    got = grid(fw.array(rec), fw.array(img))
    assert np.allclose(got, reference_grid(img[..., :3], rec[..., :3], 0.0, 1.0), atol=1e-6)


def test_grid_ranges(fw):
    rec, img = pair((3, 8, 8, 3))
    u8_img, u8_rec = (img * 255).astype(np.uint8), (np.clip(rec, 0, 1) * 255).astype(np.uint8)
    got = grid(fw.array(u8_rec), fw.array(u8_img))  # integers: R = 255
    assert np.allclose(got, reference_grid(u8_img, u8_rec, 0.0, 255.0), atol=1e-6)
    got = grid(fw.array(rec * 2), fw.array(img * 2), data_range=2.0)
    assert np.allclose(got, reference_grid(img * 2, rec * 2, 0.0, 2.0), atol=1e-6)
    got = grid(fw.array(rec * 2), fw.array(img * 2), data_range=fw.array(np.float32(2.0)))
    assert np.allclose(got, reference_grid(img * 2, rec * 2, 0.0, 2.0), atol=1e-6)
    std_img, std_rec = (img - 0.5) / 0.25, (rec - 0.5) / 0.25  # standardised: its own [min, max]
    got = grid(fw.array(std_rec), fw.array(std_img))
    assert np.allclose(got, reference_grid(std_img, std_rec, std_img.min(), std_img.max()), atol=1e-5)


def test_large_images_are_strided_down():
    rec, img = pair((1, 600, 520))
    got = grid(rec, img)
    assert got.shape == (2 * 200 + 2, 174, 1)  # stride 3: 600 -> 200, 520 -> 174
    assert np.allclose(got[:200, :, 0], np.clip(img[0, ::3, ::3], 0, 1))


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_grid_half_precision_torch(dtype):
    torch = pytest.importorskip("torch")
    rec, img = pair((4, 3, 8, 8))
    t_rec, t_img = (torch.from_numpy(x).to(getattr(torch, dtype)) for x in (rec, img))
    got = grid(t_rec, t_img)
    ref = reference_grid(
        t_img.double().numpy().transpose(0, 2, 3, 1), t_rec.double().numpy().transpose(0, 2, 3, 1), 0, 1
    )
    assert np.allclose(got, ref, atol=1e-6)


def test_grid_is_the_value_at_its_step():
    rec, img = pair((2, 8, 8))
    result = V.reconstruction_image(rec, img)
    expected = reference_grid(img[..., None], rec[..., None], 0.0, 1.0)
    img[:] = 0.0  # the training loop reuses its buffers before the writer runs
    assert np.allclose(np.asarray(result), expected)


def test_grid_bad_input():
    with pytest.raises(ValueError, match=r"reconstruction \(2, 8, 8\) and image \(2, 8, 9\)"):
        V.reconstruction_image(np.zeros((2, 8, 8)), np.zeros((2, 8, 9)))
    assert V.reconstruction_image(np.zeros((2, 3, 3, 8, 8)), np.zeros((2, 3, 3, 8, 8))) is None  # video: skipped
    assert V.reconstruction_image(np.zeros((2, 5, 8, 8)), np.zeros((2, 5, 8, 8))) is None  # no channel axis


@pytest.mark.parametrize(
    ("shape", "to_bhwc"),
    [
        ((2, 3, 1030, 700), lambda x: x.transpose(0, 2, 3, 1)),  # (B, C, H, W): stride 5
        ((6, 700, 1030, 3), lambda x: x),  # (B, H, W, C): 4 of 6 images
        ((700, 1030), lambda x: x[None, ..., None]),  # one (H, W) image
    ],
)
def test_large_images_are_strided_before_the_copy(fw, shape, to_bhwc):
    """The training thread copied the first 4 images whole (hundreds of MB for 4K frames) only for the writer
    to keep every 16th pixel; it now copies the drawn pixels only, and the grid is unchanged (review12)."""
    rec, img = pair(shape)
    result = V.reconstruction_image(fw.array(rec), fw.array(img))
    held = [np.asarray(A.to_host(v)).size for v, _ in result.job._pending.values()]
    channels = 3 if len(shape) == 4 else 1
    assert max(held) <= 4 * 256 * 256 * channels  # what the grid draws, not the frames
    stride = -(-1030 // 256)
    got = np.asarray(result)
    ref = reference_grid(to_bhwc(img)[:, ::stride, ::stride], to_bhwc(rec)[:, ::stride, ::stride], 0.0, 1.0)
    assert got.shape == ref.shape and np.allclose(got, ref, atol=1e-6)
