"""TensorBoard's own PROJECTOR plugin reads what a real Monitor wrote with ``projector=``.

The app is TensorBoard's WSGI app over a real MultiplexerDataProvider (as ``tensorboard
--load_fast=false`` builds it) with the real ``ProjectorPlugin`` and the Health plugin; requests go
through werkzeug's test client to the projector's own routes (``runs``, ``info``, ``tensor``,
``metadata``), exactly those its frontend calls.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
from werkzeug import test as wtest
from werkzeug import wrappers

import metricreg as mr
from metricreg import arrays as A
from metricreg.builtins import projector as PJ
from tests.tb_plugin.conftest import PREFIX

ROUTE = "/data/plugin/projector/"


def projector_app(logdir: str) -> wtest.Client:
    from metricreg_tensorboard.plugin import HealthPlugin
    from tensorboard.backend import application
    from tensorboard.backend.event_processing import data_ingester, data_provider, plugin_event_multiplexer
    from tensorboard.plugins.projector.projector_plugin import ProjectorPlugin

    multiplexer = plugin_event_multiplexer.EventMultiplexer(
        size_guidance=data_ingester.DEFAULT_SIZE_GUIDANCE,
        tensor_size_guidance=data_ingester.DEFAULT_TENSOR_SIZE_GUIDANCE,
    )
    multiplexer.AddRunsFromDirectory(logdir)
    multiplexer.Reload()
    provider = data_provider.MultiplexerDataProvider(multiplexer, logdir)
    flags = argparse.Namespace(logdir=logdir, path_prefix="", samples_per_plugin={}, window_title="")
    app = application.TensorBoardWSGIApp(flags, [HealthPlugin, ProjectorPlugin], provider, None, multiplexer)
    return wtest.Client(app, wrappers.Response)


def get(client: wtest.Client, path: str, **query) -> wrappers.Response:
    resp = client.get(path, query_string=query)
    assert resp.status_code == 200, (path, query, resp.get_data(as_text=True)[:300])
    return resp


def test_projector_tab_lists_and_serves_each_key_and_step(tmp_path):
    rng = np.random.default_rng(0)
    image = rng.standard_normal((1500, 4, 4)).astype(np.float32)  # (n, ...) flattened to 16 columns
    captions = np.array([f"class\t{i % 3}" for i in range(1500)])  # a tab inside a label must not split it
    text = rng.standard_normal((40, 8))
    snapshots = []

    def rows_now() -> dict:
        return {"image": (image, captions), "text": text}

    with mr.Monitor(tmp_path / "exp") as mon:
        for step in range(5001):
            mon.step(step, loss=1.0, projector=rows_now)
            if step in (0, 5000):
                snapshots.append((image.reshape(1500, 16).copy(), text.copy()))
            image += 1.0  # in place after every step: each write must hold the rows of its own step
    assert mon.errors == {}

    client = projector_app(str(tmp_path))
    assert json.loads(get(client, ROUTE + "runs").get_data(as_text=True)) == ["exp"]
    info = json.loads(get(client, ROUTE + "info", run="exp").get_data(as_text=True))
    shapes = {e["tensorName"]: [int(s) for s in e["tensorShape"]] for e in info["embeddings"]}
    assert shapes == {
        "train/projector/image@0": [1000, 16],
        "train/projector/text@0": [40, 8],
        "train/projector/image@5000": [1000, 16],
        "train/projector/text@5000": [40, 8],
    }
    rows = np.asarray(A.row_indices(1500, PJ.PROJECTOR_MAX_ROWS, np, None))
    for step, (img, txt) in zip((0, 5000), snapshots, strict=True):
        for key, expected in (("image", img[rows]), ("text", txt.astype(np.float32))):
            body = get(client, ROUTE + "tensor", run="exp", name=f"train/projector/{key}@{step}").get_data()
            assert np.array_equal(np.frombuffer(body, dtype=np.float32).reshape(expected.shape), expected)
        meta = get(client, ROUTE + "metadata", run="exp", name=f"train/projector/image@{step}").get_data(as_text=True)
        assert meta.splitlines() == [f"class {i % 3}" for i in rows]
    no_labels = client.get(ROUTE + "metadata", query_string={"run": "exp", "name": "train/projector/text@0"})
    assert no_labels.status_code == 400  # no labels given: no metadata file listed

    health = json.loads(get(client, PREFIX + "run", run="exp").get_data(as_text=True))  # the Health tab is unharmed
    assert health["status"] == "ok" and not health.get("errors")


def test_a_resumed_run_appends_and_repeats_no_entry(tmp_path):
    z = np.random.default_rng(1).standard_normal((50, 6))
    for start in (0, 5000):  # the second Monitor resumes in the same run directory, re-writing step 5000
        with mr.Monitor(tmp_path / "exp") as mon:
            for step in range(start, 10001 if start else 5001):
                mon.step(step, projector=(z + step, np.arange(50)))
    client = projector_app(str(tmp_path))
    info = json.loads(get(client, ROUTE + "info", run="exp").get_data(as_text=True))
    names = [e["tensorName"] for e in info["embeddings"]]
    assert names == ["train/projector@0", "train/projector@5000", "train/projector@10000"]
    body = get(client, ROUTE + "tensor", run="exp", name="train/projector@10000").get_data()
    assert np.allclose(np.frombuffer(body, dtype=np.float32).reshape(50, 6), z + 10000, rtol=1e-7)
    assert not list(tmp_path.rglob(".tmp-*"))  # every file was renamed into place
