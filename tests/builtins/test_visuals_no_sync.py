"""No host-device synchronisation in the pictures' compute functions (torch meta tensors, see test_no_sync)."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")

from metricreg import arrays as A
from metricreg.builtins import prediction, visuals
from tests.builtins.test_no_sync import meta, no_uploads, on_device  # noqa: F401  (autouse fixture)


def test_every_pair_stays_on_the_device():
    three = {"text": meta(300, 8), "image": meta(300, 8), "audio": meta(300, 8)}
    on_device(prediction.paired(three))
    on_device(prediction.similarity_image(three))


def test_feature_histograms_stay_on_the_device():
    on_device(visuals.features(meta(30_000, 64)))
    on_device(visuals.features(meta(16, 20, 8, dtype=A.namespace(meta(1)).bfloat16)))


def test_reconstruction_grid_is_a_host_job():
    for shape in ((8, 3, 16, 16), (8, 16, 16), (16, 16, 3)):
        result = visuals.reconstruction_image(meta(*shape), meta(*shape))
        assert isinstance(result, A.Deferred)
