"""The backend harness: TensorBoard's own WSGI app over a real MultiplexerDataProvider.

This is what ``tensorboard --load_fast=false`` builds, minus the HTTP server:
the same multiplexer (with the loader's default sample counts), the same
``TensorBoardWSGIApp`` middleware stack (experiment ids, path prefix, the
security validator, error handling) and a werkzeug test client.
"""

from __future__ import annotations

import argparse
import json

import pytest
from werkzeug import test as wtest
from werkzeug import wrappers

PREFIX = "/data/plugin/metricreg_health/"


class Harness:
    def __init__(self, logdir: str, samples_per_plugin: dict | None = None, path_prefix: str = "") -> None:
        from metricreg_tensorboard.plugin import HealthPlugin
        from tensorboard.backend import application
        from tensorboard.backend.event_processing import data_ingester, data_provider, plugin_event_multiplexer
        from tensorboard.plugins.scalar import scalars_plugin

        samples = dict(samples_per_plugin or {})
        guidance = dict(data_ingester.DEFAULT_TENSOR_SIZE_GUIDANCE)
        guidance.update(samples)
        self.logdir = logdir
        self.multiplexer = plugin_event_multiplexer.EventMultiplexer(
            size_guidance=data_ingester.DEFAULT_SIZE_GUIDANCE, tensor_size_guidance=guidance
        )
        self.provider = data_provider.MultiplexerDataProvider(self.multiplexer, logdir)
        self.reload()
        flags = argparse.Namespace(logdir=logdir, path_prefix=path_prefix, samples_per_plugin=samples, window_title="")
        self.app = application.TensorBoardWSGIApp(
            flags, [HealthPlugin, scalars_plugin.ScalarsPlugin], self.provider, None, self.multiplexer
        )
        self.client = wtest.Client(self.app, wrappers.Response)
        self.prefix = path_prefix

    def reload(self) -> None:
        self.multiplexer.AddRunsFromDirectory(self.logdir)
        self.multiplexer.Reload()

    def get(self, path: str, **kwargs):
        return self.client.get(self.prefix + path, **kwargs)

    def json(self, path: str, **kwargs):
        resp = self.get(path, **kwargs)
        assert resp.status_code == 200, (path, resp.status_code, resp.get_data(as_text=True)[:500])
        return json.loads(resp.get_data(as_text=True))

    def runs(self, query: str = "") -> dict:
        return self.json(PREFIX + "runs" + query)

    def run(self, run: str, **params) -> dict:
        return self.json(PREFIX + "run", query_string={"run": run, **params})


@pytest.fixture(scope="session")
def harness(health_logdir) -> Harness:
    return Harness(health_logdir.path)


@pytest.fixture
def make_harness():
    return Harness
