"""A real TensorBoard (``program.TensorBoard`` with the installed plugins) under both loaders.

The Health plugin is not passed in: it comes from the ``tensorboard_plugins``
entry point, exactly as for ``tensorboard --logdir``.
"""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

RUNS = "data/plugin/metricreg_health/runs"
RUN = "data/plugin/metricreg_health/run?run="
RANK_TAG = "train/collapse/rankme"
LOADERS = ["false", "true"]


def _rustboard_available() -> bool:
    try:
        from tensorboard.data import server_ingester

        return server_ingester.get_server_binary() is not None
    except Exception:
        return False


def _by_run(body: dict) -> dict:
    return {row["run"]: row for row in body["runs"]}


def _series(detail: dict, tag: str) -> dict:
    return next(m for c in detail["categories"] for m in c["metrics"] if m["tag"] == tag)


def _conditional_get(server, path: str, etag: str) -> int:
    import urllib.error
    import urllib.request

    request = urllib.request.Request(server.url + path, headers={"If-None-Match": etag})
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


def _skip_without_rustboard(load_fast: str) -> None:
    if load_fast == "true" and not _rustboard_available():
        pytest.skip("tensorboard-data-server (RustBoard) is not installed")


@pytest.mark.parametrize("load_fast", LOADERS)
def test_health_tab_on_a_real_server(tensorboard_server, health_logdir, load_fast):
    from urllib.parse import quote

    _skip_without_rustboard(load_fast)
    server = tensorboard_server(health_logdir.path, load_fast)
    entry = server.wait_for_tab()
    assert entry["tab_name"] == "Health"
    assert entry["loading_mechanism"]["module_path"].endswith("/data/plugin/metricreg_health/index.js")
    runs = _by_run(server.wait_for_runs(health_logdir.listed))
    assert health_logdir.unrelated not in runs
    assert runs[health_logdir.collapse]["categories"]["collapse"] == "critical"
    assert runs[health_logdir.healthy]["categories"]["collapse"] == "ok"
    assert runs[health_logdir.healthy]["status"] == "ok"
    assert runs[health_logdir.diverged]["status"] == "critical"
    assert runs[health_logdir.flaky]["error_count"] == 1
    assert runs[health_logdir.plain]["categories"] == {"generalization": "critical"}

    code, headers, body = server.get(RUN + quote(health_logdir.collapse))
    assert code == 200 and headers["Content-Type"] == "application/json"
    assert headers["X-Content-Type-Options"] == "nosniff"
    rank = _series(json.loads(body), RANK_TAG)
    assert rank["status"] == "critical" and len(rank["steps"]) == 15

    code, _, body = server.get(RUN + quote(health_logdir.diverged))
    assert code == 200 and b'"Infinity"' in body and b'"NaN"' in body

    code, _, body = server.get(RUN + quote(health_logdir.xss))
    assert code == 200 and json.loads(body)["run"] == health_logdir.xss

    assert server.get("data/plugin/metricreg_health/run")[0] == 400
    assert server.get(RUN + "nope")[0] == 404
    # An old URL's smoothing is accepted and ignored: display never changes the verdict.
    code, headers, body = server.get("data/plugin/metricreg_health/run?run=healthy&smoothing=2")
    assert code == 200 and json.loads(body) == server.json(RUN + "healthy")
    # The ETag is the run's fingerprint; a browser holding it gets 304 over real HTTP.
    assert headers["ETag"] == f'"{json.loads(body)["fingerprint"]}"'
    assert _conditional_get(server, RUN + "healthy", headers["ETag"]) == 304
    assert _conditional_get(server, RUNS, server.get(RUNS)[1]["ETag"]) == 304
    assert _conditional_get(server, RUNS, '"stale"') == 200
    assert server.get("data/plugin/metricreg_health/..%2f..%2fsetup.py")[0] == 404
    assert server.get("data/plugin/metricreg_health/static/..%2f..%2fpyproject.toml")[0] == 404
    code, headers, _ = server.get("data/plugin/metricreg_health/index.js")
    if code == 200:
        assert headers["Content-Type"] == "text/javascript; charset=utf-8"
    else:
        assert code == 404  # frontend not built in this checkout


def test_path_prefix(tensorboard_server, health_logdir):
    server = tensorboard_server(health_logdir.path, "false", "--path_prefix", "/tb")
    assert server.url.endswith("/tb/")
    server.wait_for_tab()
    runs = _by_run(server.wait_for_runs(health_logdir.listed))
    assert runs[health_logdir.collapse]["categories"]["collapse"] == "critical"
    code, _, body = server.get("data/plugin_entry.html?name=metricreg_health")
    assert code == 200 and b'import("./index.js")' in body


@pytest.fixture(scope="module")
def long_logdir(tmp_path_factory, writers):
    root = tmp_path_factory.mktemp("long_server")
    values = np.linspace(1.0, 0.6, 1500)
    values[777] = 0.01
    writers.quality(str(root / "long"), values)
    return str(root)


@pytest.mark.parametrize("load_fast", LOADERS)
def test_samples_per_plugin(tensorboard_server, long_logdir, load_fast):
    """Default: the loader keeps 1000 points; ``scalars=0`` keeps all (and downsample=0 is not passed on)."""
    _skip_without_rustboard(load_fast)
    default = tensorboard_server(long_logdir, load_fast)
    everything = tensorboard_server(long_logdir, load_fast, "--samples_per_plugin", "scalars=0")
    for server in (default, everything):
        server.wait_for_tab()
        server.wait_for_runs(["long"])
    sampled = _series(default.json(RUN + "long"), "train/quality/score")
    assert sampled["points"] == 1000 and sampled["last_step"] == 1499
    detail = everything.json(RUN + "long")
    full = _series(detail, "train/quality/score")
    assert full["points"] == 1500 and full["last_step"] == 1499
    assert len(full["steps"]) <= 1000 and 777 in full["steps"]
    assert any(a["first_step"] == 777 and a["level"] == "critical" for a in detail["alerts"])


@pytest.mark.parametrize("load_fast", LOADERS)
def test_run_added_while_the_server_is_up(tensorboard_server, copy_logdir, health_logdir, writers, load_fast):
    _skip_without_rustboard(load_fast)
    logdir = copy_logdir(health_logdir.healthy)
    server = tensorboard_server(logdir, load_fast)
    server.wait_for_tab()
    server.wait_for_runs([health_logdir.healthy])
    staging = os.path.join(os.path.dirname(logdir), "staging")
    writers.quality(staging, [0.9, 0.8, 0.1])
    shutil.move(staging, os.path.join(logdir, "late"))  # appears complete, as a finished run would
    server.wait_for_runs(["late", health_logdir.healthy], timeout=30)

    def late_is_critical():
        # A reload may have taken the manifest before the values: the tab catches up.
        return _by_run(server.json(RUNS))["late"]["status"] == "critical"

    server.wait_for(late_is_critical, timeout=30, what="the late run to be judged critical")
