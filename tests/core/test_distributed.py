"""Real gloo processes: one writer, reductions on metricreg's own group, faults that cannot leak.

Each worker (dist_worker.py) runs its own training all_reduce every step and reports
whether the results stayed exact; the harness bounds every case with a timeout.
"""

import json
import time
from pathlib import Path

import pytest

from .eventfiles import scalars
from .gloo import free_port as free_port  # re-exported: other tests import it from here
from .gloo import run_ranks

torch = pytest.importorskip("torch")

WORKER = Path(__file__).with_name("dist_worker.py")
HARNESS_TIMEOUT = 150  # seconds per case: metricreg's own group times out after 30, the default group after 60


def launch(tmp_path: Path, case: str, world: int) -> tuple[list[dict], dict]:
    """Run ``world`` ranks of one case; (per-rank reports, rank 0's scalars)."""
    run = tmp_path / "run"
    start = time.perf_counter()
    args = [str(run), case]
    codes = run_ranks(WORKER, lambda rank: [*args, str(tmp_path / f"rank{rank}.json")], world, HARNESS_TIMEOUT)
    print(f"{case} with {world} ranks: {time.perf_counter() - start:.1f} s")
    assert codes == [0] * world
    reports = [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in range(world)]
    if case == "independent":
        return reports, {}
    assert len(list(run.glob("events.out.tfevents.*"))) == 1  # only rank 0 writes
    return reports, scalars(run)


def series(pairs):
    """Scalars as (step, value) with the value compared at float32 precision (what an event holds)."""
    return [(step, pytest.approx(v, rel=1e-6)) for step, v in pairs]


def value(rank: int, step: int) -> float:
    return float(rank + 1) * (step + 1)


def test_two_ranks_one_writer_and_reductions(tmp_path):
    reports, data = launch(tmp_path, "reduce", 2)
    assert all(r["exact"] for r in reports)
    steps = [0, 5, 10]
    # value on rank r at step s is (r + 1) * (s + 1): ranks hold (s+1) and 2(s+1).
    assert data["train/dist/mean"] == series([(s, 1.5 * (s + 1)) for s in steps])
    assert data["train/dist/sum"] == series([(s, 3.0 * (s + 1)) for s in steps])
    assert data["train/dist/max"] == series([(s, 2.0 * (s + 1)) for s in steps])
    assert data["train/dist/min"] == series([(s, 1.0 * (s + 1)) for s in steps])
    assert data["train/dist/local"] == series([(s, 1.0 * (s + 1)) for s in steps])  # rank 0's own value


@pytest.mark.parametrize("world", [2, 4])
def test_faults_on_some_ranks_never_touch_the_training_collectives(tmp_path, world):
    reports, data = launch(tmp_path, "faults", world)
    assert all(r["exact"] for r in reports)  # the training's all_reduce stayed exact on every rank
    # request_stop on the last rank at step 12 is seen by every rank at the next exchange (step 15).
    assert [r["stopped_at"] for r in reports] == [15] * world
    assert reports[-1]["reason"] == "the last rank asks to stop"
    assert reports[0]["reason"] == f"stop requested on rank {world - 1}"
    steps = [0, 5, 10, 15]
    ranks = range(world)
    assert data["train/dist/mean"] == series([(s, sum(value(r, s) for r in ranks) / world) for s in steps])
    # Raising on rank 1 (and disabled there after 3 failures): the mean of the other ranks.
    others = [r for r in ranks if r != 1]
    assert data["train/dist/flaky"] == series([(s, sum(value(r, s) for r in others) / len(others)) for s in steps])
    # A vector where one number is due, on rank 1: the same.
    assert data["train/dist/shape"] == series([(s, sum(value(r, s) for r in others) / len(others)) for s in steps])
    # Members differ per rank: each declared member is reduced over the ranks that have it.
    assert data["train/dist/family/a"] == series([(s, float(world)) for s in steps])
    assert data["train/dist/family/b"] == series([(s, float(sum(r + 1 for r in ranks if r % 2 == 0))) for s in steps])
    assert data["train/dist/family/c"] == series([(s, float(sum(10 * (r + 1) for r in ranks if r % 2))) for s in steps])
    assert data["train/dist/family/z"] == series([(s, 100.0) for s in steps])  # undeclared: rank 0's own
    # loss= on rank 0 only: the built-in loss metric is rank 0's loss.
    assert data["train/loss"] == series([(0, 1.0), (10, 11.0)])


@pytest.mark.parametrize("world", [2, 4])
def test_a_rank_closing_early_ends_sharing_without_a_hang(tmp_path, world):
    reports, data = launch(tmp_path, "close", world)
    assert all(r["exact"] for r in reports)
    assert all(r["stopped_at"] is None for r in reports)
    # The survivors learnt it from the closing rank (not from a collective timing out).
    assert all("another rank closed its Monitor" in " ".join(r["errors"]) for r in reports[:-1])
    ranks = range(world)
    before = [(s, sum(value(r, s) for r in ranks) / world) for s in (0, 5, 10)]
    after = [(s, value(0, s)) for s in (15, 20, 25, 30)]  # the last rank left: rank 0's own values
    assert data["train/dist/mean"] == series(before + after)


def test_rank_and_world_size_overrides_win_over_torch_distributed(tmp_path):
    # torch.distributed has 2 ranks, the launcher says each process is rank 0 of 1.
    reports, _ = launch(tmp_path, "independent", 2)
    assert all(r["exact"] for r in reports)
    for rank in range(2):
        data = scalars(tmp_path / "run" / f"rank{rank}")
        assert data["train/dist/mean"] == series([(s, value(rank, s)) for s in (0, 5, 10)])  # not averaged


def test_ranks_with_different_reduced_metrics_share_nothing_and_say_so(tmp_path):
    reports, data = launch(tmp_path, "mismatch", 2)
    assert all(r["exact"] for r in reports)
    assert all("ranks registered different reduced metrics" in " ".join(r["errors"]) for r in reports)
    assert data["train/dist/mean"] == series([(s, value(0, s)) for s in (0, 5, 10)])  # rank 0's own values


def test_a_rank_that_misses_an_exchange_costs_one_timeout_then_nothing(tmp_path):
    reports, data = launch(tmp_path, "skip", 2)
    assert all(r["exact"] for r in reports)
    assert "Timed out" in " ".join(reports[0]["errors"])  # rank 0 waited dist_timeout (3 s) at step 5
    assert "another rank closed its Monitor" in " ".join(reports[1]["errors"])  # then told rank 1 via the store
    expected = [(0, 1.5)] + [(s, value(0, s)) for s in (5, 10, 15)]  # shared, then rank 0's own values
    assert data["train/dist/mean"] == series(expected)
