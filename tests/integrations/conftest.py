"""Shared pieces for the framework integration tests: data, TensorBoard read-back, verdicts.

Every framework writes its own TensorBoard output; these helpers read it back with
TensorBoard's own loader, independently of metricreg's writer.
"""

from __future__ import annotations

import os

# Hermetic and offline: no third-party metricreg plugins, no Hugging Face downloads, one thread.
os.environ["METRICREG_DISABLE_PLUGIN_AUTOLOAD"] = "1"
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import pytest
from tensorboard.backend.event_processing import event_accumulator

from metricreg.reader import read_run


@pytest.fixture(scope="session")
def digits():
    """scikit-learn's digits (bundled with the package: no download), standardised, float32."""
    from sklearn.datasets import load_digits

    data = load_digits()
    x = (data.data / 16.0).astype(np.float32)
    x = (x - x.mean(0)) / (x.std(0) + 1e-3)
    order = np.random.default_rng(0).permutation(len(x))  # the file is ordered by writer: mix them
    return x[order], data.target.astype(np.int64)[order]


def scalars(run_dir) -> dict[str, list[tuple[int, float]]]:
    """{tag: [(step, value), ...]} of one directory's event files, via TensorBoard's EventAccumulator."""
    acc = event_accumulator.EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    acc.Reload()
    # Sorted by step (stable): a directory can hold several event files (fit, then validate), and
    # the reader's file order is by name, which a timestamp and a host name decide.
    out = {
        tag: sorted(((e.step, e.value) for e in acc.Scalars(tag)), key=lambda p: p[0]) for tag in acc.Tags()["scalars"]
    }
    return out


def by_step(points: list[tuple[int, float]]) -> dict[int, list[float]]:
    out: dict[int, list[float]] = {}
    for step, value in points:
        out.setdefault(step, []).append(value)
    return out


def active_alerts(run_dir) -> list[str]:
    """The alerts metricreg's verdict (the Health tab's and the CLI's rules) raises on a run."""
    verdict = read_run(run_dir).evaluate()
    return [f"{a.tag}={a.value} ({a.level})" for a in verdict.active_alerts]
