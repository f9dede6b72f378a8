"""paired_embeddings with more than two modalities: every pair's members and image, on numpy / torch / JAX.

The references are written here from the definitions (cosine-similarity matrix of the L2-normalised
rows; the documented blue–white–red colour scale), not from the metric's code.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from metricreg import arrays as A
from metricreg.builtins import prediction as R
from tests.builtins.conftest import close, values

MEMBERS = ("diag", "offdiag", "margin", "top1")


def reference_members(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    sim = np.array([[np.dot(x, y) / np.linalg.norm(x) / np.linalg.norm(y) for y in b] for x in a])
    n = len(a)
    diag = float(np.mean(np.diag(sim)))
    off = float(sim[~np.eye(n, dtype=bool)].mean())
    top1 = float(np.mean([np.argmax(sim[i]) == i for i in range(n)]))
    return {"diag": diag, "offdiag": off, "margin": diag - off, "top1": top1}


def reference_image(a: np.ndarray, b: np.ndarray, pairs: int = 64, scale: int = 4) -> np.ndarray:
    a, b = a[:pairs], b[:pairs]
    cos = (a / np.linalg.norm(a, axis=1, keepdims=True)) @ (b / np.linalg.norm(b, axis=1, keepdims=True)).T
    cos = np.clip(cos, -1, 1)
    # blue (-1) -> white (0) -> red (+1), piecewise linear per channel
    rgb = np.stack([np.interp(cos, [-1, 0, 1], c) for c in ([0, 1, 1], [0, 1, 0], [1, 1, 0])], axis=-1)
    return np.kron(rgb, np.ones((scale, scale, 1)))


def three_modalities(n: int = 48, d: int = 12, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    base = rng.standard_normal((n, d))
    return {
        "text": base + 0.2 * rng.standard_normal((n, d)),  # aligned with image
        "image": base + 0.2 * rng.standard_normal((n, d)),
        "audio": rng.standard_normal((n, d)),  # aligned with nothing
    }


def test_every_pair_matches_the_reference(fw):
    data = three_modalities()
    got = values(R.paired(fw.tree(data)))
    pairs = [f"{a}_vs_{b}" for a, b in itertools.combinations(data, 2)]
    assert pairs == ["text_vs_image", "text_vs_audio", "image_vs_audio"]
    assert set(got) == {f"{p}/{m}" for p in pairs for m in MEMBERS}
    for (a, b), p in zip(itertools.combinations(data, 2), pairs, strict=True):
        ref = reference_members(data[a], data[b])
        for m in MEMBERS:
            assert close(got[f"{p}/{m}"], ref[m], fw.rtol, atol=1e-6), (p, m)
    assert got["text_vs_image/margin"] > 0.5 > abs(got["text_vs_audio/margin"])


def test_two_modalities_keep_their_tags(fw):
    data = three_modalities()
    two = {"text": data["text"], "image": data["image"]}
    got = values(R.paired(fw.tree(two)))
    assert set(got) == set(MEMBERS)  # prediction/paired/diag, … exactly as before
    ref = reference_members(data["text"], data["image"])
    assert all(close(got[m], ref[m], fw.rtol, atol=1e-6) for m in MEMBERS)
    image = np.asarray(R.similarity_image(fw.tree((data["text"], data["image"]))))
    assert np.allclose(image, reference_image(data["text"], data["image"]), atol=1e-5)


def test_tuples_name_pairs_by_position(fw):
    data = list(three_modalities().values())
    got = R.paired(fw.tree(tuple(data)))
    assert {k.split("/")[0] for k in got} == {"0_vs_1", "0_vs_2", "1_vs_2"}


def test_one_image_per_pair(fw):
    data = three_modalities(n=1500)  # more rows than the image's 64 pairs and paired's 1,024
    images = R.similarity_image(fw.tree(data))
    assert set(images) == {"text_vs_image", "text_vs_audio", "image_vs_audio"}
    for key, img in images.items():
        a, b = key.split("_vs_")
        img = np.asarray(img)
        assert img.shape == (256, 256, 3) and img.dtype == np.float32
        assert np.allclose(img, reference_image(data[a], data[b]), atol=1e-5), key


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_torch(dtype):
    torch = pytest.importorskip("torch")
    data = three_modalities()
    half = {k: torch.from_numpy(v).to(getattr(torch, dtype)) for k, v in data.items()}
    rounded = {k: v.double().numpy() for k, v in half.items()}  # the values the metric sees
    got = values(R.paired(half))
    for a, b in itertools.combinations(data, 2):
        ref = reference_members(rounded[a], rounded[b])
        for m in MEMBERS:
            assert close(got[f"{a}_vs_{b}/{m}"], ref[m], 1e-9, atol=1e-9), (a, b, m)
    img = np.asarray(R.similarity_image(half)["text_vs_audio"])
    assert np.allclose(img, reference_image(rounded["text"], rounded["audio"]), atol=1e-5)


def test_too_many_modalities_is_an_error_naming_the_input(fw):
    rng = np.random.default_rng(1)
    many = {f"m{i}": fw.array(rng.standard_normal((8, 4))) for i in range(R.PAIRED_MAX_MODALITIES + 1)}
    with pytest.raises(ValueError, match=r"paired_embeddings has 9 modalities \(m0, m1.*at most 8"):
        R.paired(many)


def test_fewer_than_two_modalities_write_nothing(fw):
    assert R.paired({"text": fw.array(np.ones((4, 3)))}) is None
    assert R.similarity_image((fw.array(np.ones((4, 3))),)) is None


def test_monitor_writes_every_pair_and_keeps_training_on_bad_input(tmp_path):
    import metricreg as mr
    from metricreg.reader import read_logdir

    data = three_modalities()
    with mr.Monitor(str(tmp_path / "run"), config={"prediction/paired": {"every": 1}}) as mon:
        mon.step(0, loss=1.0, paired_embeddings=data)
        many = {f"m{i}": data["text"] for i in range(9)}
        mon.step(1, loss=1.0, paired_embeddings=many)  # fails, counted; the step returns
        mon.step(2, loss=1.0, paired_embeddings=data)
    run = read_logdir(str(tmp_path))["run"]
    ref = reference_members(data["image"], data["audio"])
    steps, vals, _ = run.series["train/prediction/paired/image_vs_audio/diag"]
    assert list(steps) == [0, 2] and vals[-1] == pytest.approx(ref["diag"], rel=1e-6)
    assert "train/prediction/paired/diag" not in run.series  # three modalities: per-pair tags only
    errors = run.evaluate().errors
    assert any("prediction/paired" in str(e) and "9 modalities" in str(e) for e in errors), errors


def test_cpu_data_is_the_value_at_its_step_and_computed_on_the_writer():
    data = three_modalities()
    ref = reference_members(data["text"], data["audio"])
    got = R.paired(data)
    assert all(isinstance(v, A.Deferred) for v in got.values())  # the n×n work waits for the writer thread
    for v in data.values():
        v[:] = 0.0  # the loop reuses its buffers before the writer runs
    assert close(values(got)["text_vs_audio/diag"], ref["diag"], 1e-12)


def test_mismatched_widths_fail_on_the_training_thread():
    rng = np.random.default_rng(2)
    with pytest.raises(ValueError, match="matmul|shape|dimension"):
        R.paired({"a": rng.standard_normal((8, 4)), "b": rng.standard_normal((8, 4)), "c": rng.standard_normal((8, 5))})


@pytest.mark.parametrize("rows", [(64, 32), (2560, 1920)])  # the second: both above the 1,024-row sample
def test_modalities_with_other_rows_are_an_error_naming_them(fw, rows):
    """Rows are pairs: other row counts used to be cut to the shorter (or sub-sampled with different
    selections) and gave a silent, wrong alignment (review12 regression)."""
    rng = np.random.default_rng(3)
    a = rng.standard_normal((rows[0], 8))
    data = {"text": fw.array(a), "image": fw.array(a[: rows[1]] + 0.01)}
    for fn in (R.paired, R.similarity_image):
        with pytest.raises(ValueError, match=r"paired_embeddings\['image'\] has shape .* but \['text'\]"):
            fn(data)


def test_a_modality_that_is_not_an_array_is_named(fw):
    data = {"text": fw.array(np.ones((4, 3))), "image": None}
    with pytest.raises(ValueError, match=r"paired_embeddings\['image'\] must be an \(n, d\) array, got NoneType"):
        R.paired(data)


def test_similarity_image_draws_the_same_rows_on_every_route(fw):
    """Above the 25,600-row sample the host route drew the first 64 rows of the fixed selection and the device
    route the first 64 rows of the input: two different pictures of the same data (max pixel difference
    0.93), and the device route converted all n rows to float first (review12 regression)."""
    rng = np.random.default_rng(7)
    a = rng.standard_normal((A.MAX_ROWS + 4000, 6))
    b = a + 0.5 * rng.standard_normal(a.shape)
    rows = np.asarray(A.row_indices(len(a), A.MAX_ROWS, np, None))[:64]
    got = np.asarray(R.similarity_image((fw.array(a), fw.array(b))))
    assert np.allclose(got, reference_image(a[rows], b[rows]), atol=1e-5)
