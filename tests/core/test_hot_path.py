"""The per-step gate: no pluggy, no allocation, when nothing is due."""

import tracemalloc

import pytest

import metricreg as mr

from .test_monitor import Plugin


@pytest.fixture(autouse=True)
def hermetic(monkeypatch):
    monkeypatch.setenv("METRICREG_DISABLE_PLUGIN_AUTOLOAD", "1")


def test_non_due_steps_call_no_hook_and_no_metric(tmp_path):
    calls = []
    m = mr.Metric("m", compute=lambda loss: calls.append(1) or loss, every=100)
    mon = mr.Monitor(tmp_path / "run", plugins=[Plugin(m)], builtins=False)

    class Exploding:
        def __getattr__(self, name):
            raise AssertionError(f"pluggy touched on the hot path: {name}")

    mon.step(0, loss=1.0)
    assert calls == [1]
    mon.plugin_manager.hook = Exploding()
    for step in range(1, 100):
        mon.step(step, loss=1.0)
    assert calls == [1]
    mon.step(100, loss=1.0)
    assert calls == [1, 1]
    mon.close()


def test_non_due_steps_allocate_nothing(tmp_path):
    mon = mr.Monitor(
        tmp_path / "run", plugins=[Plugin(mr.Metric("m", compute=lambda: 1.0, every=10**9))], builtins=False
    )
    mon.step()  # step 0 is due
    loss = 1.0
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    for _ in range(10000):
        mon.step(loss=loss)
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    # Only the training thread's code counts: the writer thread allocates on its own schedule.
    grown = sum(s.size_diff for s in after.compare_to(before, "filename") if "metricreg/monitor.py" in str(s.traceback))
    assert grown <= 64  # at most the one int that holds the step counter, never per step
    mon.close()
