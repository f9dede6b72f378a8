"""metricreg.integrations.keras against the real Keras 3, on the torch and JAX backends.

Keras chooses its backend at import, so each run is its own process (keras_worker.py).
Keras reports a running mean of the loss; the Monitor's per-batch losses must rebuild it
exactly, batch by batch, and land at Keras's own step (the optimizer's iteration).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

# Not imported here: without KERAS_BACKEND Keras would look for TensorFlow in this process.
if importlib.util.find_spec("keras") is None:
    pytest.skip("keras is not installed", allow_module_level=True)

from .conftest import active_alerts, scalars

WORKER = Path(__file__).with_name("keras_worker.py")
TRAIN, BATCH = 1500, 32


def _run(tmp_path, backend: str) -> tuple[dict, dict]:
    if backend == "jax":
        pytest.importorskip("jax")
    env = {
        **os.environ,
        "KERAS_BACKEND": backend,
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
    }
    proc = subprocess.run(
        [sys.executable, str(WORKER), str(tmp_path)], env=env, capture_output=True, text=True, timeout=240
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads((tmp_path / "keras.json").read_text()), json.loads((tmp_path / "stop.json").read_text())


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_per_batch_loss_lr_validation_and_stop_match_keras(tmp_path, backend):
    keras_log, stopped = _run(tmp_path, backend)
    ours = scalars(tmp_path / "mr")
    per_epoch = -(-TRAIN // BATCH)  # 47 batches, the last one of 28 samples
    sizes = [min(BATCH, TRAIN - i * BATCH) for i in range(per_epoch)]
    losses = dict(ours["train/loss"])
    assert sorted(losses) == list(range(3 * per_epoch))  # one point per batch, from step 0
    for k, entry in enumerate(keras_log["batches"]):
        epoch, batch = divmod(k, per_epoch)
        assert entry["batch"] == batch
        first = epoch * per_epoch
        weighted = sum(losses[first + i] * sizes[i] for i in range(batch + 1))
        running = weighted / sum(sizes[: batch + 1])
        assert running == pytest.approx(entry["loss"], rel=2e-4, abs=1e-6), (k, backend)
    for step, lr in ours["train/optimization/lr"]:
        assert lr == pytest.approx(0.05 * 0.99**step, rel=1e-5)
    val = ours["val/loss"]
    assert [s for s, _ in val] == [per_epoch - 1, 2 * per_epoch - 1, 3 * per_epoch - 1]
    for (_, value), epoch_logs in zip(val, keras_log["epochs"], strict=True):
        assert value == pytest.approx(epoch_logs["val_loss"], rel=1e-5)
    assert [s for s, _ in ours["train/optimization/update_ratio"]] == [100]
    if backend == "torch":  # the JAX train step does not expose its gradients
        assert ours["train/optimization/grad_norm"]
    assert active_alerts(tmp_path / "mr") == []
    # The second fit's Monitor asked to stop at step 12: Keras stopped right after that batch.
    assert stopped["iterations"] == 13
    assert stopped["epochs_run"] == 1
