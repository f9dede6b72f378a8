"""The queue is bounded in bytes as well as records, and close() keeps to its timeout."""

import logging
import threading
import tracemalloc

import numpy as np
import pytest

import metricreg as mr

from .eventfiles import load, scalars
from .test_monitor import Plugin


@pytest.fixture(autouse=True)
def hermetic(monkeypatch):
    monkeypatch.setenv("METRICREG_DISABLE_PLUGIN_AUTOLOAD", "1")


def stall(writer):
    gate = threading.Event()
    original = writer._handle

    def stalled(record):
        gate.wait()
        original(record)

    writer._handle = stalled
    return gate


def histogram_monitor(tmp_path, **kwargs):
    rng = np.random.default_rng(0)
    big = mr.Metric("big", compute=lambda: rng.random(25_000), kind="histogram", every=1)  # 200 kB each
    return mr.Monitor(tmp_path / "run", plugins=[Plugin(big)], builtins=False, **kwargs)


def test_large_records_are_bounded_by_the_byte_budget_and_the_rest_counted(tmp_path):
    budget = 1_000_000
    mon = histogram_monitor(tmp_path, max_queue_bytes=budget, on_full="drop")
    writer = mon._writer
    gate = stall(writer)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for step in range(50):  # 10 MB of results while the writer is stuck
        mon.step(step)
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert writer.queued_bytes <= budget + 200_100
    assert held < 2 * budget  # not the 10 MB an unbounded queue would keep
    gate.set()
    mon.close()
    written = len(load(tmp_path / "run").Histograms("train/big"))
    assert written + writer.stats.dropped == 50 and writer.stats.dropped >= 40
    assert scalars(tmp_path / "run")["_metricreg/dropped"][-1][1] == writer.stats.dropped


def test_blocking_under_a_byte_budget_loses_nothing(tmp_path):
    mon = histogram_monitor(tmp_path, max_queue_bytes=300_000, on_full="block")
    for step in range(30):
        mon.step(step)
    mon.close()
    assert len(load(tmp_path / "run").Histograms("train/big")) == 30
    assert mon._writer.stats.dropped == 0


def test_close_keeps_to_its_timeout_and_says_what_it_left(tmp_path, caplog):
    mon = mr.Monitor(tmp_path / "run", builtins=False)
    gate = stall(mon._writer)
    for step in range(10):
        mon.log({"v": 1.0}, step=step)
    with caplog.at_level(logging.ERROR, logger="metricreg"):
        mon.close(timeout=0.2)  # returns although the writer is stuck
    gate.set()
    mon._writer._thread.join(10)
    message = " ".join(r.getMessage() for r in caplog.records)
    assert "did not finish within 0.2 s" in message
    assert "leaving 9 queued records" in message or "leaving 10 queued records" in message  # 1 may be in hand
    assert str(tmp_path / "run") in message
