"""gradient_noise.accumulate under DDP on gloo: G_big from DDP's own all-reduce, no extra collective."""

import json
from pathlib import Path

import numpy as np
import pytest

from tests.core.gloo import run_ranks

torch = pytest.importorskip("torch")

WORKER = Path(__file__).with_name("gns_ddp_worker.py")


def test_ddp_accumulation_uses_local_increments_and_the_all_reduced_mean(tmp_path):
    world, k, b = 2, 3, 4
    codes = run_ranks(WORKER, [str(tmp_path)], world, timeout=120)
    assert codes == [0] * world
    for rank in range(world):
        run = json.loads((tmp_path / f"rank{rank}.json").read_text())
        grads = {key: np.asarray(v) for key, v in run["per_batch"].items()}
        local = [grads[f"{rank}/{i}"] for i in range(k - 1)]  # the last increment is all-reduced: not local
        small = float(np.mean([g @ g for g in local]))
        mean = np.mean(list(grads.values()), axis=0)  # all world·k micro-batches: B_big = k·b·world
        big = float(mean @ mean)
        ratio = k * world
        g2 = (ratio * big - small) / (ratio - 1)
        trace = (small - big) / (1 / b - 1 / (ratio * b))
        got = run["got"]
        assert got["g_small_sq"] == pytest.approx(small, rel=1e-4)
        assert got["g_big_sq"] == pytest.approx(big, rel=1e-4)
        assert got["b_simple"] == pytest.approx(trace / g2, rel=1e-3)
        assert got["snr"] == pytest.approx(g2 * ratio * b / trace, rel=1e-3)
