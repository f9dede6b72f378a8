"""TensorBoard's own Images and Histograms dashboards read the pictures metricreg writes.

A run written by a real Monitor (numpy, torch bfloat16, JAX) is served by TensorBoard's WSGI app
with its Images and Histograms plugins over a real MultiplexerDataProvider. The PNGs the Images
dashboard serves are decoded (Pillow, a TensorBoard dependency) and compared pixel by pixel with
references built here; the histogram buckets are compared with numpy.histogram of the same values.
"""

from __future__ import annotations

import argparse
import io
import itertools
import json

import numpy as np
import pytest
from werkzeug import test as wtest
from werkzeug import wrappers

import metricreg as mr
from tests.builtins.test_paired_pairs import reference_image, three_modalities
from tests.builtins.test_visuals import reference_grid

BINS = 30  # what the event writer bins a histogram into
MODALITIES = ("text", "image", "audio")


def convert(kind: str, x: np.ndarray):
    if kind == "numpy":
        return x
    if kind == "torch-bfloat16":
        torch = pytest.importorskip("torch")
        return torch.from_numpy(np.ascontiguousarray(x)).to(torch.bfloat16)
    jnp = pytest.importorskip("jax.numpy")
    return jnp.asarray(x)


def as_seen(kind: str, x: np.ndarray) -> np.ndarray:
    """The values the metric sees (bfloat16 rounds them)."""
    if kind == "torch-bfloat16":
        import torch

        return torch.from_numpy(np.ascontiguousarray(x)).to(torch.bfloat16).double().numpy()
    return x.astype(np.float32).astype(np.float64) if kind == "jax" else x


class Dashboards:
    """TensorBoard's WSGI app with the Images and Histograms plugins over a MultiplexerDataProvider."""

    def __init__(self, logdir: str) -> None:
        from tensorboard.backend import application
        from tensorboard.backend.event_processing import data_ingester, data_provider, plugin_event_multiplexer
        from tensorboard.plugins.histogram.histograms_plugin import HistogramsPlugin
        from tensorboard.plugins.image.images_plugin import ImagesPlugin

        multiplexer = plugin_event_multiplexer.EventMultiplexer(
            size_guidance=data_ingester.DEFAULT_SIZE_GUIDANCE,
            tensor_size_guidance=data_ingester.DEFAULT_TENSOR_SIZE_GUIDANCE,
        )
        provider = data_provider.MultiplexerDataProvider(multiplexer, logdir)
        multiplexer.AddRunsFromDirectory(logdir)
        multiplexer.Reload()
        flags = argparse.Namespace(logdir=logdir, path_prefix="", samples_per_plugin={}, window_title="")
        app = application.TensorBoardWSGIApp(flags, [ImagesPlugin, HistogramsPlugin], provider, None, multiplexer)
        self.client = wtest.Client(app, wrappers.Response)

    def get(self, path: str, **query) -> bytes:
        resp = self.client.get(path, query_string=query)
        assert resp.status_code == 200, (path, query, resp.status_code, resp.get_data(as_text=True)[:300])
        return resp.get_data()

    def json(self, path: str, **query):
        return json.loads(self.get(path, **query))

    def image(self, run: str, tag: str) -> np.ndarray:
        """The step-0 image as the Images dashboard fetches it, decoded."""
        from PIL import Image

        (meta,) = self.json("/data/plugin/images/images", run=run, tag=tag, sample=0)
        assert meta["step"] == 0
        png = self.client.get("/data/plugin/images/individualImage?" + meta["query"])
        assert png.status_code == 200 and png.headers["Content-Type"] == "image/png"
        return np.asarray(Image.open(io.BytesIO(png.get_data())))

    def histogram(self, run: str, tag: str) -> np.ndarray:
        """(k, 3) [left, right, count] buckets of step 0, as the Histograms dashboard gets them."""
        ((_, step, buckets),) = self.json("/data/plugin/histograms/histograms", run=run, tag=tag)
        assert step == 0
        return np.asarray(buckets, dtype=np.float64)


def reference_buckets(values: np.ndarray) -> np.ndarray:
    """numpy.histogram of the values (BINS equal bins over [min, max]), as TensorBoard stores it."""
    counts, edges = np.histogram(values, bins=BINS, range=(values.min(), values.max()))
    nonzero = np.flatnonzero(counts)
    first, last = nonzero[0], nonzero[-1]
    inner = edges[first + 1 : last + 1]
    lefts = np.concatenate([[values.min()], inner])
    rights = np.concatenate([inner, [values.max()]])
    return np.stack([lefts, rights, counts[first : last + 1]], axis=1)


