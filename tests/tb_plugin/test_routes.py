"""The Health tab's backend through TensorBoard's own WSGI app and a real data provider."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from metricreg import events
from metricreg.manifest import ERRORS_TAG, MANIFEST_TAG, PLUGIN_CONTENT, PLUGIN_NAME

PREFIX = "/data/plugin/metricreg_health/"
RANK_TAG = "train/collapse/rankme"
STATIC_INDEX = os.path.join(os.path.dirname(__file__), "..", "..", "tb_plugin", "static", "index.js")


def _by_run(body: dict) -> dict:
    return {row["run"]: row for row in body["runs"]}


def _series(detail: dict, tag: str) -> dict:
    for category in detail["categories"]:
        for metric in category["metrics"]:
            if metric["tag"] == tag:
                return metric
    raise AssertionError(f"{tag} not in {[m['tag'] for c in detail['categories'] for m in c['metrics']]}")


# --- listing and entry -------------------------------------------------------------------------


def test_plugins_listing_enables_the_tab(harness):
    listing = harness.json("/data/plugins_listing")
    entry = listing["metricreg_health"]
    assert entry["enabled"] is True
    assert entry["tab_name"] == "Health"
    assert entry["loading_mechanism"] == {
        "type": "IFRAME",
        "module_path": "/data/plugin/metricreg_health/index.js",
    }


def test_plugin_entry_page_imports_index_js(harness):
    resp = harness.get("/data/plugin_entry.html", query_string={"name": "metricreg_health"})
    assert resp.status_code == 200
    html = resp.get_data(as_text=True)
    assert '<base href="plugin/metricreg_health/" />' in html
    assert 'import("./index.js")' in html


def test_empty_logdir_disables_the_tab(make_harness, tmp_path):
    h = make_harness(str(tmp_path))
    assert h.json("/data/plugins_listing")["metricreg_health"]["enabled"] is False
    assert h.runs() == {"runs": [], "categories": [], "smoothing": None}
    assert h.get(PREFIX + "run", query_string={"run": "x"}).status_code == 404


# --- /runs ---------------------------------------------------------------------------------------


def test_runs_lists_health_runs_only(harness, health_logdir):
    body = harness.runs()
    assert [r["run"] for r in body["runs"]] == health_logdir.listed  # "unrelated" has no health data
    names = [c["name"] for c in body["categories"]]
    assert names[0] == "collapse"  # manifest.category_order: known categories first
    assert {"collapse", "generalization", "stability", "prediction", "optimization"} <= set(names)
    titles = {c["name"]: c["title"] for c in body["categories"]}
    assert titles["collapse"] == "Representation collapse"


def test_runs_statuses(harness, health_logdir):
    runs = _by_run(harness.runs())
    collapse, healthy = runs[health_logdir.collapse], runs[health_logdir.healthy]
    assert collapse["categories"]["collapse"] == "critical"
    assert collapse["status"] == "critical"
    assert collapse["worst_alert"]["tag"].startswith("train/collapse/")
    assert collapse["worst_alert"]["level"] == "critical"
    assert collapse["worst_alert"]["run"] == health_logdir.collapse
    assert healthy["categories"]["collapse"] == "ok"
    assert healthy["status"] == "ok"
    assert healthy["worst_alert"] is None and healthy["alert_count"] == 0
    assert healthy["has_manifest"] is True and healthy["last_step"] == 199

    diverged = runs[health_logdir.diverged]
    assert diverged["categories"] == {"stability": "critical"}
    assert diverged["worst_alert"]["bound"] == "nonfinite"

    flaky = runs[health_logdir.flaky]
    assert flaky["error_count"] == 1

    plain = runs[health_logdir.plain]
    assert plain["has_manifest"] is False
    assert plain["categories"] == {"generalization": "critical"}


# --- /run ----------------------------------------------------------------------------------------


def test_run_detail_of_the_collapsing_run(harness, health_logdir):
    detail = harness.run(health_logdir.collapse)
    assert detail["run"] == health_logdir.collapse
    assert detail["status"] == "critical"
    assert detail["smoothing"] is None
    assert detail["categories"][0]["name"] == "collapse"
    collapse = detail["categories"][0]
    assert collapse["title"] == "Representation collapse" and collapse["status"] == "critical"
    rank = _series(detail, RANK_TAG)
    assert rank["metric"] == "collapse" and rank["member"] == "rankme"
    assert rank["split"] == "train" and rank["title"] == "RankMe"
    assert rank["direction"] == "higher_is_better"
    critical_below = rank["thresholds"]["critical_below"]
    assert critical_below is not None and rank["thresholds"]["warn_above"] is None
    assert rank["status"] == "critical"
    assert len(rank["steps"]) == len(rank["values"]) == len(rank["wall_times"]) == 15
    assert rank["steps"][:3] == [0, 20, 40]
    assert rank["values"][0] > 15 and rank["last_value"] < 1.1 < critical_below
    assert rank["remedy"] and rank["description"].startswith("RankMe")
    alert = next(a for a in detail["alerts"] if a["level"] == "critical" and a["tag"] == RANK_TAG)
    assert alert["run"] == health_logdir.collapse and alert["metric"] == "collapse"
    assert alert["category"] == "collapse" and alert["bound"] == "below" and alert["threshold"] == critical_below
    assert alert["active"] is True and 100 < alert["first_step"] < 300
    assert f"step {alert['first_step']}" in alert["message"]
    # Eval values (Monitor.eval) are judged by the metric of the same name (manifest.lookup).
    assert _series(detail, "val/loss")["metric"] == "loss"
    assert detail["categories"][-1]["name"] == "stability"


def test_run_detail_of_the_healthy_run(harness, health_logdir):
    detail = harness.run(health_logdir.healthy)
    assert detail["status"] == "ok" and detail["alerts"] == []
    assert _series(detail, RANK_TAG)["status"] == "ok"


def test_nonfinite_values_are_strings(harness, health_logdir):
    resp = harness.get(PREFIX + "run", query_string={"run": health_logdir.diverged})
    text = resp.get_data(as_text=True)
    assert '"Infinity"' in text and '"NaN"' in text
    assert "NaN," not in text.replace('"NaN",', "")  # no bare NaN tokens: valid JSON for browsers
    loss = _series(json.loads(text), "train/loss")
    assert loss["values"][40] == "Infinity" and loss["values"][41] == "NaN"
    assert loss["last_value"] == "NaN"
    assert loss["status"] == "critical"
    alert = json.loads(text)["alerts"][0]
    assert alert["bound"] == "nonfinite" and alert["first_step"] == 40
    assert alert["onset_value"] == "Infinity" and alert["value"] == "NaN"  # onset, then the latest value


def test_metric_errors(harness, health_logdir):
    detail = harness.run(health_logdir.flaky)
    (error,) = detail["errors"]
    assert error["run"] == health_logdir.flaky
    assert error["metric"] == "flaky/score"
    assert "FlakyPlugin" in error["plugin"]
    assert error["count"] == 3 and error["disabled"] is True
    assert error["first_step"] == 5
    assert "flaky metric exploded" in error["last_message"]


def test_generalization_gap_without_manifest(harness, health_logdir):
    detail = harness.run(health_logdir.plain)
    assert detail["has_manifest"] is False and detail["derived_gaps"] is True
    (category,) = detail["categories"]
    assert category["name"] == "generalization" and category["status"] == "critical"
    tags = [m["tag"] for m in category["metrics"]]
    assert "lr" not in tags  # unrelated plain scalars stay out of the tab
    for tag in ("train/loss", "val/loss", "gap/loss", "gap/loss_relative", "gap/accuracy"):
        assert tag in tags
    assert "gap/loss_gl" not in tags  # a classifier (an accuracy): its eval loss rise is not judged
    gap = _series(detail, "gap/loss")
    assert gap["derived"] is True and gap["derived_from"] == ["train/loss", "val/loss"]
    assert gap["title"] == "loss gap" and _series(detail, "val/loss")["title"] == "loss (val)"
    # First eval point (step 19): val 0.3 minus the mean of train steps 0..19.
    train = [np.float32(np.exp(-s / 40) + 0.05) for s in range(20)]
    assert gap["steps"][0] == 19
    assert gap["values"][0] == pytest.approx(np.float32(0.3) - np.mean(train), rel=1e-5)
    relative = _series(detail, "gap/loss_relative")
    # Informational: it explodes as the training loss nears 0.
    assert relative["status"] == "ok" and not any(relative["thresholds"].values())
    accuracy = _series(detail, "gap/accuracy")
    assert accuracy["values"][-1] > 0  # train accuracy above val accuracy: positive = worse
    assert accuracy["status"] == "ok"  # shown; judged only while the eval loss rises:
    overfit = _series(detail, "gap/accuracy_overfit")
    assert overfit["status"] == "critical" and overfit["thresholds"]["critical_above"] == 0.08
    # val/loss is flat at 0.3 until step 60, then rises: the gap counts only from step 79 on.
    assert [v for s, v in zip(overfit["steps"], overfit["values"], strict=True) if s < 79] == [0.0, 0.0, 0.0]
    assert [a["tag"] for a in detail["alerts"] if a["level"] == "critical"] == ["gap/accuracy_overfit"]


def test_smoothing_parameter_never_changes_the_verdict(harness, health_logdir):
    """Display smoothing is the browser's business: old URLs with ?smoothing= get the same verdict."""
    raw = harness.run(health_logdir.collapse)
    assert _series(raw, RANK_TAG)["smoothing"] == 0.0  # the rule's own smoothing
    for value in ("0.5", "0.99", "abc", "-1", "nan", ""):
        assert harness.run(health_logdir.collapse, smoothing=value) == raw, value
        assert harness.runs(f"?smoothing={value}") == harness.runs()
    row = _by_run(harness.runs())[health_logdir.collapse]
    assert row["worst_alert"] == raw["alerts"][0]


