"""The built-in plugins register cleanly, declare their inputs, and their health metadata is complete."""

from __future__ import annotations

import importlib

import numpy as np
import pytest

from metricreg.builtins import loss as L
from metricreg.config import Config
from metricreg.plugins import BUILTIN_PLUGINS, get_plugin_manager
from metricreg.registry import collect
from metricreg.spec import Health
from tests.builtins.conftest import value


def test_every_builtin_module_exists_and_registers():
    for name in BUILTIN_PLUGINS:
        module = importlib.import_module(name)
        assert module.METRICS, name
    registry = collect(get_plugin_manager(builtins=True), Config())
    names = {r.metric.name for r in registry.metrics}
    assert {"loss", "collapse", "ema", "gap", "optimization/update_ratio", "system", "performance"} <= names
    assert {"grads", "grad_norm"} <= set(registry.derived)
    plugins = {r.plugin for r in registry.metrics}
    assert plugins == set(BUILTIN_PLUGINS)


def test_every_threshold_has_a_remedy_and_every_rule_a_description():
    for name in BUILTIN_PLUGINS:
        for metric in importlib.import_module(name).METRICS:
            healths = [metric.health] if isinstance(metric.health, Health) else list((metric.health or {}).values())
            for h in healths:
                assert h.description, metric.name
                if h.has_thresholds:
                    assert h.remedy, (metric.name, h)
                    assert h.category in {
                        "collapse",
                        "ema",
                        "generalization",
                        "optimization",
                        "stability",
                        "prediction",
                        "performance",
                        "system",
                    }


def test_loss_metric_detaches_and_averages():
    torch = pytest.importorskip("torch")
    w = torch.ones(3, requires_grad=True)
    per_sample = (w * torch.tensor([1.0, 2.0, 3.0])) ** 2
    out = L.loss(per_sample)
    assert not out.requires_grad and value(out) == pytest.approx(14 / 3)
    assert L.loss(0.5) == 0.5 and value(L.accuracy(np.float32(0.25))) == 0.25
