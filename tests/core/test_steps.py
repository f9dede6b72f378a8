"""Steps are non-negative int64 integers; anything else is refused at the call, never written."""

import numpy as np
import pytest

import metricreg as mr

from .eventfiles import scalars
from .test_monitor import Plugin


@pytest.fixture(autouse=True)
def hermetic(monkeypatch):
    monkeypatch.setenv("METRICREG_DISABLE_PLUGIN_AUTOLOAD", "1")


@pytest.fixture
def mon(tmp_path):
    failing = mr.Metric("failing", compute=lambda: 1 / 0, every=1)
    value = mr.Metric("value", compute=lambda step: float(step), every=1)
    monitor = mr.Monitor(tmp_path / "run", plugins=[Plugin(failing, value)], builtins=False, max_failures=10**6)
    yield monitor
    monitor.close()


@pytest.mark.parametrize(
    ("bad", "error", "words"),
    [
        (200.5, TypeError, "must be an integer"),
        (np.float32(3.0), TypeError, "float32"),
        ("7", TypeError, "str"),
        (True, TypeError, "bool"),
        (-1, ValueError, "[0, 2**63)"),
        (2**63, ValueError, "[0, 2**63)"),
        (np.uint64(2**63), ValueError, "[0, 2**63)"),
    ],
)
def test_bad_steps_raise_at_the_call_and_never_reach_the_writer(tmp_path, mon, bad, error, words):
    mon.step(0)
    with pytest.raises(error, match=r"Monitor\.step\(step=") as info:
        mon.step(bad)
    assert words in str(info.value)
    with pytest.raises(error, match=r"Monitor\.log\(step="):
        mon.log({"x": 1.0}, step=bad)
    with pytest.raises(error, match=r"Monitor\.eval\(step="):
        mon.eval(step=bad, loss=1.0)
    mon.step(1)
    mon.close()
    assert scalars(tmp_path / "run")["train/value"] == [(0, 0.0), (1, 1.0)]
    assert mon._writer._thread.is_alive() is False and not mon._writer.stats.errors


def test_numpy_and_torch_integer_steps_are_accepted(tmp_path, mon):
    torch = pytest.importorskip("torch")
    mon.step(np.int64(0))
    mon.step(torch.tensor(1))
    mon.step()  # continues from the last explicit step
    mon.log({"x": 1.0}, step=np.int32(5))
    mon.close()
    data = scalars(tmp_path / "run")
    assert data["train/value"] == [(0, 0.0), (1, 1.0), (2, 2.0)]
    assert data["train/x"] == [(5, 1.0)]