def test_missing_and_unknown_runs(harness, health_logdir):
    assert harness.get(PREFIX + "run").status_code == 400
    assert harness.get(PREFIX + "run?run=").status_code == 400
    assert harness.get(PREFIX + "run", query_string={"run": "no such run"}).status_code == 404
    # A run with scalars but nothing for the Health tab is not found either.
    assert harness.get(PREFIX + "run", query_string={"run": health_logdir.unrelated}).status_code == 404


@pytest.mark.parametrize("value", ["0", "1", "100001", "x", "2.5"])
def test_bad_downsample_is_400(harness, health_logdir, value):
    resp = harness.get(PREFIX + "run", query_string={"run": health_logdir.healthy, "downsample": value})
    assert resp.status_code == 400


def test_xss_run_name_round_trips(harness, health_logdir):
    runs = _by_run(harness.runs())
    assert health_logdir.xss in runs
    detail = harness.run(health_logdir.xss)
    assert detail["run"] == health_logdir.xss
    resp = harness.get(PREFIX + "runs")
    assert resp.headers["Content-Type"] == "application/json"
    assert resp.headers["X-Content-Type-Options"] == "nosniff"


def test_experiment_url_prefix(harness):
    body = harness.json("/experiment/abc/data/plugin/metricreg_health/runs")
    assert body["runs"]


