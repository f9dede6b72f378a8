"""Try the example plugin: a numpy loop whose data loader breaks halfway through.

    pip install -e examples/plugin_package
    python examples/plugin_package/try_it.py runs/plugin
    metricreg report runs/plugin     # data_quality: CRITICAL (duplicates and label entropy)

From step 200 on, the "loader" serves a single repeated shard of 8 samples of one class:
the duplicate fraction jumps and the label entropy drops, in the plugin's own
``data_quality`` section of the Health tab. Nothing in this script names the plugin; the
Monitor finds it through its entry point.
"""

from __future__ import annotations

import logging
import sys

import numpy as np

import metricreg as mr


def main(logdir: str = "runs/plugin", steps: int = 400) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    rng = np.random.default_rng(0)
    classes = 4
    w = np.zeros((16, classes))
    stuck = rng.standard_normal((8, 16))  # the broken loader's only samples
    with mr.Monitor(logdir) as mon:
        for step in range(steps):
            if step < steps // 2:
                x = rng.standard_normal((64, 16))
                y = rng.integers(0, classes, size=64)
            else:
                x = stuck[rng.integers(0, 8, size=64)]
                y = np.zeros(64, dtype=np.int64)
            logits = x @ w
            p = np.exp(logits - logits.max(axis=1, keepdims=True))
            p /= p.sum(axis=1, keepdims=True)
            loss = float(-np.log(p[np.arange(64), y] + 1e-12).mean())
            p[np.arange(64), y] -= 1.0
            w -= 0.1 * x.T @ p / 64
            mon.step(step, loss=loss, batch=x, labels=y, num_classes=classes)
    # After close() the writer thread has judged every value: mon.alerts is final.
    names = sorted({a.category for a in mon.alerts})
    plugins = [name for name, _ in mon.plugin_manager.list_name_plugin()]
    print(f"wrote {logdir}; plugin loaded: {'example' in plugins}; active alert categories: {names}")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:2]))
