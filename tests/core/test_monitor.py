"""Monitor behaviour a training loop depends on, read back from real event files."""

import logging
import math
import os
import subprocess
import sys

import numpy as np
import pytest

import metricreg as mr
from metricreg.manifest import ERRORS_TAG, MANIFEST_TAG

from .eventfiles import latest_json, load, scalars

pytestmark = pytest.mark.usefixtures("hermetic")


@pytest.fixture
def hermetic(monkeypatch):
    monkeypatch.setenv("METRICREG_DISABLE_PLUGIN_AUTOLOAD", "1")


class Plugin:
    """A user plugin declared in a test, as a user would in their script."""

    def __init__(self, *metrics, inputs=()):
        self.metrics = metrics
        self.inputs = inputs

    @mr.hookimpl
    def metricreg_register_metrics(self, register):
        for m in self.metrics:
            register(m)

    @mr.hookimpl
    def metricreg_register_inputs(self, register):
        for name, fn in self.inputs:
            register(name, fn)


def monitor(tmp_path, *metrics, inputs=(), **kwargs):
    kwargs.setdefault("builtins", False)
    return mr.Monitor(tmp_path / "run", plugins=[Plugin(*metrics, inputs=inputs)], **kwargs)


def test_values_families_and_fan_out_are_written_as_scalars(tmp_path):
    family = mr.Metric("stats", compute=lambda embeddings: {"mean": float(np.mean(embeddings)), "max": 3.0}, every=10)
    fan = mr.Metric(
        "collapse/width", compute=lambda embeddings: float(embeddings.shape[1]), every=10, fan_out="embeddings"
    )
    with monitor(tmp_path, family, fan, inputs=[("embeddings", None)]) as mon:
        for step in range(30):
            mon.step(embeddings=np.full((4, 3), float(step)))
        mon.step(embeddings={"context": np.ones((2, 5)), "target": np.ones((2, 7))})
    data = scalars(tmp_path / "run")
    assert data["train/stats/mean"] == [(0, 0.0), (10, 10.0), (20, 20.0)]
    assert data["train/collapse/width"] == [(0, 3.0), (10, 3.0), (20, 3.0)]
    assert data["train/collapse/context/width"] == [(30, 5.0)]
    assert data["train/collapse/target/width"] == [(30, 7.0)]
    manifest = latest_json(tmp_path / "run", MANIFEST_TAG)
    assert manifest["series"]["train/collapse/context/width"] == {
        "metric": "collapse/width",
        "member": None,
        "key": "context",
        "split": "train",
        "kind": "scalar",
    }


def test_deferred_inputs_run_once_and_only_when_needed(tmp_path):
    calls = {"z": 0, "unused": 0, "derived": 0}

    def z():
        calls["z"] += 1
        return np.ones((3, 2))

    def unused():
        calls["unused"] += 1
        return 1.0

    def doubled(embeddings):
        calls["derived"] += 1
        return embeddings * 2

    a = mr.Metric("a", compute=lambda embeddings: float(embeddings.sum()), every=5)
    b = mr.Metric("b", compute=lambda doubled: float(doubled.sum()), every=5)
    c = mr.Metric("c", compute=lambda doubled: float(doubled.max()), every=5)
    with monitor(tmp_path, a, b, c, inputs=[("embeddings", None), ("doubled", doubled), ("other", None)]) as mon:
        for _ in range(10):
            mon.step(embeddings=z, other=unused)
    assert calls == {"z": 2, "unused": 0, "derived": 2}
    assert scalars(tmp_path / "run")["train/b"] == [(0, 12.0), (5, 12.0)]


def test_nn_module_like_callables_are_values_not_thunks(tmp_path):
    class Model:
        def __call__(self, *args):
            raise AssertionError("a model must not be called as a deferred input")

        width = 4.0

    m = mr.Metric("width", compute=lambda model: model.width, every=1)
    with monitor(tmp_path, m, inputs=[("model", None)]) as mon:
        mon.step(model=Model())
    assert scalars(tmp_path / "run")["train/width"] == [(0, 4.0)]