def test_path_prefix(make_harness, health_logdir):
    h = make_harness(health_logdir.path, path_prefix="/tb")
    assert h.json("/data/plugins_listing")["metricreg_health"]["enabled"] is True
    assert _by_run(h.runs())[health_logdir.collapse]["status"] == "critical"


# --- sampling and downsampling -----------------------------------------------------------------


@pytest.fixture(scope="module")
def long_logdir(tmp_path_factory, writers):
    root = tmp_path_factory.mktemp("long")
    values = np.linspace(1.0, 0.6, 3000)
    values[1234] = 0.05  # a one-point dip below the critical threshold
    writers.quality(str(root / "long"), values)
    return str(root)


def test_default_sampling_keeps_1000_points(make_harness, long_logdir):
    h = make_harness(long_logdir)
    score = _series(h.run("long"), "train/quality/score")
    assert score["points"] == 1000  # the Python loader's reservoir for scalars
    assert score["last_step"] == 2999


def test_samples_per_plugin_zero_reads_everything(make_harness, long_logdir):
    h = make_harness(long_logdir, samples_per_plugin={"scalars": 0})
    detail = h.run("long")
    score = _series(detail, "train/quality/score")
    assert score["points"] == 3000
    assert len(score["steps"]) <= 1000  # the response is downsampled ...
    assert 1234 in score["steps"]  # ... but keeps the spike
    assert score["steps"][0] == 0 and score["steps"][-1] == 2999
    dip = next(a for a in detail["alerts"] if a["tag"] == "train/quality/score" and a["level"] == "critical")
    assert dip["first_step"] == 1234 and dip["active"] is False
    small = _series(h.run("long", downsample="50"), "train/quality/score")
    assert len(small["steps"]) <= 50 and 1234 in small["steps"]
    everything = _series(h.run("long", downsample="100000"), "train/quality/score")
    assert everything["steps"] == list(range(3000))


def test_sampling_hint_mapping():
    from metricreg_tensorboard.plugin import UNLIMITED, _hint

    assert _hint(None, "scalars") == UNLIMITED
    assert _hint({}, "scalars") == UNLIMITED
    assert _hint({"scalars": 0}, "scalars") == UNLIMITED
    assert _hint({"scalars": 500}, "scalars") == 500
    assert isinstance(_hint({"scalars": 500}, "scalars"), int)


