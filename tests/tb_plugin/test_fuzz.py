"""Fuzz: hostile manifests and metric-errors records never make a route answer 500.

Every run of the fuzz logdir (see ``hostile.py``) is read by TensorBoard's own
multiplexer and served by TensorBoard's WSGI app: each one is either judged or
"unreadable" with a reason, and the valid control run beside them keeps its verdict.
"""

from __future__ import annotations

import json

import pytest

from tests.tb_plugin.hostile import CONTROL, HOSTILE_NAMES, write_cases

PREFIX = "/data/plugin/metricreg_health/"
STATUSES = {"ok", "warn", "critical", "none", "unreadable"}


@pytest.fixture(scope="module")
def fuzz(tmp_path_factory):
    from tests.tb_plugin.conftest import Harness

    logdir = str(tmp_path_factory.mktemp("fuzz"))
    cases = write_cases(logdir)
    return Harness(logdir), cases


def _get_json(harness, path, **kwargs):
    resp = harness.get(path, **kwargs)
    assert resp.status_code == 200, (path, kwargs, resp.status_code, resp.get_data(as_text=True)[:300])
    return json.loads(resp.get_data(as_text=True))


def test_runs_answers_with_every_run_judged_or_unreadable(fuzz):
    harness, cases = fuzz
    body = _get_json(harness, PREFIX + "runs")
    rows = {row["run"]: row for row in body["runs"]}
    assert set(rows) == set(cases)
    for run, row in rows.items():
        assert row["status"] in STATUSES, (run, cases[run], row["status"])
        if row["status"] == "unreadable":
            assert isinstance(row["reason"], str) and 0 < len(row["reason"]) <= 500, (run, row["reason"])
            assert row["categories"] == {} and row["alert_count"] == 0 and row["has_manifest"] is True
        else:
            assert "reason" not in row
            assert all(isinstance(k, str) and v in STATUSES for k, v in row["categories"].items())
        assert isinstance(row["fingerprint"], str) and row["fingerprint"]
    statuses = {row["status"] for row in rows.values()}
    assert "unreadable" in statuses and statuses & {"ok", "warn", "critical"}  # the fuzz hits both sides
    assert rows[CONTROL]["status"] == "critical" and rows[CONTROL]["error_count"] == 1


def test_the_issue_cases_are_unreadable_with_the_culprit_named(fuzz):
    harness, _ = fuzz
    rows = {row["run"]: row for row in _get_json(harness, PREFIX + "runs")["runs"]}
    assert rows["category_5"]["status"] == "unreadable"
    assert "category must be a string, got 5" in rows["category_5"]["reason"]
    assert "'quality/score'" in rows["category_5"]["reason"]  # the metric is named
    assert rows["errors_count_abc"]["status"] == "unreadable"
    assert "count must be a number, got 'abc'" in rows["errors_count_abc"]["reason"]
    assert "metric errors record at step 1" in rows["errors_count_abc"]["reason"]
    assert "RecursionError" in rows["deep_nesting"]["reason"]
    assert "UnicodeDecodeError" in rows["not_utf8"]["reason"]


@pytest.mark.parametrize("downsample", [None, "2"])
def test_run_answers_for_every_run(fuzz, downsample):
    harness, cases = fuzz
    for run in cases:
        query = {"run": run, **({"downsample": downsample} if downsample else {})}
        detail = _get_json(harness, PREFIX + "run", query_string=query)
        assert detail["run"] == run and detail["status"] in STATUSES
        if detail["status"] == "unreadable":
            assert detail["categories"] == [] and detail["alerts"] == [] and detail["reason"]


def test_hostile_category_and_run_names_round_trip(fuzz):
    """`__proto__`, `constructor`: plain JSON keys and strings, with a title that is never blank."""
    harness, _ = fuzz
    body = _get_json(harness, PREFIX + "runs")
    titles = {c["name"]: c["title"] for c in body["categories"]}
    rows = {row["run"]: row for row in body["runs"]}
    for name in HOSTILE_NAMES:
        assert rows[name]["categories"] == {name: "critical"}, name
        assert titles[name].strip(), name
        assert rows[name]["worst_alert"]["category"] == name
        detail = _get_json(harness, PREFIX + "run", query_string={"run": name})
        assert [c["name"] for c in detail["categories"]] == [name]
    assert titles["__proto__"] == "__proto__" and titles["constructor"] == "Constructor"


@pytest.mark.parametrize("load_fast", ["false", "true"])
def test_no_500_on_a_real_server(tensorboard_server, tmp_path, load_fast):
    """The same hostile records through a real TensorBoard (RustBoard hands tensors over differently)."""
    from urllib.parse import quote

    from tests.tb_plugin.test_real_server import _skip_without_rustboard

    _skip_without_rustboard(load_fast)
    cases = write_cases(str(tmp_path), mutations=20)
    server = tensorboard_server(str(tmp_path), load_fast)
    server.wait_for_tab()
    body = server.wait_for_runs(cases)
    rows = {row["run"]: row for row in body["runs"]}
    assert rows["category_5"]["status"] == "unreadable" and rows[CONTROL]["status"] == "critical"
    for run in cases:
        code, _, raw = server.get("data/plugin/metricreg_health/run?run=" + quote(run, safe=""))
        assert code == 200, (load_fast, run, raw[:200])
        assert json.loads(raw)["status"] == rows[run]["status"], (load_fast, run)
