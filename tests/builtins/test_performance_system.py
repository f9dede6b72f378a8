"""Performance (step time, throughput) and system (RSS, CPU, GPU when present) metrics."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from metricreg.builtins import performance as P
from metricreg.builtins import system as Y


def test_step_time_and_throughput(monkeypatch):
    clock = iter([100.0, 102.0])
    monkeypatch.setattr(P.time, "perf_counter", lambda: next(clock))
    state: dict = {}
    assert P.performance(step=0, state=state, batch_size=64) is None  # starts the clock
    got = P.performance(step=20, state=state, batch_size=64, tokens=64 * 128, forward_time=0.03, backward_time=0.05)
    assert got["step_time_ms"] == pytest.approx(100.0)
    assert got["samples_per_s"] == pytest.approx(640.0)
    assert got["tokens_per_s"] == pytest.approx(640.0 * 128)
    assert got["forward_ms"] == pytest.approx(30.0) and got["backward_ms"] == pytest.approx(50.0)
    assert got["other_ms"] == pytest.approx(20.0)


def test_forward_backward_without_timing_state():
    got = P.performance(step=0, state={}, forward_time=0.01)
    assert got == {"forward_ms": pytest.approx(10.0)}


def test_system_reads_process_memory_and_cpu():
    state: dict = {}
    first = Y.system(state)
    assert 0.01 < first["rss_gb"] < 64
    assert "cpu_percent" not in first
    sum(i * i for i in range(200_000))
    second = Y.system(state)
    assert second["cpu_percent"] >= 0
    if "torch" not in sys.modules or not sys.modules["torch"].cuda.is_available():
        assert not any(k.startswith("gpu_allocated") for k in second)


def test_rss_fallback_without_proc(monkeypatch):
    import builtins

    real_open = builtins.open

    def no_proc(path, *a, **k):
        if str(path).startswith("/proc"):
            raise OSError("no /proc")
        return real_open(path, *a, **k)

    monkeypatch.setattr(builtins, "open", no_proc)
    assert Y.rss_bytes() > 1e6


def test_nvml_missing_is_silent(monkeypatch):
    monkeypatch.setitem(Y._nvml, "state", False)
    got = Y.system({})
    assert not any(k.startswith("gpu_util") for k in got)


_FORK_CHILD_RSS = """
import os
from metricreg.builtins import system as Y

Y.rss_bytes()  # opens the descriptor in the parent first
read, write = os.pipe()
pid = os.fork()
if pid == 0:  # the child grows by 256 MB between two readings
    try:
        before = Y.rss_bytes()
        block = bytearray(256 << 20)
        for i in range(0, len(block), 4096):
            block[i] = 1
        os.write(write, repr(Y.rss_bytes() - before).encode())
    finally:
        os._exit(0)
os.close(write)
print(float(os.read(read, 100).decode()))
os.waitpid(pid, 0)
"""


@pytest.mark.skipif(not hasattr(os, "fork") or not os.path.exists("/proc/self/statm"), reason="needs fork and procfs")
def test_rss_after_fork_is_the_childs_own():
    """rss_bytes keeps /proc/<pid>/statm open; a forked child must read its own memory, not its parent's
    (through the parent's descriptor it would see no growth). In a fresh process: no threads to fork."""
    proc = subprocess.run([sys.executable, "-c", _FORK_CHILD_RSS], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert float(proc.stdout.strip()) > 200e6  # the child's own resident memory grew by its 256 MB
