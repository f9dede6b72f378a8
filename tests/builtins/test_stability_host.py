"""CPU losses take a float route through the stability rules; it must give what the array route gives.

A torch CPU tensor or numpy scalar is read as a float (metricreg.arrays.host_scalar) and the
spike and plateau rules run in scalar arithmetic; device arrays (here JAX, which host_scalar
leaves alone) run the array version. Same series in, same flags, ratios, rates and step counts
out, NaN and Inf included: a change to one version that is not made to the other fails here.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from metricreg import arrays as A
from metricreg.builtins import stability as S
from metricreg.inputs import Inputs
from tests.builtins.conftest import value


def series() -> list[float]:
    rng = np.random.default_rng(0)
    losses = list(2.0 * np.exp(-np.arange(150) / 60) + 0.05 * rng.random(150))
    for i in range(5, 150, 7):
        losses[i] *= 1.0 + 3.0 * rng.random()  # bumps of 1-4x: on both sides of the 2x rule
    for i, v in ((30, 9.0), (31, 0.2), (64, 25.0), (80, math.nan), (81, math.inf), (95, 0.0), (96, 0.0)):
        losses[i] = v  # spikes, a dip, a NaN, an Inf, zeros (0/0 ratios)
    return [float(np.float32(v)) for v in losses]  # exactly representable in float32 (JAX without x64)


def host_convert(host: str):
    """A CPU scalar of ``host``'s kind (what the float route reads) from a Python float."""
    if host == "torch":
        torch = pytest.importorskip("torch")
        return lambda v: torch.tensor(v, dtype=torch.float32)
    if host == "numpy":
        return lambda v: np.asarray(v, dtype=np.float32)
    return float


def run(convert) -> list[dict[str, float]]:
    state: dict = {}
    return [{k: value(v) for k, v in S.spikes(convert(v), state).items()} for v in series()]


@pytest.mark.parametrize("host", ["python", "numpy", "torch"])
def test_float_route_equals_array_route(host):
    jnp = pytest.importorskip("jax.numpy")
    convert = host_convert(host)
    assert isinstance(S.scalar_loss(convert(1.0)), np.generic)  # the float route is the one taken
    assert not isinstance(S.scalar_loss(jnp.asarray(1.0)), np.generic)
    got, ref = run(convert), run(jnp.asarray)
    assert sum(r["detected"] for r in ref) >= 3  # the series does exercise the rule
    for step, (g, r) in enumerate(zip(got, ref, strict=True)):
        assert g.keys() == r.keys(), step
        for key in r:
            assert (math.isnan(g[key]) and math.isnan(r[key])) or g[key] == pytest.approx(r[key], rel=1e-6), (
                step,
                key,
                g[key],
                r[key],
            )


@pytest.mark.parametrize("host", ["numpy", "torch"])
def test_plateau_float_route_equals_array_route(host):
    jnp = pytest.importorskip("jax.numpy")
    convert = host_convert(host)
    flat = [1.0] * 30  # a plateau after the descent: `since` must grow, then reset on the dip
    losses = [*series()[:60], *flat, *[0.01] * 5, *flat[:5]]
    got_state: dict = {}
    ref_state: dict = {}
    got = [value(S.plateau(convert(v), 50 * i, got_state)) for i, v in enumerate(losses)]
    ref = [value(S.plateau(jnp.asarray(v), 50 * i, ref_state)) for i, v in enumerate(losses)]
    assert max(ref) >= 1000 and 0.0 in ref[ref.index(max(ref)) :]  # grew, then reset by the dip
    for step, (g, r) in enumerate(zip(got, ref, strict=True)):
        assert (math.isnan(g) and math.isnan(r)) or g == pytest.approx(r, rel=1e-6), (step, g, r)


@pytest.mark.parametrize("x", [0.5, math.nan, math.inf, -math.inf])
def test_nonfinite_indicator_on_host_floats(x):
    torch = pytest.importorskip("torch")
    expected = 0.0 if math.isfinite(x) else 1.0
    assert value(S.nonfinite_loss(torch.tensor(x))) == expected
    assert value(S.nonfinite_grads(np.float32(x))) == expected
    assert A.host_scalar(torch.tensor([x])) == pytest.approx(x, nan_ok=True)


@pytest.mark.parametrize("host", ["numpy", "torch"])
def test_progress_lost_float_route_equals_array_route(host):
    jnp = pytest.importorskip("jax.numpy")
    convert = host_convert(host)
    rise = [float(np.float32(v)) for v in np.linspace(0.1, 2.5, 40)]  # a learned run that diverges
    losses = [math.nan, *series(), *rise]
    got_state: dict = {}
    ref_state: dict = {}
    got = [value(S.progress_lost(convert(v), got_state)) for v in losses]
    ref = [value(S.progress_lost(jnp.asarray(v), ref_state)) for v in losses]
    assert max(ref) > 0.5  # the series does exercise the rule
    for step, (g, r) in enumerate(zip(got, ref, strict=True)):
        assert (math.isnan(g) and math.isnan(r)) or g == pytest.approx(r, rel=1e-5, abs=1e-6), (step, g, r)


