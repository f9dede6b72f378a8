"""paired_embeddings under real torch.distributed (gloo): two modalities are averaged across ranks as
before; three write each pair with rank 0's own values, with no hang and the training's collectives exact.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.builtins.paired_dist_worker import embeddings
from tests.builtins.test_paired_pairs import reference_members
from tests.core.eventfiles import scalars
from tests.core.gloo import run_ranks

pytest.importorskip("torch")

WORKER = Path(__file__).with_name("paired_dist_worker.py")
WORLD = 2


def launch(tmp_path: Path, modalities: int) -> dict:
    run = tmp_path / "run"
    root = str(Path(__file__).parents[2])
    codes = run_ranks(WORKER, [str(run), str(modalities)], WORLD, timeout=120, PYTHONPATH=root)
    assert codes == [0] * WORLD  # the worker asserts its own all_reduce stayed exact
    assert len(list(run.glob("events.out.tfevents.*"))) == 1  # only rank 0 writes
    return scalars(run)


@pytest.mark.slow
def test_two_modalities_are_averaged_across_ranks(tmp_path):
    data = launch(tmp_path, 2)
    refs = [reference_members(*embeddings(rank, 2).values()) for rank in range(WORLD)]
    for member in ("diag", "offdiag", "margin", "top1"):
        steps = data[f"train/prediction/paired/{member}"]
        expected = np.mean([r[member] for r in refs])
        assert [s for s, _ in steps] == [0, 1, 2]
        assert all(v == pytest.approx(expected, rel=1e-5, abs=1e-6) for _, v in steps), member


@pytest.mark.slow
def test_three_modalities_write_rank_zeros_pairs(tmp_path):
    data = launch(tmp_path, 3)
    mine = embeddings(0, 3)
    assert not any(tag == "train/prediction/paired/diag" for tag in data)  # no NaN for the declared slots
    assert not any("*" in tag for tag in data)  # the "*/<member>" health entries are no payload slots
    for a, b in (("m0", "m1"), ("m0", "m2"), ("m1", "m2")):
        ref = reference_members(mine[a], mine[b])
        for member in ("diag", "offdiag", "margin", "top1"):
            steps = data[f"train/prediction/paired/{a}_vs_{b}/{member}"]
            assert [s for s, _ in steps] == [0, 1, 2]
            assert all(v == pytest.approx(ref[member], rel=1e-5, abs=1e-6) for _, v in steps), (a, b, member)
