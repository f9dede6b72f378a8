"""Distance from initialisation ‖θ − θ₀‖ / ‖θ₀‖; numpy / torch / JAX.

Reference: plain numpy over the concatenated parameters (exact below the per-tensor sample cap;
tolerance fw.rtol). Above the cap the sampled estimate is checked at 5% (16,384 of 10⁶ entries).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

import metricreg as mr
from metricreg.builtins import init_distance as D
from tests.builtins.conftest import close, is_framework_array, value
from tests.core.eventfiles import scalars


def flat(tree: dict) -> np.ndarray:
    return np.concatenate([np.ravel(a) for a in tree.values()])


def test_matches_numpy_reference_and_first_due_step_is_zero(fw):
    rng = np.random.default_rng(0)
    theta0 = {"w": rng.standard_normal((16, 8)), "b": rng.standard_normal(8)}
    theta1 = {k: v + 0.05 * rng.standard_normal(v.shape) for k, v in theta0.items()}
    state: dict = {}
    first = D.init_distance(fw.tree(theta0), state=state)
    assert is_framework_array(first, fw) and value(first) == 0.0
    got = D.init_distance(fw.tree(theta1), state=state)
    ref = np.linalg.norm(flat(theta1) - flat(theta0)) / np.linalg.norm(flat(theta0))
    assert close(value(got), ref, fw.rtol)
    # θ₀ stays the first sample: a third point is measured from it, not from θ₁.
    theta2 = {k: v + 1.0 for k, v in theta1.items()}
    ref2 = np.linalg.norm(flat(theta2) - flat(theta0)) / np.linalg.norm(flat(theta0))
    assert close(value(D.init_distance(fw.tree(theta2), state=state)), ref2, fw.rtol)


def test_snapshot_is_a_copy_under_in_place_optimizer_updates():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    frozen = torch.nn.Linear(3, 3).requires_grad_(False)  # not trainable: left out
    net.add_module("frozen", frozen)
    start = {n: p.detach().clone() for n, p in net.named_parameters() if p.requires_grad}
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    state: dict = {}
    assert value(D.init_distance(net, state=state)) == 0.0
    for _ in range(5):
        opt.zero_grad()
        net[2](net[1](net[0](torch.randn(16, 4)))).square().mean().backward()
        opt.step()
    now = {n: p.detach() for n, p in net.named_parameters() if p.requires_grad}
    a, b = (torch.cat([d[n].ravel() for n in start]).double().numpy() for d in (now, start))
    ref = np.linalg.norm(a - b) / np.linalg.norm(b)
    assert ref > 1e-3
    assert close(value(D.init_distance(net, state=state)), ref, 1e-6)


def f32(tree: dict) -> dict:
    return {k: v.astype(np.float32) for k, v in tree.items()}


def test_large_tensors_are_sampled_in_proportion(fw):
    rng = np.random.default_rng(1)
    theta0 = {"big": rng.standard_normal((1000, 1000)), "small": rng.standard_normal(50)}
    theta1 = {"big": theta0["big"] + 0.1 * rng.standard_normal((1000, 1000)), "small": theta0["small"] + 1.0}
    state: dict = {}
    D.init_distance(fw.tree(f32(theta0)), state=state)
    ref = np.linalg.norm(flat(theta1) - flat(theta0)) / np.linalg.norm(flat(theta0))
    assert close(value(D.init_distance(fw.tree(f32(theta1)), state=state)), ref, 0.05)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_parameters(dtype):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    theta0 = {"w": torch.from_numpy(rng.standard_normal((64, 32))).to(getattr(torch, dtype))}
    theta1 = {"w": theta0["w"] + 0.25}
    state: dict = {}
    D.init_distance(theta0, state=state)
    a, b = (t["w"].double().numpy() for t in (theta1, theta0))
    # The difference is formed in the parameters' own dtype (8 bits of mantissa for bfloat16).
    assert close(value(D.init_distance(theta1, state=state)), np.linalg.norm(a - b) / np.linalg.norm(b), 1e-2)


def test_monitor_writes_init_distance_every_100_steps(tmp_path):
    theta = {"w": np.ones((4, 4))}
    with mr.Monitor(str(tmp_path)) as mon:
        for step in range(201):
            theta["w"] += 0.01  # in place: the snapshot must not follow
            mon.step(step, model=theta)
    written = scalars(tmp_path)["train/optimization/init_distance"]
    assert [s for s, _ in written] == [0, 100, 200]
    assert [v for _, v in written] == pytest.approx([0.0, 1.0 / 1.01, 2.0 / 1.01], rel=1e-5)


def _report(path, capsys) -> dict:
    from metricreg.cli import main

    assert main(["report", str(path), "--json"]) == 0
    (run,) = json.loads(capsys.readouterr().out)["runs"]
    return run


def test_a_weight_jump_is_critical_at_the_next_due_point_and_a_steady_run_is_quiet(tmp_path, capsys):
    """The lr-kill signature: the weights move, in one interval, far more than in the run before."""
    rng = np.random.default_rng(0)
    for name, jump_at in (("steady", None), ("jump", 650)):
        theta = {"w": rng.standard_normal((16, 16)), "b": rng.standard_normal(16)}
        with mr.Monitor(str(tmp_path / name)) as mon:
            for step in range(1001):
                scale = 1e-3 if jump_at is None or step < jump_at else 5e-2  # lr x50 from jump_at
                for a in theta.values():
                    a += scale * rng.standard_normal(a.shape)
                mon.step(step, model=theta)
    steady = _report(tmp_path / "steady", capsys)
    assert [a for a in steady["alerts"] if "init_distance" in a["tag"]] == []
    jumped = _report(tmp_path / "jump", capsys)
    [alert] = [a for a in jumped["alerts"] if a["tag"] == "train/optimization/init_distance"]
    assert (alert["level"], alert["category"], alert["first_step"], alert["active"]) == (
        "critical",
        "stability",
        700,
        True,
    )
    assert "previous point" in alert["message"] and "learning rate" in alert["remedy"]