def test_missing_inputs_skip_quietly(tmp_path, caplog):
    m = mr.Metric("needs_z", compute=lambda embeddings: 1.0, every=1)
    with (
        caplog.at_level(logging.WARNING, logger="metricreg"),
        monitor(tmp_path, m, inputs=[("embeddings", None)]) as mon,
    ):
        for _ in range(5):
            mon.step(loss=1.0)
    assert not caplog.records
    assert "train/needs_z" not in scalars(tmp_path / "run")
    assert mon.errors == {}


def test_failing_metric_is_isolated_counted_disabled_and_written(tmp_path, caplog):
    calls = []

    def flaky(loss):
        calls.append(1)
        raise RuntimeError("boom")

    good = mr.Metric("good", compute=lambda loss: loss, every=1)
    bad = mr.Metric("bad", compute=flaky, every=1)
    with caplog.at_level(logging.WARNING, logger="metricreg"), monitor(tmp_path, good, bad, max_failures=4) as mon:
        for step in range(10):
            mon.step(loss=float(step))
    assert len(calls) == 4  # disabled after 4 consecutive failures
    assert mon.errors["bad"]["first_step"] == 0 and mon.errors["bad"]["last_step"] == 3
    warnings = [r.getMessage() for r in caplog.records]
    assert sum("failed at step 0" in w for w in warnings) == 1  # reported once
    assert any("'bad'" in w and "test_monitor.Plugin" in w and "disabled" in w for w in warnings)
    assert scalars(tmp_path / "run")["train/good"] == [(s, float(s)) for s in range(10)]
    errors = latest_json(tmp_path / "run", ERRORS_TAG)
    assert errors["bad"]["count"] == 4 and errors["bad"]["disabled"] is True
    assert errors["bad"]["last_message"] == "RuntimeError: boom"
    assert errors["bad"]["plugin"].endswith("test_monitor.Plugin")


@pytest.mark.parametrize("exc", [KeyboardInterrupt, SystemExit])
def test_interrupts_are_not_swallowed(tmp_path, exc):
    def stop(loss):
        raise exc()

    mon = monitor(tmp_path, mr.Metric("stop", compute=stop, every=1))
    with pytest.raises(exc):
        mon.step(loss=1.0)
    mon.close()


def test_non_finite_values_are_written_and_trip_the_alert(tmp_path):
    seen = []

    class Watcher:
        @mr.hookimpl
        def metricreg_on_alert(self, alert, monitor):
            seen.append((alert.tag, alert.level, alert.bound, alert.active))
            monitor.request_stop(alert.message)

    m = mr.Metric("loss", compute=lambda loss: loss, every=1, health=mr.Health(category="stability"))
    mon = mr.Monitor(tmp_path / "run", plugins=[Plugin(m), Watcher()], builtins=False)
    for v in (1.0, float("nan"), float("inf"), 2.0):
        mon.step(loss=v)
    mon.close()
    values = [v for _, v in scalars(tmp_path / "run")["train/loss"]]
    assert values[0] == 1.0 and math.isnan(values[1]) and values[2] == math.inf and values[3] == 2.0
    assert seen[0] == ("train/loss", "critical", "nonfinite", True)
    assert mon.should_stop and "non-finite" in mon.stop_reason


def test_eval_epoch_end_and_log(tmp_path):
    on_eval = mr.Metric("eval_count", compute=lambda step, split: float(step), every=mr.on("eval"))
    on_epoch = mr.Metric("epochs", compute=lambda step: 1.0, every="epoch_end")
    with monitor(tmp_path, on_eval, on_epoch) as mon:
        for _ in range(10):
            mon.step(loss=1.0)
        mon.eval(loss=0.5, accuracy=np.float32(0.75), note="not a number")
        mon.epoch_end(epoch=1)
        mon.eval(split="test", loss=0.25)
        mon.log({"lr": 0.1, "huge": 1e300}, step=3)
    data = scalars(tmp_path / "run")
    assert data["val/loss"] == [(9, 0.5)]
    assert data["val/accuracy"] == [(9, 0.75)]
    assert data["val/eval_count"] == [(9, 9.0)]
    assert data["test/loss"] == [(9, 0.25)]
    assert data["test/eval_count"] == [(9, 9.0)]
    assert data["train/epoch"] == [(9, 1.0)]
    assert data["train/epochs"] == [(9, 1.0)]
    assert data["train/lr"] == [(3, pytest.approx(0.1))]
    assert data["train/huge"] == [(3, math.inf)]
    assert "val/note" not in data


