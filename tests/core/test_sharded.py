"""FSDP2 on gloo: parameter and gradient metrics are global values, equal to one process's."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .eventfiles import scalars

torch = pytest.importorskip("torch")
pytest.importorskip("torch.distributed.fsdp")

WORKER = Path(__file__).with_name("sharded_worker.py")
COMPARED = (
    "train/optimization/grad_norm",
    "train/optimization/update_ratio",
    "train/ema/rel_distance",
    "train/ema/weight_norm_ratio",
    "train/ema/teacher_step",
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("world", [2, 4])
def test_fsdp2_metrics_equal_the_single_process_reference(tmp_path, world):
    port = free_port()
    start = time.perf_counter()
    procs = []
    for rank in range(world):
        env = dict(os.environ, MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world))
        env.update(METRICREG_DISABLE_PLUGIN_AUTOLOAD="1", OMP_NUM_THREADS="1")
        procs.append(subprocess.Popen([sys.executable, str(WORKER), str(tmp_path)], env=env))
    try:
        codes = [proc.wait(timeout=150) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    print(f"FSDP2 with {world} ranks: {time.perf_counter() - start:.1f} s")
    assert codes == [0] * world
    sharded, reference = scalars(tmp_path / "sharded"), scalars(tmp_path / "reference")
    for tag in COMPARED:
        assert len(reference[tag]) >= 3, tag
        assert [s for s, _ in sharded[tag]] == [s for s, _ in reference[tag]], tag
        for (_, got), (_, want) in zip(sharded[tag], reference[tag], strict=True):
            assert got == pytest.approx(want, rel=1e-5), tag
