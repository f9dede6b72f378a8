"""Loss components, their shares of the sum, and the warm-up flag."""

from __future__ import annotations

import math

import numpy as np
import pytest

import metricreg as mr
from metricreg.builtins import loss_parts as L
from tests.builtins.conftest import close, values
from tests.core.eventfiles import scalars


def reference(parts: dict[str, np.ndarray]) -> dict[str, float]:
    means = {k: float(np.mean(np.asarray(v, dtype=np.float64))) for k, v in parts.items()}
    total = sum(means.values())
    out = dict(means)
    out.update({f"{k}_share": (v / total if total != 0 else math.nan) for k, v in means.items()})
    return out


CASES = {
    "balanced": {"recon": np.float64(0.5), "pred": np.float64(0.25), "kl": np.float64(0.25)},
    "one_dominant": {"head_a": np.float64(10.0), "head_b": np.float64(1e-4)},
    "per_sample": {"level1/pred": np.linspace(0.0, 1.0, 16), "level2/pred": np.full(16, 3.0)},
    "signed": {"ce": np.float64(2.0), "entropy_bonus": np.float64(-0.5)},
}


@pytest.mark.parametrize("case", list(CASES))
def test_components_and_shares_match_reference(fw, case):
    parts = CASES[case]
    got = values(L.losses({k: fw.array(v) for k, v in parts.items()}))
    ref = reference({k: np.asarray(fw.array(v), dtype=np.float64) for k, v in parts.items()})
    assert set(got) == set(ref)
    for key, expected in ref.items():
        assert close(got[key], expected, max(fw.rtol, 1e-12)), (case, key, got[key], expected)


def test_python_numbers_and_a_zero_sum():
    got = values(L.losses({"a": 1.0, "b": 3}))
    assert got == {"a": 1.0, "b": 3.0, "a_share": 0.25, "b_share": 0.75}
    zero = values(L.losses({"a": 1.0, "b": -1.0}))
    assert math.isnan(zero["a_share"]) and math.isnan(zero["b_share"])


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_torch_components(dtype):
    torch = pytest.importorskip("torch")
    a = torch.tensor(0.75, dtype=getattr(torch, dtype))
    b = torch.linspace(0, 1, 8).to(getattr(torch, dtype))
    got = values(L.losses({"a": a, "b": b}))
    ref = reference({"a": a.double().numpy(), "b": b.double().numpy()})
    for key, expected in ref.items():
        assert close(got[key], expected, 1e-12), key


def test_torch_components_keep_no_graph():
    torch = pytest.importorskip("torch")
    w = torch.ones((), requires_grad=True)
    out = L.losses({"a": w * 2.0, "b": w * 6.0})
    assert values(out)["a_share"] == 0.25


def test_bad_input_names_the_culprit():
    with pytest.raises(TypeError, match="input 'losses' must be a dict"):
        L.losses([1.0, 2.0])
    with pytest.raises(ValueError, match="input 'losses'.*'bad name'"):
        L.losses({"bad name": 1.0})
    with pytest.raises(TypeError, match="input 'losses': component 'a' must be a number or an array, got str"):
        L.losses({"a": "1.0"})
    with pytest.raises(TypeError, match="input 'warmup'"):
        L.warmup("yes")
    assert L.losses({}) is None


def test_warmup_is_written_as_is(fw):
    assert L.warmup(True) == 1.0 and L.warmup(False) == 0.0 and L.warmup(1) == 1.0
    assert values({"w": L.warmup(fw.array(np.asarray(True)))})["w"] == 1.0


def test_monitor_writes_components_shares_and_warmup(tmp_path):
    with mr.Monitor(str(tmp_path)) as mon:
        for step in range(0, 30, 10):
            mon.step(step, loss=1.0, losses={"recon": 0.75, "pred": 0.25}, warmup=step < 20)
    written = scalars(tmp_path)
    assert [v for _, v in written["train/losses/recon_share"]] == [0.75, 0.75, 0.75]
    assert [v for _, v in written["train/losses/pred"]] == [0.25, 0.25, 0.25]
    assert [v for _, v in written["train/warmup"]] == [1.0, 1.0, 0.0]
    assert [v for _, v in written["train/loss"]] == [1.0, 1.0, 1.0]  # the total loss is untouched
