"""Optimization family: lr, gradient norm, clip fraction, update ratio, gradient flow, histograms."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

from metricreg.builtins import optimization as O
from tests.builtins.conftest import close, is_framework_array, value, values


def grads_tree(seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {
        "encoder": {"w": rng.standard_normal((8, 4)), "b": rng.standard_normal(4)},
        "head": {"w": rng.standard_normal((4, 2))},
    }


def test_learning_rate_groups_and_optax_style():
    one = SimpleNamespace(param_groups=[{"lr": 0.1}])
    two = SimpleNamespace(param_groups=[{"lr": 0.1}, {"lr": 0.01, "name": "head bias"}])
    assert O.learning_rate(one) == 0.1
    assert O.learning_rate(two) == {"group0": 0.1, "head_bias": 0.01}
    assert O.learning_rate(SimpleNamespace(hyperparams={"learning_rate": 3e-4})) == 3e-4
    assert O.learning_rate(object()) is None


def test_grad_norm_from_pytrees_equal_across_frameworks(fw):
    tree = grads_tree()
    ref = math.sqrt(sum(float((a**2).sum()) for a in (tree["encoder"]["w"], tree["encoder"]["b"], tree["head"]["w"])))
    gn = O.derive_grad_norm(fw.tree(tree))
    assert is_framework_array(gn, fw)
    assert close(value(gn), ref, fw.rtol)


def test_derived_grads_from_a_torch_module_match_clip_grad_norm():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))
    net(torch.randn(16, 8)).pow(2).sum().backward()
    grads = O.derive_grads(net)
    assert set(grads) == {"0.weight", "0.bias", "2.weight", "2.bias"}
    before = torch.nn.utils.clip_grad_norm_(net.parameters(), 1e-3)
    # After clipping, .grad holds the clipped gradient; the norm sits at max_norm and counts as clipped.
    after = O.derive_grad_norm(O.derive_grads(net))
    assert close(float(after), 1e-3, 1e-5) and float(before) > 1e-3
    assert value(O.clip_fraction(after, 1e-3, {})) == 1.0
    assert O.derive_grads({"not": "a module"}) is None


def test_clip_fraction_window(fw):
    state: dict = {}
    norms = [0.5, 2.0, 0.9, 1.5] + [0.1] * 60
    results = [value(O.clip_fraction(fw.array(np.float64(g)), 1.0, state)) for g in norms]
    np.testing.assert_allclose(results[:4], [0.0, 0.5, 1 / 3, 0.5], rtol=1e-6)
    assert results[-1] == 0.0  # the window holds the last 50 samples only
    assert value(O.clip_fraction(2.0, 1.0, {})) == 1.0  # python numbers too
    nan_state: dict = {}
    assert math.isnan(value(O.clip_fraction(fw.array(np.float64(np.nan)), 1.0, nan_state)))
    assert value(O.clip_fraction(fw.array(np.float64(0.5)), 1.0, nan_state)) == 0.5  # the window recovers


def test_update_ratio_one_step_snapshot(fw):
    rng = np.random.default_rng(1)
    theta0 = {"a": rng.standard_normal((50, 20)), "b": rng.standard_normal(20)}
    delta = {"a": 1e-3 * rng.standard_normal((50, 20)), "b": 1e-3 * rng.standard_normal(20)}
    theta1 = {k: theta0[k] + delta[k] for k in theta0}
    shared: dict = {}
    assert O.update_snapshot(fw.tree(theta0), step=99, shared=shared) is None
    r = O.update_ratio(fw.tree(theta1), step=100, shared=shared)
    norm = lambda t: math.sqrt(sum(float((v**2).sum()) for v in t.values()))  # noqa: E731
    assert close(value(r), norm(delta) / norm(theta0), fw.rtol)
    assert O.SNAPSHOT_KEY not in shared  # freed after use


def test_update_ratio_fallback_divides_by_elapsed_steps():
    theta = {"w": np.ones(10)}
    shared: dict = {}
    assert O.update_ratio(theta, step=0, shared=shared) is None  # first call: only a snapshot
    moved = {"w": np.ones(10) + 0.01}
    r = value(O.update_ratio(moved, step=10, shared=shared))
    assert close(r, 0.01 / 10, 1e-9)
    assert shared[O.SNAPSHOT_KEY][0] == 10


def test_update_ratio_with_a_real_torch_optimizer_and_in_place_updates():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    net = torch.nn.Linear(32, 32)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    shared: dict = {}
    before = torch.cat([p.detach().flatten().clone() for p in net.parameters()])
    O.update_snapshot(net, step=99, shared=shared)
    net(torch.randn(8, 32)).pow(2).mean().backward()
    opt.step()
    after = torch.cat([p.detach().flatten() for p in net.parameters()])
    expected = float((after - before).norm() / before.norm())
    assert close(float(O.update_ratio(net, step=100, shared=shared)), expected, 1e-5)


def test_grad_flow_groups(fw):
    tree = grads_tree()
    got = values(O.grad_flow(fw.tree(tree)))
    assert set(got) == {"encoder", "head"}
    enc = math.sqrt(float((tree["encoder"]["w"] ** 2).sum() + (tree["encoder"]["b"] ** 2).sum()))
    assert close(got["encoder"], enc, fw.rtol)
    # A single top level (flax's {"params": ...}) is split one level deeper.
    nested = values(O.grad_flow(fw.tree({"params": tree})))
    assert set(nested) == {"params_encoder", "params_head"}


def test_histograms_are_proportional_samples(fw):
    tree = {"big": np.ones((400, 400)), "small": np.zeros(100)}
    sample = np.asarray(O.grad_histogram(fw.tree(tree)))
    assert sample.ndim == 1 and len(sample) <= O.HISTOGRAM_SAMPLES + 2
    assert 0 < (sample == 0).sum() <= 0.01 * len(sample)  # the small tensor keeps its share
    small = np.asarray(O.weight_histogram(fw.tree(grads_tree())))
    assert small.shape == (32 + 4 + 8,)


def test_dead_units_counts_weight_rows_without_gradient():
    import torch

    from metricreg.builtins.optimization import dead_units

    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    with torch.no_grad():
        net[0].bias[:6] = -100.0  # 6 of 8 hidden units never fire
    net(torch.randn(32, 4)).sum().backward()
    # Rows: 8 (first layer, 6 dead) + 3 (output layer, alive) -> 6 / 11.
    assert float(dead_units(net)) == pytest.approx(6 / 11)
    emb = torch.nn.Embedding(10, 4)
    emb(torch.tensor([1, 2])).sum().backward()
    assert dead_units(emb) is None  # embedding rows of absent tokens are zero by design
