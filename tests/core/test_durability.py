"""What survives a SIGKILL, and what happens when the writer falls behind."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import metricreg as mr

from .eventfiles import load, scalars
from .test_monitor import Plugin


@pytest.fixture(autouse=True)
def hermetic(monkeypatch):
    monkeypatch.setenv("METRICREG_DISABLE_PLUGIN_AUTOLOAD", "1")


def test_sigkill_loses_at_most_the_last_flush_interval(tmp_path):
    script = textwrap.dedent(
        f"""
        import time, metricreg as mr
        mon = mr.Monitor({str(tmp_path / "run")!r}, builtins=False, flush_secs=0.25)
        step = 0
        while True:
            mon.log({{"wall": time.time()}}, step=step)
            step += 1
            time.sleep(0.002)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script])
    time.sleep(3.0)
    killed_at = time.time()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    points = load(tmp_path / "run").Scalars("train/wall")
    steps = [p.step for p in points]
    assert steps == list(range(len(steps)))  # every flushed record is intact, none torn
    assert len(steps) > 100
    assert killed_at - points[-1].wall_time < 0.25 + 0.5  # flush interval + scheduling slack


def test_drop_policy_counts_what_it_drops(tmp_path):
    slow = mr.Metric("x", compute=lambda: 1.0)
    mon = mr.Monitor(tmp_path / "run", plugins=[Plugin(slow)], builtins=False, queue_size=4, on_full="drop")
    writer = mon._writer
    # Stall the writer thread by holding the records it needs to process.
    original = writer._handle
    gate = __import__("threading").Event()

    def stalled(record):
        gate.wait()
        original(record)

    writer._handle = stalled
    for step in range(100):
        mon.log({"v": float(step)}, step=step)
    gate.set()
    mon.close()
    data = scalars(tmp_path / "run")
    written = len(data["train/v"])
    assert writer.stats.dropped == 100 - written > 0
    assert data["_metricreg/dropped"][-1][1] == writer.stats.dropped


def test_block_policy_keeps_everything_with_a_tiny_queue(tmp_path):
    mon = mr.Monitor(tmp_path / "run", builtins=False, queue_size=2, on_full="block")
    for step in range(2000):
        mon.log({"v": float(step)}, step=step)
    mon.close()
    assert scalars(tmp_path / "run")["train/v"] == [(s, float(s)) for s in range(2000)]
    assert mon._writer.stats.dropped == 0
