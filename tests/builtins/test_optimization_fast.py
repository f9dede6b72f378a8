"""The torch fast paths of the optimization parameter passes give the array-API route's values, bit for bit.

update_snapshot/update_ratio, dead_units and grad_flow call torch directly for plain (unsharded)
torch tensors, to keep the every-100-step parameter passes cheap on the training thread
(benchmarks/bench_builtin_overhead.py). Forcing the generic route (adapters.plain_torch -> False)
must give the same numbers: a change to one route that is not made to the other fails here.
Sharded tensors never take the fast path (tests/core/test_sharded.py covers them).
"""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from metricreg import adapters  # noqa: E402
from metricreg.builtins import optimization as O  # noqa: E402


def model_and_step():
    torch.manual_seed(0)
    model = torch.nn.ModuleDict(
        {
            "mlp": torch.nn.Sequential(
                torch.nn.Linear(64, 256),
                torch.nn.ReLU(),
                torch.nn.Linear(256, 256),
                torch.nn.ReLU(),
                torch.nn.Linear(256, 10),
            ),
            "extra": torch.nn.Linear(8, 3).double(),  # a second dtype: per-(device, dtype) parts in the norms
        }
    )
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)

    def step():
        x = torch.randn(32, 64)
        loss = model["mlp"](x).square().mean() + model["extra"](torch.randn(4, 8, dtype=torch.float64)).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()

    step()
    return model, step


def generic(monkeypatch):
    monkeypatch.setattr(adapters, "plain_torch", lambda xs: False)


def test_update_ratio_fast_route_equals_array_route(monkeypatch):
    model, step = model_and_step()
    assert adapters.numel(model["mlp"][2].weight) > adapters.SAMPLE_PER_TENSOR  # a sampled tensor is among them
    fast_shared: dict = {}
    slow_shared: dict = {}
    O.update_snapshot(model, 99, fast_shared)
    with monkeypatch.context() as m:
        generic(m)
        O.update_snapshot(model, 99, slow_shared)
    step()  # the optimizer updates the parameters in place: the snapshots must not move
    fast = O.update_ratio(model, 100, fast_shared)
    with monkeypatch.context() as m:
        generic(m)
        slow = O.update_ratio(model, 100, slow_shared)
    assert 1e-4 < float(fast) < 1.0  # a real update was measured
    assert fast.dtype == slow.dtype and torch.equal(fast, slow), (float(fast), float(slow))
    assert fast_shared == {} and slow_shared == {}  # the exact one-step update frees its snapshot


def test_dead_units_fast_route_equals_array_route(monkeypatch):
    model, _ = model_and_step()
    grads = O.derive_grads(model)
    grads["mlp.0.weight"][:40] = 0.0  # 40 dead units
    grads["mlp.2.weight"][3, 5] = math.nan  # a NaN row is alive
    grads["mlp.2.weight"][7] = 0.0
    fast = O.dead_units(grads, model)
    with monkeypatch.context() as m:
        generic(m)
        slow = O.dead_units(grads, model)
    weights = [g for name, g in grads.items() if g.ndim == 2]
    dead = sum(int((g == 0).all(1).sum()) for g in weights)  # all-zero rows; the NaN row is not one
    assert dead >= 41 and float(fast) == pytest.approx(dead / sum(g.shape[0] for g in weights))
    assert fast.dtype == slow.dtype and torch.equal(fast, slow)


def test_grad_flow_fast_route_equals_array_route(monkeypatch):
    model, _ = model_and_step()
    grads = O.derive_grads(model)
    fast = O.grad_flow(grads)
    with monkeypatch.context() as m:
        generic(m)
        slow = O.grad_flow(grads)
    assert set(fast) == set(slow) == {"mlp", "extra"}
    for label in slow:
        assert fast[label].dtype == slow[label].dtype and torch.equal(fast[label], slow[label]), label
    expected = torch.sqrt(sum(g.double().square().sum() for n, g in grads.items() if n.startswith("extra")))
    assert float(fast["extra"]) == pytest.approx(float(expected))


def test_init_distance_fast_route_equals_array_route(monkeypatch):
    """init_distance samples plain torch parameters without the array-API wrappers: the same entries, the same value."""
    from metricreg.builtins import init_distance as D

    model, step = model_and_step()
    fast_state: dict = {}
    slow_state: dict = {}
    D.init_distance(model, fast_state)
    with monkeypatch.context() as m:
        generic(m)
        D.init_distance(model, slow_state)
    for _ in range(3):
        step()
    fast = D.init_distance(model, fast_state)
    with monkeypatch.context() as m:
        generic(m)
        slow = D.init_distance(model, slow_state)
    assert 1e-4 < float(fast) < 1.0  # the parameters did move
    assert fast.dtype == slow.dtype and torch.equal(fast, slow), (float(fast), float(slow))