# --- live data, caching and damaged files ------------------------------------------------------


def test_new_run_and_new_data_show_after_reload(make_harness, copy_logdir, health_logdir, writers):
    logdir = copy_logdir(health_logdir.healthy)
    h = make_harness(logdir)
    assert [r["run"] for r in h.runs()["runs"]] == [health_logdir.healthy]
    first = h.runs()
    assert h.runs() == first  # warm: served from the cache, identical
    writers.quality(os.path.join(logdir, "late"), [0.9] * 10)
    assert [r["run"] for r in h.runs()["runs"]] == [health_logdir.healthy]  # not reloaded yet
    h.reload()
    runs = _by_run(h.runs())
    assert runs["late"]["status"] == "ok"
    # The same run gets more (now bad) data: the cache notices the new max step.
    writers.quality(os.path.join(logdir, "late"), [0.9] * 10 + [0.1] * 5)
    h.reload()
    assert _by_run(h.runs())["late"]["status"] == "critical"
    assert h.run("late")["status"] == "critical"


def test_etags_answer_304_until_the_run_changes(make_harness, copy_logdir, health_logdir, writers):
    logdir = copy_logdir(health_logdir.healthy)
    writers.quality(os.path.join(logdir, "late"), [0.9] * 10)
    h = make_harness(logdir)
    resp = h.get(PREFIX + "run", query_string={"run": "late"})
    detail = json.loads(resp.get_data(as_text=True))
    run_tag = resp.headers["ETag"]
    assert run_tag == f'"{detail["fingerprint"]}"'
    rows = _by_run(h.runs())
    assert rows["late"]["fingerprint"] == detail["fingerprint"]  # /runs and /run agree on a run's fingerprint
    runs_tag = h.get(PREFIX + "runs").headers["ETag"]
    for path, query, tag in (("run", {"run": "late"}, run_tag), ("runs", {}, runs_tag)):
        again = h.get(PREFIX + path, query_string=query, headers={"If-None-Match": tag})
        assert again.status_code == 304 and again.get_data() == b"" and again.headers["ETag"] == tag
        assert h.get(PREFIX + path, query_string=query, headers={"If-None-Match": '"other"'}).status_code == 200
    # New points in one run: its fingerprint and the /runs ETag change, its neighbour's do not.
    writers.quality(os.path.join(logdir, "late"), [0.9] * 10 + [0.1] * 5)
    h.reload()
    resp = h.get(PREFIX + "run", query_string={"run": "late"}, headers={"If-None-Match": run_tag})
    assert resp.status_code == 200 and resp.headers["ETag"] != run_tag
    assert json.loads(resp.get_data(as_text=True))["status"] == "critical"
    assert h.get(PREFIX + "runs", headers={"If-None-Match": runs_tag}).status_code == 200
    new_rows = _by_run(h.runs())
    assert new_rows["late"]["fingerprint"] != rows["late"]["fingerprint"]
    assert new_rows[health_logdir.healthy]["fingerprint"] == rows[health_logdir.healthy]["fingerprint"]


def test_truncated_and_garbage_event_files(make_harness, copy_logdir, health_logdir):
    logdir = copy_logdir(health_logdir.diverged, health_logdir.healthy)
    run_dir = os.path.join(logdir, health_logdir.diverged)
    (name,) = os.listdir(run_dir)
    path = os.path.join(run_dir, name)
    size = os.path.getsize(path)
    with open(path, "r+b") as handle:
        handle.truncate(size - 7)  # cut into the last record
    with open(os.path.join(logdir, health_logdir.healthy, "events.out.tfevents.0.garbage"), "wb") as handle:
        handle.write(os.urandom(3000))
    os.makedirs(os.path.join(logdir, "junk"))
    with open(os.path.join(logdir, "junk", "events.out.tfevents.1.junk"), "wb") as handle:
        handle.write(b"\x00" * 5)
    h = make_harness(logdir)
    runs = _by_run(h.runs())
    assert runs[health_logdir.diverged]["status"] == "critical"
    assert runs[health_logdir.healthy]["status"] == "ok"
    assert h.run(health_logdir.diverged)["run"] == health_logdir.diverged
    assert h.get(PREFIX + "run", query_string={"run": "junk"}).status_code == 404


