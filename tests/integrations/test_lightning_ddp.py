"""Lightning DDP with 2 CPU processes (gloo): one writer, reduced values, a stop on every rank."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("lightning")

from .conftest import scalars

WORKER = Path(__file__).with_name("lightning_ddp_worker.py")


@pytest.mark.slow
def test_ddp_two_cpu_ranks(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.run(
        [sys.executable, str(WORKER), str(tmp_path)], env=env, capture_output=True, text=True, timeout=240
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    # Rank 0 asked to stop at step 12; both ranks left together at the next check (step 20).
    assert [r["global_step"] for r in ranks] == [21, 21]
    assert [r["world_size"] for r in ranks] == [2, 2]
    run = tmp_path / "tb" / "v0" / "metricreg"
    event_files = [p for p in os.listdir(run) if "tfevents" in p]
    assert len(event_files) == 1, event_files  # only rank 0 writes
    ours, theirs = scalars(run), dict(scalars(tmp_path / "tb" / "v0")["train_loss"])
    assert [s for s, _ in ours["train/loss"]] == [0, 10, 20]
    for step, value in ours["train/loss"]:
        assert value == pytest.approx(theirs[step], rel=1e-5)  # the mean over both ranks
