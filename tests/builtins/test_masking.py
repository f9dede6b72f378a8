"""The ``masking`` family: mask ratio and masked / visible tokens per sample; numpy / torch / JAX.

Reference: numpy float64 on the boolean mask, per sample then averaged (``reference``). The
counts are integers, so every backend must match exactly up to the float rounding of one
division (tolerance fw.rtol: 1e-12 numpy, 1e-9 torch, 1e-4 JAX without x64).
"""

from __future__ import annotations

import numpy as np
import pytest

import metricreg as mr
from metricreg.builtins import masking as M
from tests.builtins.conftest import close, is_framework_array, values
from tests.core.eventfiles import scalars


def reference(mask: np.ndarray) -> dict[str, float]:
    """Written from the definitions: per-sample counts over the token axes, then their batch mean."""
    m = np.asarray(mask) != 0
    rows = m.reshape(1, -1) if m.ndim == 1 else m.reshape(m.shape[0], -1)
    per_sample_masked = rows.sum(axis=1).astype(np.float64)
    per_sample_visible = (~rows).sum(axis=1).astype(np.float64)
    return {
        "ratio": float(per_sample_masked.sum() / rows.size),
        "num_masked": float(per_sample_masked.mean()),
        "num_unmasked": float(per_sample_visible.mean()),
    }


def masks() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    varying = rng.random((64, 196)) < rng.random((64, 1))  # a different ratio per sample
    fixed = np.argsort(rng.random((32, 16)), axis=1) < 12  # I-JEPA style: exactly 12 of 16 per sample
    return {
        "random_varying": varying,
        "fixed_count": fixed,
        "none_masked": np.zeros((8, 16), dtype=bool),
        "all_masked": np.ones((8, 16), dtype=bool),
        "one_sample": fixed[:1],
        "patch_grid": rng.random((16, 4, 4)) < 0.75,  # (B, H, W): tokens are the H·W patches
        "shared_1d": rng.random(49) < 0.5,  # one mask for the whole batch
        "int_01": (rng.random((10, 20)) < 0.3).astype(np.int64),
        "float_01": (rng.random((10, 20)) < 0.6).astype(np.float32),
    }


@pytest.mark.parametrize("case", sorted(masks()))
def test_masking_matches_the_numpy_reference(fw, case):
    mask = masks()[case]
    got = M.masking(fw.array(mask))
    assert set(got) == set(M.MEMBERS)
    assert all(is_framework_array(v, fw) for v in got.values())
    got, ref = values(got), reference(mask)
    for member in M.MEMBERS:
        assert close(got[member], ref[member], fw.rtol), (case, member, got[member], ref[member])


def test_known_values_of_a_structured_mask():
    mask = np.zeros((4, 10), dtype=bool)
    mask[:, :3] = True  # 3 of 10 masked in every sample
    mask[0, 3] = True  # and one more in the first
    got = values(M.masking(mask))
    assert got == pytest.approx({"ratio": 13 / 40, "num_masked": 13 / 4, "num_unmasked": 27 / 4}, rel=1e-15)


def test_half_precision_and_bool_torch_masks():
    torch = pytest.importorskip("torch")
    mask = masks()["random_varying"]
    ref = reference(mask)
    for dtype in (torch.bool, torch.float16, torch.bfloat16, torch.uint8):
        got = M.masking(torch.from_numpy(mask).to(dtype))
        assert all(v.dtype == torch.float64 for v in got.values()), dtype  # counted in a wide float
        got = values(got)
        for member in M.MEMBERS:
            assert close(got[member], ref[member], 1e-12), (dtype, member)


def test_bad_masks_name_the_input():
    with pytest.raises(TypeError, match=r"input 'mask' must be a boolean or 0/1 array.*list"):
        M.masking([[True, False]])
    with pytest.raises(ValueError, match=r"input 'mask' must have a token axis.*shape \(\)"):
        M.masking(np.asarray(True))
    with pytest.raises(ValueError, match=r"input 'mask'.*shape \(0, 16\)"):
        M.masking(np.zeros((0, 16), dtype=bool))
    with pytest.raises(TypeError, match=r"input 'mask' must be boolean or real numbers.*complex"):
        M.masking(np.zeros((2, 3), dtype=np.complex64))


def test_monitor_writes_masking_tags_plain_and_per_level(tmp_path):
    rng = np.random.default_rng(1)
    with mr.Monitor(str(tmp_path / "plain")) as mon:
        for step in range(21):
            mon.step(step, mask=rng.random((8, 16)) < 0.5)
    written = scalars(tmp_path / "plain")
    assert [s for s, _ in written["train/masking/ratio"]] == [0, 10, 20]
    assert {"train/masking/num_masked", "train/masking/num_unmasked"} <= set(written)

    level_masks = {"level0": np.arange(16)[None].repeat(8, 0) < 12, "level1": np.arange(4)[None].repeat(8, 0) < 1}
    with mr.Monitor(str(tmp_path / "levels")) as mon:
        for step in range(11):
            mon.step(step, mask=level_masks)
    written = scalars(tmp_path / "levels")
    assert written["train/masking/level0/ratio"][-1][1] == pytest.approx(0.75)
    assert written["train/masking/level0/num_unmasked"][-1][1] == pytest.approx(4.0)
    assert written["train/masking/level1/num_masked"][-1][1] == pytest.approx(1.0)
    assert "train/masking/ratio" not in written


def test_a_bad_mask_never_stops_training(tmp_path):
    with mr.Monitor(str(tmp_path)) as mon:
        for step in range(21):
            mon.step(step, loss=1.0, mask="not a mask")
    written = scalars(tmp_path)
    assert [s for s, _ in written["train/loss"]] == [0, 10, 20]  # the loop and the other metrics went on
    assert not any(tag.startswith("train/masking") for tag in written)


def test_one_bad_level_costs_only_itself(tmp_path):
    """A dict input with one bad key: the keys after it are still written, the error names input and key,
    and the good keys keep the family enabled past max_failures steps (review12 regression)."""
    good = np.arange(16)[None].repeat(8, 0) < 12
    with mr.Monitor(str(tmp_path), max_failures=2) as mon:
        for step in range(31):
            mon.step(step, mask={"level0": good, "broken": "not a mask", "level2": good})
        errors = mon.errors
    written = scalars(tmp_path)
    for level in ("level0", "level2"):  # level2 comes after the bad key; 4 due steps > max_failures
        assert [s for s, _ in written[f"train/masking/{level}/ratio"]] == [0, 10, 20, 30]
    assert not any("broken" in tag for tag in written)
    error = errors["masking"]
    assert "'mask'" in error["last_message"] and "'broken'" in error["last_message"]
    assert error["count"] == 4 and not error["disabled"]


def test_a_float_mask_is_summed_so_garbage_shows(fw):
    """A float mask with NaN (or non-0/1) entries counted each as one masked token: a NaN mask read as
    ratio 1.0. Now it is Σ mask / (B·N) as documented: NaN for NaN, 0.5 for halves (review12 regression)."""
    half = fw.array(np.full((4, 10), 0.5, dtype=np.float32))
    assert values(M.masking(half))["ratio"] == pytest.approx(0.5)
    broken = np.zeros((4, 10), dtype=np.float32)
    broken[:, :3] = 1.0
    broken[1, 7] = np.nan
    got = values(M.masking(fw.array(broken)))
    assert all(np.isnan(v) for v in got.values())
    broken[1, 7] = 0.0
    assert values(M.masking(fw.array(broken)))["ratio"] == pytest.approx(0.3)  # 0/1 floats: unchanged