def _write_events(run_dir: str, records: list[tuple[int, list[bytes]]]) -> None:
    os.makedirs(run_dir, exist_ok=True)
    data = events.tfrecord(events.file_version_event(1.0))
    for i, (step, values) in enumerate(records):
        data += events.tfrecord(events.event(step, 1000.0 + i, values))
    with open(os.path.join(run_dir, "events.out.tfevents.1.test"), "wb") as handle:
        handle.write(data)


def _manifest(critical_below: float) -> str:
    health = {"category": "prediction", "critical_below": critical_below}
    return json.dumps(
        {
            "version": 1,
            "metrics": [{"name": "quality/score", "plugin": "hand", "health": {"": health}}],
            "series": {"train/quality/score": {"metric": "quality/score", "split": "train"}},
        }
    )


def test_latest_manifest_and_errors_win(make_harness, tmp_path):
    scalars = events.ScalarEncoder()
    manifest = lambda text: events.string_tensor_value(MANIFEST_TAG, text, PLUGIN_NAME, PLUGIN_CONTENT)  # noqa: E731
    errs = lambda text: events.string_tensor_value(ERRORS_TAG, text, PLUGIN_NAME, PLUGIN_CONTENT)  # noqa: E731
    records = [(0, [manifest(_manifest(0.1))]), (0, [errs(json.dumps({"a/b": {"count": 1}}))])]
    records += [(s, [scalars.value("train/quality/score", 0.5)]) for s in range(10)]
    records += [(9, [manifest(_manifest(0.9))]), (9, [errs(json.dumps({"c/d": {"count": 2, "plugin": "p"}}))])]
    _write_events(str(tmp_path / "hand"), records)
    h = make_harness(str(tmp_path))
    detail = h.run("hand")
    # The first manifest says 0.5 is fine, the latest says it is critical: the latest wins.
    assert detail["status"] == "critical"
    assert [e["metric"] for e in detail["errors"]] == ["c/d"]


def test_unreadable_manifest_makes_only_that_run_unreadable(make_harness, tmp_path):
    scalars = events.ScalarEncoder()
    bad = events.string_tensor_value(MANIFEST_TAG, "{not json", PLUGIN_NAME, PLUGIN_CONTENT)
    _write_events(str(tmp_path / "bad"), [(0, [bad]), (1, [scalars.value("train/x", 1.0)])])
    good = events.string_tensor_value(MANIFEST_TAG, _manifest(0.1), PLUGIN_NAME, PLUGIN_CONTENT)
    _write_events(
        str(tmp_path / "good"), [(0, [good])] + [(s, [scalars.value("train/quality/score", 0.05)]) for s in range(3)]
    )
    h = make_harness(str(tmp_path))
    runs = _by_run(h.runs())
    row = runs["bad"]
    assert row["status"] == "unreadable" and row["has_manifest"] is True
    assert row["categories"] == {} and row["alert_count"] == 0
    assert "manifest at step 0" in row["reason"] and "JSONDecodeError" in row["reason"]
    assert runs["good"]["status"] == "critical"  # its neighbour is judged as usual
    detail = h.run("bad")
    assert detail["status"] == "unreadable" and detail["reason"] == row["reason"]
    assert detail["categories"] == [] and detail["alerts"] == []


# --- static files and headers ------------------------------------------------------------------


def test_index_js(harness):
    resp = harness.get(PREFIX + "index.js")
    if not os.path.exists(STATIC_INDEX):
        assert resp.status_code == 404
        pytest.skip("tb_plugin/static/index.js is not built")
    assert resp.status_code == 200
    assert resp.headers["Content-Type"] == "text/javascript; charset=utf-8"
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    with open(STATIC_INDEX, "rb") as handle:
        assert resp.get_data() == handle.read()
    assert harness.get(PREFIX + "static/index.js").get_data() == resp.get_data()
    zipped = harness.get(PREFIX + "index.js", headers={"Accept-Encoding": "gzip"})
    assert zipped.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(zipped.get_data()) == resp.get_data()


@pytest.mark.parametrize("path", ["nope.js", "static/nope.js", "static/", "static/plugin.py", "index.html"])
def test_unknown_static_files_are_404(harness, path):
    assert harness.get(PREFIX + path).status_code == 404


