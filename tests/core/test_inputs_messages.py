"""Lazy inputs that fail or are iterators, and the messages a user meets when something is set up wrong."""

import logging
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import metricreg as mr
from metricreg.manifest import ERRORS_TAG

from .eventfiles import latest_json, scalars
from .test_monitor import Plugin

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(autouse=True)
def hermetic(monkeypatch):
    monkeypatch.setenv("METRICREG_DISABLE_PLUGIN_AUTOLOAD", "1")


def two_metrics_on(name, inputs=()):
    """Two metrics that both need the input ``name`` (their parameter is named after it)."""
    width = mr.Metric("width", compute=eval(f"lambda {name}: float({name}.shape[1])"), every=1)
    first = mr.Metric("first", compute=eval(f"lambda {name}: float({name}[0, 0])"), every=1)
    return Plugin(width, first, inputs=inputs)


def test_a_failing_lazy_input_runs_once_per_step_is_named_and_disables_no_metric(tmp_path, caplog):
    calls = []

    def embeddings(step):
        calls.append(step)
        if step < 5:
            raise RuntimeError("no batch yet")
        return np.ones((2, 3))

    mon = mr.Monitor(tmp_path / "run", plugins=[two_metrics_on("embeddings")], builtins=False, inputs=["embeddings"])
    with caplog.at_level(logging.WARNING, logger="metricreg"):
        for step in range(7):
            mon.step(step, embeddings=lambda step=step: embeddings(step))
    mon.close()
    assert calls == list(range(7))  # once per step, although two metrics need it
    errors = mon.errors
    assert set(errors) == {"input:embeddings"}  # blamed on the input, not on width/first
    assert errors["input:embeddings"]["count"] == 5 and errors["input:embeddings"]["plugin"] == "Monitor.step"
    assert "no batch yet" in errors["input:embeddings"]["last_message"]
    data = scalars(tmp_path / "run")
    assert data["train/width"] == [(5, 3.0), (6, 3.0)]  # not disabled after 5 failures
    assert data["train/first"] == [(5, 1.0), (6, 1.0)]
    assert latest_json(tmp_path / "run", ERRORS_TAG)["input:embeddings"]["count"] == 5
    warnings = [r.getMessage() for r in caplog.records if "embeddings" in r.getMessage()]
    assert len(warnings) == 1 and "input 'embeddings'" in warnings[0]


def test_a_failing_derived_input_is_named_with_its_plugin(tmp_path):
    runs = []

    def centred(x):
        runs.append(1)
        raise ValueError("bad shape")

    plugin = two_metrics_on("centred", inputs=[("x", None), ("centred", centred)])
    mon = mr.Monitor(tmp_path / "run", plugins=[plugin], builtins=False)
    for step in range(4):
        mon.step(step, x=np.ones((2, 2)))
    mon.close()
    assert len(runs) == 4
    assert set(mon.errors) == {"input:centred"}
    assert mon.errors["input:centred"]["plugin"].endswith("Plugin")
    assert "derived input" in mon.errors["input:centred"]["last_message"]


def test_generators_and_iterators_are_refused_with_a_clear_error(tmp_path):
    mon = mr.Monitor(tmp_path / "run", plugins=[two_metrics_on("embeddings")], builtins=False, inputs=["embeddings"])
    with pytest.raises(TypeError, match=r"Monitor\.step\(embeddings=\.\.\.\).*generator.*list or an array"):
        mon.step(0, embeddings=(np.ones((2, 3)) for _ in range(2)))
    with pytest.raises(TypeError, match="iterator"):
        mon.step(1, embeddings=iter([np.ones((2, 3))]))
    mon.step(2, embeddings=lambda: (row for row in np.ones((2, 3))))  # a callable's result: that input's failure
    mon.close()
    assert "iterator" in mon.errors["input:embeddings"]["last_message"]
    assert set(mon.errors) == {"input:embeddings"}


class BadThresholds:
    @mr.hookimpl
    def metricreg_register_metrics(self, register):
        register(mr.Metric("ok", compute=lambda: 1.0))
        register(
            mr.Metric(
                "grad/snr",
                compute=lambda: 1.0,
                health=mr.Health(category="optimization", warn_below=2.0, critical_below=5.0),
            )
        )


def test_a_threshold_error_names_the_plugin_and_the_metric(tmp_path):
    with pytest.raises(mr.RegistrationError, match=r"plugin '.*BadThresholds', metric 'grad/snr': Health thresholds"):
        mr.Monitor(tmp_path / "run", plugins=[BadThresholds()], builtins=False)


def test_duplicate_names_advise_what_actually_works(tmp_path):
    class Other(Plugin):
        pass

    with pytest.raises(mr.RegistrationError) as info:
        mr.Monitor(
            tmp_path / "run",
            plugins=[Plugin(mr.Metric("dup", compute=lambda: 1.0)), Other(mr.Metric("dup", compute=lambda: 2.0))],
            builtins=False,
        )
    message = str(info.value)
    assert "rename one" in message and "METRICREG_PLUGINS" in message and "builtins=False" in message
    assert "config" not in message  # disabling in config cannot work: this error comes first


def test_a_string_in_plugins_is_one_module(tmp_path, monkeypatch):
    (tmp_path / "my_metrics.py").write_text(
        "import metricreg as mr\n\n"
        "@mr.hookimpl\n"
        "def metricreg_register_metrics(register):\n"
        "    register(mr.Metric('mine', compute=lambda: 4.0))\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    mon = mr.Monitor(tmp_path / "run", plugins="my_metrics", builtins=False)
    assert [r.metric.name for r in mon.registry.metrics] == ["mine"]
    mon.close()
    with pytest.raises(mr.PluginError, match="'no_such_metrics_module'"):
        mr.Monitor(tmp_path / "run2", plugins="no_such_metrics_module", builtins=False)


def test_unknown_names_in_metricreg_plugins_warn(tmp_path, monkeypatch):
    monkeypatch.delenv("METRICREG_DISABLE_PLUGIN_AUTOLOAD")
    monkeypatch.setenv("METRICREG_PLUGINS", "no_such_plugin_name")
    with pytest.warns(UserWarning, match="METRICREG_PLUGINS names 'no_such_plugin_name'"):
        mon = mr.Monitor(tmp_path / "run", builtins=False)
    mon.close()


def test_a_second_monitor_on_the_same_run_directory_warns(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="metricreg"):
        first = mr.Monitor(tmp_path / "run", builtins=False)
        elsewhere = mr.Monitor(tmp_path / "other", builtins=False)
        assert not [r for r in caplog.records if "already writing" in r.getMessage()]
        second = mr.Monitor(tmp_path / "run", builtins=False)
    for mon in (first, elsewhere, second):
        mon.close()
    messages = [r.getMessage() for r in caplog.records if "already writing" in r.getMessage()]
    assert len(messages) == 1 and "this process" in messages[0] and str(tmp_path / "run") in messages[0]


def test_a_monitor_of_another_live_process_on_the_same_run_directory_warns(tmp_path, caplog):
    script = textwrap.dedent(
        f"""
        import sys, metricreg as mr
        mon = mr.Monitor({str(tmp_path / "run")!r}, builtins=False)
        print("ready", flush=True)
        sys.stdin.read()
        mon.close()
        """
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
    try:
        assert proc.stdout.readline().strip() == b"ready"
        with caplog.at_level(logging.WARNING, logger="metricreg"):
            mr.Monitor(tmp_path / "run", builtins=False).close()
    finally:
        proc.communicate(b"", timeout=60)
    assert any(f"process {proc.pid}" in r.getMessage() for r in caplog.records)
