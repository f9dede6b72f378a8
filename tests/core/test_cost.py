"""Each metric's training-thread cost is measured, written to the run and reported; a hung metric is named."""

import logging
import time

import pytest

import metricreg as mr
from metricreg.cli import build_report, format_report

from .eventfiles import latest_json, scalars
from .test_monitor import Plugin


@pytest.fixture(autouse=True)
def hermetic(monkeypatch):
    monkeypatch.setenv("METRICREG_DISABLE_PLUGIN_AUTOLOAD", "1")


def sleeper(seconds):
    def compute():
        time.sleep(seconds)
        return 1.0

    return compute


def test_cost_is_written_per_metric_and_shown_by_the_report(tmp_path):
    slow = mr.Metric("slow", compute=sleeper(0.02), every=1)
    fast = mr.Metric("fast", compute=lambda: 1.0, every=1)
    mon = mr.Monitor(tmp_path / "run", plugins=[Plugin(slow, fast)], builtins=False, cost_budget=10.0)
    for step in range(4):
        mon.step(step)
    mon.close()
    data = scalars(tmp_path / "run")
    assert data["_metricreg/cost/slow"][-1][1] >= 20.0  # at least the sleep, in milliseconds
    assert data["_metricreg/cost/fast"][-1][1] < data["_metricreg/cost/slow"][-1][1]
    report = build_report(str(tmp_path))
    costs = report["runs"][0]["cost"]
    assert [c["metric"] for c in costs] == ["slow", "fast"]
    assert "slow" in format_report(report) and "training-thread time per metric call" in format_report(report)


def test_a_metric_over_its_budget_is_reported_once(tmp_path, caplog):
    slow = mr.Metric("slow", compute=sleeper(0.02), every=1)
    mon = mr.Monitor(tmp_path / "run", plugins=[Plugin(slow)], builtins=False, cost_budget=0.01)
    with caplog.at_level(logging.WARNING, logger="metricreg"):
        for step in range(3):
            mon.step(step)
    mon.close()
    messages = [r.getMessage() for r in caplog.records if "over its budget" in r.getMessage()]
    assert len(messages) == 1
    assert "'slow'" in messages[0] and "Plugin" in messages[0] and "step 0" in messages[0]
    record = latest_json(tmp_path / "run", "_metricreg/cost")  # in the run too, for the Health tab
    assert record["budget_ms"] == pytest.approx(10.0)
    assert record["metrics"]["slow"]["plugin"].endswith("Plugin")
    assert record["metrics"]["slow"]["over_budget"]["step"] == 0
    assert record["metrics"]["slow"]["over_budget"]["ms"] >= 20.0


def test_a_run_without_slow_metrics_has_no_cost_record(tmp_path):
    mon = mr.Monitor(
        tmp_path / "run", plugins=[Plugin(mr.Metric("fast", compute=lambda: 1.0, every=1))], builtins=False
    )
    mon.step(0)
    mon.close()
    with pytest.raises(KeyError):
        latest_json(tmp_path / "run", "_metricreg/cost")


def test_a_hung_metric_is_named_while_it_blocks_the_step(tmp_path, caplog):
    stuck = mr.Metric("stuck", compute=sleeper(1.0), every=1)
    mon = mr.Monitor(tmp_path / "run", plugins=[Plugin(stuck)], builtins=False, hang_after=0.1, cost_budget=10.0)
    with caplog.at_level(logging.WARNING, logger="metricreg"):
        mon.step(0)  # the watchdog on the writer thread notices while this call is still inside the metric
    mon.close()
    messages = [r for r in caplog.records if "has been inside metric" in r.getMessage()]
    assert len(messages) == 1
    assert "'stuck'" in messages[0].getMessage() and "step 0" in messages[0].getMessage()
    assert messages[0].threadName == "metricreg-writer"
    hung = latest_json(tmp_path / "run", "_metricreg/cost")["metrics"]["stuck"]["hung"]
    assert hung["step"] == 0 and hung["returned"] is True and hung["seconds"] >= 1.0  # it came back after 1 s
