"""FSDP2 on gloo: parameter and gradient metrics are global values, equal to one process's."""

import time
from pathlib import Path

import pytest

from .eventfiles import scalars
from .gloo import free_port as free_port  # re-exported: other tests import it from here
from .gloo import run_ranks

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


@pytest.mark.parametrize("world", [2, 4])
def test_fsdp2_metrics_equal_the_single_process_reference(tmp_path, world):
    start = time.perf_counter()
    codes = run_ranks(WORKER, [str(tmp_path)], world, timeout=150)
    print(f"FSDP2 with {world} ranks: {time.perf_counter() - start:.1f} s")
    assert codes == [0] * world
    sharded, reference = scalars(tmp_path / "sharded"), scalars(tmp_path / "reference")
    for tag in COMPARED:
        assert len(reference[tag]) >= 3, tag
        assert [s for s, _ in sharded[tag]] == [s for s, _ in reference[tag]], tag
        for (_, got), (_, want) in zip(sharded[tag], reference[tag], strict=True):
            assert got == pytest.approx(want, rel=1e-5), tag