def test_log_bad_value_is_reported_and_other_values_kept(tmp_path):
    with monitor(tmp_path) as mon:
        mon.log({"ok": 1.0, "bad": "high"}, step=1)
    data = scalars(tmp_path / "run")
    assert data["train/ok"] == [(1, 1.0)]
    errors = latest_json(tmp_path / "run", ERRORS_TAG)
    assert "train/bad" in errors and "not" in errors["train/bad"]["last_message"]


def test_histogram_image_and_text_kinds_are_readable(tmp_path):
    hist = mr.Metric("weights", compute=lambda: np.arange(100.0), every=1, kind="histogram")
    image = mr.Metric("sim", compute=lambda: np.linspace(0, 1, 12).reshape(3, 4), every=1, kind="image")
    text = mr.Metric("note", compute=lambda step: f"step {step}", every=1, kind="text")
    with monitor(tmp_path, hist, image, text) as mon:
        mon.step()
    acc = load(tmp_path / "run")
    h = acc.Histograms("train/weights")[0].histogram_value
    assert h.num == 100 and h.min == 0 and h.max == 99
    img = acc.Images("train/sim")[0]
    assert (img.width, img.height) == (4, 3) and img.encoded_image_string.startswith(b"\x89PNG")
    assert acc.Tensors("train/note")[0].tensor_proto.string_val[0] == b"step 0"


def test_config_overrides_schedules_and_disables(tmp_path):
    a = mr.Metric("collapse/rank", compute=lambda: 1.0, every=100)
    b = mr.Metric("system/rss", compute=lambda: 1.0, every=1)
    with monitor(tmp_path, a, b, config={"collapse/*": {"every": 5}, "system/*": False}) as mon:
        for _ in range(11):
            mon.step()
    data = scalars(tmp_path / "run")
    assert [s for s, _ in data["train/collapse/rank"]] == [0, 5, 10]
    assert "train/system/rss" not in data


@pytest.mark.parametrize("suffix", [".toml", ".yaml"])
def test_config_files(tmp_path, suffix):
    path = tmp_path / f"cfg{suffix}"
    if suffix == ".toml":
        path.write_text('[metrics."a"]\nevery = 3\n[monitor]\nflush_secs = 1.0\n')
    else:
        path.write_text("metrics:\n  a:\n    every: 3\nmonitor:\n  flush_secs: 1.0\n")
    with monitor(tmp_path, mr.Metric("a", compute=lambda: 1.0, every=100), config=path) as mon:
        for _ in range(7):
            mon.step()
    assert [s for s, _ in scalars(tmp_path / "run")["train/a"]] == [0, 3, 6]


def test_config_errors_name_the_culprit(tmp_path):
    m = mr.Metric("a", compute=lambda: 1.0)
    with pytest.raises(mr.ConfigError, match="'nope/\\*' matches no registered metric"):
        monitor(tmp_path, m, config={"nope/*": False})
    with pytest.raises(mr.ConfigError, match="unknown keys \\['evry'\\]"):
        monitor(tmp_path, m, config={"a": {"evry": 5}})
    with pytest.raises(mr.ConfigError, match="every"):
        monitor(tmp_path, m, config={"a": {"every": 0}})


def test_unwritable_logdir_fails_at_creation(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(mr.LogdirError, match="file"):
        mr.Monitor(blocker / "run", builtins=False)
    readonly = tmp_path / "ro"
    readonly.mkdir()
    readonly.chmod(0o500)
    try:
        if os.access(readonly, os.W_OK):
            pytest.skip("running as a user who can write anywhere")
        with pytest.raises(mr.LogdirError, match="ro"):
            mr.Monitor(readonly / "run", builtins=False)
    finally:
        readonly.chmod(0o700)


def test_the_core_imports_neither_torch_nor_jax():
    code = (
        "import sys, metricreg; m = metricreg.Monitor; print(sorted(k for k in ('torch', 'jax') if k in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