@pytest.mark.parametrize("host", ["numpy", "torch"])
def test_loss_trend_float_route_equals_array_route(host):
    jax = pytest.importorskip("jax")
    jnp = pytest.importorskip("jax.numpy")
    convert = host_convert(host)
    rise = [float(np.float32(v)) for v in np.linspace(0.1, 2.5, 40)]
    losses = [*series(), *rise]
    got_state: dict = {}
    ref_state: dict = {}
    got = [S.loss_trend(convert(v), 50 * i, got_state) for i, v in enumerate(losses)]
    if not hasattr(jax, "enable_x64"):
        pytest.skip("needs jax.enable_x64 (a float64 array route: slopes near 0 cancel in float32)")
    with jax.enable_x64(True):
        ref = [S.loss_trend(jnp.asarray(v, dtype=jnp.float64), 50 * i, ref_state) for i, v in enumerate(losses)]
        ref = [None if r is None else value(r) for r in ref]
    assert got[:2] == [None, None] and ref[:2] == [None, None]
    assert isinstance(got[2], float)  # the float route is the one taken (a JAX array is not a float)
    assert max(ref[-10:]) > 0.5  # the rising tail does exercise the rule
    for step, (g, r) in enumerate(zip(got[2:], ref[2:], strict=True)):
        g = value(g)
        assert (math.isnan(g) and math.isnan(r)) or g == pytest.approx(r, rel=1e-9, abs=1e-12), (step, g, r)


def test_scalar_metrics_read_cpu_values_as_floats_at_their_step():
    """loss, accuracy and grad_norm of a CPU tensor are the tensor's value, read at the step (no copy kept)."""
    torch = pytest.importorskip("torch")
    from metricreg.builtins import loss as L
    from metricreg.builtins import optimization as O

    t = torch.tensor(0.3)
    for fn in (L.loss, L.accuracy, O.grad_norm_metric):
        got = fn(t)
        assert type(got) is float and got == t.item()  # the float32 value, exactly
    t.add_(1.0)  # an accumulator updated in place after the step cannot move what was read
    assert got == pytest.approx(0.3) and L.loss(torch.tensor([0.5, 1.5])) == pytest.approx(1.0)
    marked = torch.tensor(2.0)
    marked._metricreg_shard_sum = True  # a per-rank shard sum keeps its tensor (and its mark) for the exchange
    assert O.grad_norm_metric(marked) is marked


def test_div_is_numpy_float64_division():
    """The host rules divide Python floats with _div: numpy's float64 result, a zero divisor included."""
    cases = [0.0, -0.0, 1.5, -2.0, math.inf, -math.inf, math.nan, 1e-310]
    with np.errstate(all="ignore"):
        for a in cases:
            for b in cases:
                want = float(np.float64(a) / np.float64(b))
                got = S._div(a, b)
                assert (math.isnan(got) and math.isnan(want)) or (
                    got == want and math.copysign(1, got) == math.copysign(1, want)
                ), (a, b, got, want)


def test_host_rules_never_warn_and_never_enter_errstate(monkeypatch):
    """The float route runs outside np.errstate (entering it costs more than the rule, per due step), so it
    must not warn on NaN, Inf or zero losses: warnings are errors here, and the array versions (the only
    ones inside np.errstate) are tripwires."""
    torch = pytest.importorskip("torch")
    import warnings

    def tripwire(*args, **kwargs):
        raise AssertionError("an array version (inside np.errstate) ran for a CPU loss")

    for name in ("_spikes_array", "_plateau_array", "_progress_lost_array", "_loss_trend_array", "_eval_plateau_array"):
        monkeypatch.setattr(S, name, tripwire)
    monkeypatch.setattr(S, "_ns", tripwire)  # no array namespace either (its first use imports ~35 ms of modules)
    states: list[dict] = [{}, {}, {}, {}, {}, {}]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for i, v in enumerate([*series(), 0.0, 0.0, -math.inf, math.nan]):
            loss = torch.tensor(v)
            S.spikes(loss, states[0])
            S.progress_lost(loss, states[1])
            S.plateau(loss, 50 * i, states[2])
            S.loss_trend(loss, 50 * i, states[3])
            S.nonfinite_loss(loss)
            S.nonfinite_grads(loss)
            S.eval_plateau(loss, states[4])
            S.eval_drop(Inputs({"accuracy": loss, "loss": loss}, {}, {}), states[5])


def test_a_due_step_reads_each_cpu_scalar_once_and_each_step_anew():
    """Within a due step one read of a CPU scalar serves every metric (metricreg.host.step_scalars); the
    memo ends with the step, so an accumulator updated in place is written with its value at each step."""
    torch = pytest.importorskip("torch")
    from metricreg import host

    t = torch.tensor(0.5)
    previous = host.open_step_scalars()
    try:
        assert A.host_scalar(t) == 0.5
        t.add_(1.0)  # nothing does this inside a due step; it shows that the first read is the one kept
        assert A.host_scalar(t) == 0.5
    finally:
        host.close_step_scalars(previous)
    assert host.step_scalars is previous and A.host_scalar(t) == 1.5


def test_an_accumulator_updated_in_place_is_written_at_each_step(tmp_path):
    torch = pytest.importorskip("torch")
    import metricreg as mr
    from tests.core.eventfiles import scalars

    running = torch.tensor(0.0)
    grad_norm = torch.tensor(0.0)
    with mr.Monitor(tmp_path) as mon:
        for step in range(31):
            running.fill_(float(step))  # the same tensor objects every step, updated in place
            grad_norm.fill_(2.0 * step)
            mon.step(step, loss=running, grad_norm=grad_norm, max_norm=1e9)
    written = scalars(tmp_path)
    assert written["train/loss"] == [(0, 0.0), (10, 10.0), (20, 20.0), (30, 30.0)]
    assert written["train/optimization/grad_norm"] == [(0, 0.0), (10, 20.0), (20, 40.0), (30, 60.0)]
    assert [v for _, v in written["train/stability/nonfinite_loss"]] == [0.0] * 4