KINDS = ("numpy", "torch-bfloat16", "jax")


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """One run per framework, every picture due at step 0; the inputs kept for the references."""
    logdir = tmp_path_factory.mktemp("pictures")
    rng = np.random.default_rng(7)
    inputs = {}
    for kind in KINDS:
        emb = three_modalities(n=72, d=16, seed=3)  # 1,152 values per modality: drawn whole
        emb = {k: v * (1 + i) for i, (k, v) in enumerate(emb.items())}  # three scales
        image = (rng.random((5, 3, 12, 10)) * 255).astype(np.uint8)  # (B, C, H, W) integers: R = 255
        recon = np.clip(image.astype(np.int64) + rng.integers(-40, 40, image.shape), 0, 255).astype(np.uint8)
        if kind == "torch-bfloat16":  # float images in [0, 1]
            image, recon = image / 255.0, recon / 255.0
        inputs[kind] = {"embeddings": emb, "image": image, "reconstruction": recon}
        with mr.Monitor(str(logdir / kind)) as mon:
            mon.step(
                0,
                loss=1.0,
                embeddings={k: convert(kind, v) for k, v in emb.items()},
                paired_embeddings={k: convert(kind, v) for k, v in emb.items()},
                image=convert(kind, image),
                reconstruction=convert(kind, recon),
            )
    return str(logdir), inputs


@pytest.fixture(scope="module")
def dashboards(written) -> Dashboards:
    return Dashboards(written[0])


def test_dashboards_list_the_tags(dashboards):
    images = dashboards.json("/data/plugin/images/tags")
    histograms = dashboards.json("/data/plugin/histograms/tags")
    for kind in KINDS:
        assert set(images[kind]) == {
            "train/prediction/reconstructions",
            *(f"train/prediction/similarity/{a}_vs_{b}" for a, b in itertools.combinations(MODALITIES, 2)),
        }
        assert {f"train/features/{m}/{s}" for m in MODALITIES for s in ("values", "norms")} <= set(histograms[kind])


@pytest.mark.parametrize("kind", KINDS)
def test_reconstruction_png_matches_the_reference(dashboards, written, kind):
    data = written[1][kind]
    seen = {k: as_seen(kind, data[k]) for k in ("image", "reconstruction")}
    peak = 255.0 if kind != "torch-bfloat16" else 1.0
    ref = reference_grid(seen["image"].transpose(0, 2, 3, 1), seen["reconstruction"].transpose(0, 2, 3, 1), 0, peak)
    got = dashboards.image(kind, "train/prediction/reconstructions")
    assert got.shape == ref.shape  # 4 tiles of 12x10 enlarged 6x, two rows, 2-px gaps: (146, 246, 3)
    assert np.abs(got.astype(np.int64) - np.rint(ref * 255)).max() <= 1  # PNG is 8-bit


@pytest.mark.parametrize("kind", KINDS)
def test_similarity_pngs_match_the_reference(dashboards, written, kind):
    emb = {k: as_seen(kind, v) for k, v in written[1][kind]["embeddings"].items()}
    for a, b in itertools.combinations(MODALITIES, 2):
        got = dashboards.image(kind, f"train/prediction/similarity/{a}_vs_{b}")
        ref = np.rint(reference_image(emb[a], emb[b]) * 255)
        assert got.shape == ref.shape == (256, 256, 3)
        assert np.abs(got.astype(np.int64) - ref).max() <= 1, (a, b)


@pytest.mark.parametrize("kind", KINDS)
def test_feature_histograms_match_numpy(dashboards, written, kind):
    for modality, z in written[1][kind]["embeddings"].items():
        z = as_seen(kind, z)
        for member, values in (("values", z.ravel()), ("norms", np.linalg.norm(z, axis=1))):
            got = dashboards.histogram(kind, f"train/features/{modality}/{member}")
            ref = reference_buckets(values)
            assert np.array_equal(got[:, 2], ref[:, 2]), (modality, member)  # counts, exactly
            assert got[:, 2].sum() == values.size
            assert np.allclose(got[:, :2], ref[:, :2], rtol=1e-5, atol=1e-6)  # TensorBoard keeps float32 edges
