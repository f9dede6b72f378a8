"""How one exchange's gathered payload becomes values (no processes needed)."""

import math

import pytest

from metricreg import distributed
from metricreg.distributed import SHARD_NORM, SHARD_RATIO, VALID

torch = pytest.importorskip("torch")


def reduce(values, masks, ops, aux=None):
    values = torch.tensor(values, dtype=torch.float64)
    aux = torch.zeros_like(values) if aux is None else torch.tensor(aux, dtype=torch.float64)
    ops = torch.tensor([distributed.OPS.index(op) for op in ops])
    return [float(v) for v in distributed.reduce_gathered(values, aux, torch.tensor(masks), ops)]


def test_only_ranks_with_a_value_count():
    nan = math.nan
    # 3 ranks, 4 slots; rank 1 has no value in slot 0 (it raised), rank 2 none in slot 2.
    values = [[1.0, 2.0, 3.0, 4.0], [nan, 4.0, 5.0, 6.0], [7.0, 6.0, nan, 8.0]]
    masks = [[VALID] * 4, [0, VALID, VALID, VALID], [VALID, VALID, 0, VALID]]
    assert reduce(values, masks, ["mean", "sum", "max", "min"]) == [4.0, 12.0, 5.0, 4.0]


def test_a_genuine_nan_stays_nan():
    out = reduce([[math.nan], [1.0]], [[VALID], [VALID]], ["max"])
    assert math.isnan(out[0])


def test_shard_norms_and_ratios_combine_over_the_whole_tensor():
    # Rank shards of a vector (3, 4) and (0, 12): norms 5 and 12, whole norm 13.
    norms = reduce([[5.0], [12.0]], [[SHARD_NORM], [SHARD_NORM]], ["mean"])
    assert norms == [pytest.approx(13.0)]
    # A ratio of norms: numerators 3 and 4 (whole 5), denominators 6 and 8 (whole 10); each rank's
    # own ratio is 0.5 too, but 1 and 8 over 6 and 8 (whole 8.06 / 10) shows it is not averaged.
    ratio = reduce([[1.0], [8.0]], [[SHARD_RATIO], [SHARD_RATIO]], ["mean"], aux=[[6.0], [8.0]])
    assert ratio == [pytest.approx(math.sqrt(65) / 10)]
    ratio = reduce([[3.0], [4.0]], [[SHARD_RATIO], [SHARD_RATIO]], ["mean"], aux=[[6.0], [8.0]])
    assert ratio == [pytest.approx(0.5)]


def test_layout_follows_declarations_only():
    import metricreg as mr

    family = mr.Metric("f", compute=lambda loss: {}, every=5, reduce="sum", members=("a", "b"))
    health = mr.Metric("h", compute=lambda loss: {}, every=5, reduce="max", health={"x": mr.Health()})
    single = mr.Metric("s", compute=lambda loss: 0.0, every=5, reduce="mean")
    fan = mr.Metric("g", compute=lambda embeddings: 0.0, every=5, reduce="mean", fan_out="embeddings")
    pred = mr.Metric("p", compute=lambda loss: 0.0, every=lambda step: True, reduce="mean")
    local = mr.Metric("l", compute=lambda loss: 0.0, every=5)
    layout, excluded = distributed.build_layout([family, health, single, fan, pred, local])
    assert [(s.metric, s.member, s.op) for s in layout["step"]] == [
        ("f", "a", "sum"),
        ("f", "b", "sum"),
        ("h", "x", "max"),
        ("s", None, "mean"),
    ]
    assert set(excluded) == {"g", "p"}
    assert "fan_out" in excluded["g"] and "predicate" in excluded["p"]


def test_members_must_be_names():
    import metricreg as mr

    with pytest.raises(mr.SpecError, match="'bad'.*members="):
        mr.Metric("bad", compute=lambda loss: 0.0, members="ab")
