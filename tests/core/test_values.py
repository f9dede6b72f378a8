"""Each value is written as it was at its step, and a bad value costs only itself."""

import functools
import threading

import pytest

import metricreg as mr
from metricreg.manifest import ERRORS_TAG

from .eventfiles import latest_json, scalars
from .test_monitor import Plugin

torch = pytest.importorskip("torch")


@pytest.fixture(autouse=True)
def hermetic(monkeypatch):
    monkeypatch.setenv("METRICREG_DISABLE_PLUGIN_AUTOLOAD", "1")


def monitor(tmp_path, *metrics, **kwargs):
    return mr.Monitor(tmp_path / "run", plugins=[Plugin(*metrics)], builtins=False, **kwargs)


class StalledWriter:
    """Holds the writer thread back, so values are read as late as a busy writer would read them."""

    def __init__(self, mon):
        self.writer = mon._writer
        self.gate = threading.Event()
        original = self.writer._handle

        def stalled(record):
            self.gate.wait()
            original(record)

        self.writer._handle = stalled

    def release(self):
        self.gate.set()


def test_a_bad_value_costs_only_itself_and_is_recorded_with_metric_and_plugin(tmp_path):
    good = mr.Metric("good", compute=lambda: 1.0, every=1)
    mixed = mr.Metric("mixed", compute=lambda: {"ok": 2.0, "huge": 10**400}, every=1)
    meta = mr.Metric("meta", compute=lambda: torch.empty((), device="meta"), every=1)
    mon = monitor(tmp_path, good, mixed, meta)
    for step in range(6):
        mon.step(step)
        mon.flush()  # the writer sees each step before the next: disabling is deterministic here
    mon.close()
    data = scalars(tmp_path / "run")
    assert data["train/good"] == [(s, 1.0) for s in range(6)]
    # The good member of the family is kept while the family runs; three bad values in a row disable it.
    assert data["train/mixed/ok"] == [(s, 2.0) for s in range(3)]
    assert "train/mixed/huge" not in data and "train/meta" not in data
    errors = latest_json(tmp_path / "run", ERRORS_TAG)
    for name in ("mixed", "meta"):
        assert errors[name]["plugin"].endswith("Plugin")
        assert errors[name]["disabled"] is True
        assert errors[name]["count"] == 3
        assert mon.errors[name] == errors[name]
    assert "train/mixed/huge" in errors["mixed"]["last_message"]
    assert "train/meta" in errors["meta"]["last_message"] and "meta" in errors["meta"]["last_message"]
    assert "good" not in errors


def test_an_occasional_bad_value_is_counted_but_does_not_disable(tmp_path):
    flaky = mr.Metric("flaky", compute=lambda step: 10**400 if step % 2 else float(step), every=1)
    mon = monitor(tmp_path, flaky)
    for step in range(8):
        mon.step(step)
        mon.flush()
    mon.close()
    assert [s for s, _ in scalars(tmp_path / "run")["train/flaky"]] == [0, 2, 4, 6]
    assert mon.errors["flaky"]["count"] == 4 and not mon.errors["flaky"]["disabled"]


def test_values_that_alias_mutable_torch_state_are_written_as_they_were_at_their_step(tmp_path):
    weight = torch.nn.Parameter(torch.tensor(0.0))
    param = mr.Metric("param", compute=lambda: weight, every=1)
    seen = mr.Metric("seen_loss", compute=lambda loss: loss, every=1)
    mon = monitor(tmp_path, param, seen)
    stall = StalledWriter(mon)
    total = torch.zeros(())
    for step in range(20):
        total += 1.0  # a running-loss accumulator updated in place
        mon.step(step, loss=total)
        mon.log({"logged": total}, step=step)
        with torch.no_grad():
            weight.add_(1.0)
    mon.eval(step=20, loss=total)
    total += 100.0
    stall.release()
    mon.close()
    data = scalars(tmp_path / "run")
    assert data["train/param"] == [(s, float(s)) for s in range(20)]
    assert data["train/seen_loss"] == [(s, float(s + 1)) for s in range(20)]
    assert data["train/logged"] == [(s, float(s + 1)) for s in range(20)]
    assert data["val/loss"] == [(20, 20.0)]


def test_jax_buffers_donated_by_the_next_jitted_step_are_captured(tmp_path):
    jax = pytest.importorskip("jax")
    jnp = jax.numpy

    @functools.partial(jax.jit, donate_argnums=0)
    def train_step(state):
        return {"lr": state["lr"] * 0.5, "w": state["w"] + 1.0}

    lr = mr.Metric("lr", compute=lambda lr: lr, every=1)
    mon = monitor(tmp_path, lr, inputs=["lr"])
    stall = StalledWriter(mon)
    state = {"lr": jnp.asarray(1.0), "w": jnp.zeros(4)}
    for step in range(5):
        mon.step(step, lr=state["lr"])  # the learning rate returned from optimizer state
        state = train_step(state)  # donates (deletes) the buffer passed above
    stall.release()
    mon.close()
    assert scalars(tmp_path / "run")["train/lr"] == [(s, 0.5**s) for s in range(5)]


def test_an_already_deleted_jax_buffer_costs_only_its_own_value(tmp_path):
    jax = pytest.importorskip("jax")
    gone = jax.numpy.asarray(3.0)
    gone.delete()
    bad = mr.Metric("gone", compute=lambda: gone, every=1)
    ok = mr.Metric("ok", compute=lambda: jax.numpy.asarray(2.0), every=1)
    mon = monitor(tmp_path, bad, ok)
    mon.step(0)
    mon.close()
    assert scalars(tmp_path / "run")["train/ok"] == [(0, 2.0)]
    assert "deleted" in mon.errors["gone"]["last_message"]
