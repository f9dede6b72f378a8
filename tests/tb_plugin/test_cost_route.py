"""``/run``'s Cost section: what each metric costs the training thread, read back from a real run.

The runs are written by a real Monitor with real plugin metrics (one deliberately slow), and
served by TensorBoard's own WSGI app over its multiplexer data provider (see conftest.py).
"""

from __future__ import annotations

import json
import os
import threading
import time

import pytest
from metricreg_tensorboard import plugin

import metricreg as mr
from metricreg import events
from metricreg.cost import COST_PREFIX, COST_TAG
from metricreg.manifest import PLUGIN_CONTENT, PLUGIN_NAME

from .conftest import PREFIX


@pytest.fixture(autouse=True)
def hermetic(monkeypatch):
    monkeypatch.setenv("METRICREG_DISABLE_PLUGIN_AUTOLOAD", "1")


class Plugin:
    """A user's metric plugin, declared in the script as a user would."""

    def __init__(self, *metrics: mr.Metric) -> None:
        self.metrics = metrics

    @mr.hookimpl
    def metricreg_register_metrics(self, register):
        for metric in self.metrics:
            register(metric)


def slow() -> float:
    time.sleep(0.02)
    return 1.0


def write_run(logdir, steps: int = 4, budget: float = 0.01) -> None:
    metrics = (
        mr.Metric("quality/fast", compute=lambda: 0.5, every=1),
        mr.Metric("quality/slow", compute=slow, every=1),
    )
    mon = mr.Monitor(os.path.join(logdir, "exp"), plugins=[Plugin(*metrics)], builtins=False, cost_budget=budget)
    for step in range(steps):
        mon.step(step)
    mon.close()


def append_events(run_dir, *values: bytes, step: int = 100) -> None:
    """A later event file in the run, holding only ``values`` (as another writer would add); its name
    sorts after the Monitor's, as TensorBoard's directory watcher expects of a newer file."""
    path = os.path.join(run_dir, f"events.out.tfevents.{int(time.time()) + 10}.test.cost")
    with open(path, "wb") as handle:
        handle.write(events.tfrecord(events.file_version_event(time.time())))
        handle.write(events.tfrecord(events.event(step, time.time(), list(values))))


def test_run_lists_the_slow_metric_first_with_its_share_and_budget(tmp_path, make_harness):
    write_run(str(tmp_path))
    body = make_harness(str(tmp_path)).run("exp")
    cost = body["cost"]
    assert [c["metric"] for c in cost] == ["quality/slow", "quality/fast"]
    slow_row, fast_row = cost
    assert slow_row["mean_ms"] >= 20.0  # at least the sleep
    assert slow_row["step"] >= 0 and slow_row["plugin"].endswith("Plugin")
    assert body["cost_ms_total"] == pytest.approx(slow_row["mean_ms"] + fast_row["mean_ms"])
    assert slow_row["share"] + fast_row["share"] == pytest.approx(1.0)
    assert slow_row["share"] > 0.9
    # Over the Monitor's 10 ms budget: recorded in the run, so the tab can highlight it.
    assert body["cost_budget_ms"] == pytest.approx(10.0)
    assert slow_row["over_budget"]["step"] == 0 and slow_row["over_budget"]["ms"] >= 20.0
    assert fast_row["over_budget"] is None and fast_row["hung"] is None
    # The plugin's own copy of the tag names (it must import without metricreg) agrees with the writer's.
    assert (plugin.COST_TAG, plugin.COST_PREFIX) == (COST_TAG, COST_PREFIX)
    # The verdict ignores cost series: they are not metrics of the model.
    tags = [m["tag"] for c in body["categories"] for m in c["metrics"]]
    assert not [t for t in tags if t.startswith("_metricreg/")]


def test_new_cost_data_changes_the_etag_and_the_answer(tmp_path, make_harness):
    write_run(str(tmp_path), budget=10.0)
    harness = make_harness(str(tmp_path))
    first = harness.get(PREFIX + "run", query_string={"run": "exp"})
    etag = first.headers["ETag"]
    assert json.loads(first.get_data(as_text=True))["cost"][0]["metric"] == "quality/slow"
    # Only a cost series moves (the fast metric got costly): the run's data changed, so must the answer.
    append_events(tmp_path / "exp", events.ScalarEncoder().value(COST_PREFIX + "quality/fast", 500.0))
    harness.reload()
    second = harness.get(PREFIX + "run", query_string={"run": "exp"}, headers={"If-None-Match": etag})
    assert second.status_code == 200 and second.headers["ETag"] != etag
    cost = json.loads(second.get_data(as_text=True))["cost"]
    assert cost[0]["metric"] == "quality/fast" and cost[0]["mean_ms"] == pytest.approx(500.0)
    assert cost[0]["step"] == 100
    # Unchanged data: a conditional request is answered 304.
    third = harness.get(PREFIX + "run", query_string={"run": "exp"}, headers={"If-None-Match": second.headers["ETag"]})
    assert third.status_code == 304


def test_an_unreadable_cost_record_costs_only_the_cost_section(tmp_path, make_harness):
    write_run(str(tmp_path), budget=10.0)
    bad = events.string_tensor_value(
        COST_TAG, json.dumps({"metrics": ["not", "an", "object"]}), PLUGIN_NAME, PLUGIN_CONTENT
    )
    append_events(tmp_path / "exp", bad)
    body = make_harness(str(tmp_path)).run("exp")
    assert body["status"] != "unreadable"  # the verdict does not depend on it
    assert "cost record" in body["cost_problem"] and "metrics" in body["cost_problem"]
    assert [c["metric"] for c in body["cost"]] == ["quality/slow", "quality/fast"]  # the series still show


def test_a_metric_hung_right_now_is_shown_first_while_training_is_blocked(tmp_path, make_harness):
    release = threading.Event()

    def stuck() -> float:
        release.wait(30.0)
        return 1.0

    metrics = (
        mr.Metric("quality/fast", compute=lambda: 0.5, every=1),
        mr.Metric("quality/stuck", compute=stuck, every=1),
    )
    mon = mr.Monitor(
        str(tmp_path / "exp"), plugins=[Plugin(*metrics)], builtins=False, hang_after=0.05, flush_secs=0.05
    )
    training = threading.Thread(target=mon.step, args=(0,))
    training.start()
    try:
        harness = make_harness(str(tmp_path))
        deadline = time.monotonic() + 20.0
        body: dict = {}
        while time.monotonic() < deadline:  # until the watchdog's report reaches the file
            harness.reload()
            if "exp" in {r["run"] for r in harness.runs()["runs"]}:
                body = harness.run("exp")
                if body["cost"] and body["cost"][0]["hung"]:
                    break
            time.sleep(0.05)
        assert body["cost"][0]["metric"] == "quality/stuck"
        assert body["cost"][0]["hung"]["returned"] is False and body["cost"][0]["hung"]["step"] == 0
        assert body["cost"][0]["mean_ms"] is None  # no call of it has finished yet
        assert body["cost_hang_after_s"] == pytest.approx(0.05)
    finally:
        release.set()
        training.join(30.0)
        mon.close()