TRAVERSALS = [
    "..%2f..%2fsetup.py",
    "..%2f..%2fpyproject.toml",
    "..%2F..%2F..%2Fpyproject.toml",
    "%2e%2e%2f%2e%2e%2fpyproject.toml",
    "%2e%2e/%2e%2e/pyproject.toml",
    "static/..%2f..%2fpyproject.toml",
    "static/..%2fplugin.py",
    "static/../plugin.py",
    "static/%2e%2e/plugin.py",
    "static/%2e%2e%2fplugin.py",
    "static/..%5cplugin.py",
    "static/%2fetc%2fpasswd",
    "static//etc/passwd",
    "static/index.js%00.py",
    "static/./index.js",
    "static/%252e%252e%252fplugin.py",
    "index.js/..%2f..%2fplugin.py",
]


@pytest.mark.parametrize("path", TRAVERSALS)
def test_path_traversal_is_404(harness, path):
    resp = harness.get(PREFIX + path)
    assert resp.status_code == 404, path
    body = resp.get_data()
    assert b"[build-system]" not in body and b"import" not in body and b"root:" not in body


def test_json_headers(harness, health_logdir):
    for path in ("runs", f"run?run={health_logdir.healthy}"):
        resp = harness.get(PREFIX + path)
        assert resp.status_code == 200
        assert resp.headers["Content-Type"] == "application/json"
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        assert "no-cache" in resp.headers["Cache-Control"]
        zipped = harness.get(PREFIX + path, headers={"Accept-Encoding": "gzip"})
        assert zipped.headers["Content-Encoding"] == "gzip"
        assert json.loads(gzip.decompress(zipped.get_data())) == json.loads(resp.get_data())


def test_scalars_route_beside_ours(harness, health_logdir):
    """TensorBoard's own Scalars plugin sees the same values (they are ordinary scalars)."""
    ours = _series(harness.run(health_logdir.collapse), RANK_TAG)
    theirs = harness.json("/data/plugin/scalars/scalars", query_string={"run": health_logdir.collapse, "tag": RANK_TAG})
    assert [p[1] for p in theirs] == ours["steps"]
    assert [p[2] for p in theirs] == pytest.approx(ours["values"])


# --- the entry point ---------------------------------------------------------------------------


def test_entry_module_is_cheap_and_registered():
    code = (
        "import sys\n"
        "from importlib.metadata import entry_points\n"
        "(ep,) = [e for e in entry_points(group='tensorboard_plugins') if e.name == 'metricreg_health']\n"
        "cls = ep.load()\n"
        "assert cls.plugin_name == 'metricreg_health', cls\n"
        "from tensorboard.plugins import base_plugin\n"
        "assert issubclass(cls, base_plugin.TBLoader), cls\n"
        "heavy = [m for m in ('torch', 'numpy', 'jax', 'tensorflow', 'grpc') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "from tensorboard import default\n"
        "assert cls in default.get_dynamic_plugins()\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_plugin_metadata():
    from metricreg_tensorboard.plugin import HealthPlugin
    from tensorboard.plugins import base_plugin

    plugin = HealthPlugin(base_plugin.TBContext())
    assert plugin.is_active() is False
    meta = plugin.frontend_metadata()
    assert meta.es_module_path == "/index.js" and meta.tab_name == "Health"
    assert set(plugin.get_plugin_apps()) == {"/index.js", "/static/*", "/runs", "/run"}


def test_a_provider_failure_costs_only_its_run_and_is_retried(make_harness, copy_logdir, health_logdir, writers):
    """The data provider raising for one run's data: that run is unreadable (not cached), the others judged."""
    logdir = copy_logdir(health_logdir.healthy, health_logdir.plain)
    h = make_harness(logdir)
    real = h.provider.read_scalars
    broken = {"plain"}

    def flaky_read_scalars(ctx, **kwargs):
        runs = kwargs["run_tag_filter"].runs or ()
        if broken & set(runs):
            raise RuntimeError("disk on fire")
        return real(ctx, **kwargs)

    h.provider.read_scalars = flaky_read_scalars
    resp = h.get(PREFIX + "runs")
    assert resp.status_code == 200 and "ETag" not in resp.headers  # an answer that must not be kept
    rows = _by_run(json.loads(resp.get_data(as_text=True)))
    assert rows["plain"]["status"] == "unreadable"
    assert "the data provider failed: RuntimeError: disk on fire" in rows["plain"]["reason"]
    assert rows[health_logdir.healthy]["status"] == "ok"
    assert h.run("plain")["status"] == "unreadable"
    broken.clear()  # the provider recovers: nothing stale was kept
    assert _by_run(h.runs())["plain"]["categories"] == {"generalization": "critical"}
    assert h.run("plain")["status"] == "critical"
