"""Per-head gradient norms, parameter mean/std and the grad-norm ratio; numpy / torch / JAX.

Reference: plain numpy over the concatenated entries of each head (tolerance: fw.rtol, float64
for numpy/torch, float32 for JAX without x64).
"""

from __future__ import annotations

import numpy as np
import pytest

import metricreg as mr
from metricreg.builtins import heads as H
from metricreg.spec import PartialResult
from tests.builtins.conftest import close, is_framework_array, values
from tests.core.eventfiles import scalars


def two_heads(seed: int = 0) -> tuple[dict, dict]:
    rng = np.random.default_rng(seed)
    params = {
        "trunk": {"w": rng.standard_normal((8, 8))},
        "rgb_head": {"w": rng.standard_normal((8, 3)) + 0.5, "b": rng.standard_normal(3)},
        "rgb_headless": {"w": rng.standard_normal((2, 2))},  # shares a string prefix, not a module prefix
        "clip_head": {"w": 0.01 * rng.standard_normal((8, 16))},
    }
    grads = {
        k: {n: 1e-3 * (i + 1) * rng.standard_normal(a.shape) for n, a in v.items()}
        for i, (k, v) in enumerate(params.items())
    }
    return params, grads


def reference(tree: dict) -> np.ndarray:
    return np.concatenate([np.ravel(a) for a in tree.values()])


def test_head_statistics_match_numpy_reference(fw):
    params, grads = two_heads()
    got = H.head_stats({"rgb": "rgb_head", "clip": "clip_head."}, grads=fw.tree(grads), model=fw.tree(params))
    assert all(is_framework_array(v, fw) for v in got.values())
    got = values(got)
    norms = {}
    for label, key in (("rgb", "rgb_head"), ("clip", "clip_head")):
        g, p = reference(grads[key]), reference(params[key])
        norms[label] = np.linalg.norm(g)
        assert close(got[f"{label}/grad_norm"], norms[label], fw.rtol), label
        assert close(got[f"{label}/param_mean"], p.mean(), fw.rtol, atol=1e-6), label
        assert close(got[f"{label}/param_std"], p.std(ddof=1), fw.rtol), label
    assert close(got["grad_ratio"], max(norms.values()) / min(norms.values()), fw.rtol)
    assert set(got) == {f"{h}/{m}" for h in ("rgb", "clip") for m in ("grad_norm", "param_mean", "param_std")} | {
        "grad_ratio"
    }


def test_a_single_head_has_no_ratio_and_an_unknown_prefix_names_the_head():
    params, grads = two_heads()
    got = H.head_stats({"rgb": "rgb_head"}, grads=grads, model=params)
    assert "grad_ratio" not in got and "rgb/grad_norm" in got
    with pytest.raises(
        PartialResult, match=r"heads\['audio'\]: prefix 'audio_head' matches no parameter.*clip_head"
    ) as info:
        H.head_stats({"rgb": "rgb_head", "audio": "audio_head"}, grads=grads, model=params)
    assert set(info.value.values) == {"rgb/grad_norm", "rgb/param_mean", "rgb/param_std"}  # the good head stays
    with pytest.raises(ValueError, match=r"heads\['audio'\]: prefix 'audio_head' matches no parameter"):
        H.head_stats({"audio": "audio_head"}, grads=grads, model=params)  # no good head: a plain error
    with pytest.raises(ValueError, match=r"heads\['rgb'\]: expected a parameter-name prefix"):
        H.head_stats({"rgb": 3}, grads=grads, model=params)


def test_torch_submodules_and_prefixes_agree_with_a_real_backward():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.trunk = torch.nn.Linear(6, 8)
            self.rgb_head = torch.nn.Linear(8, 3)
            self.clip_head = torch.nn.Linear(8, 4)

        def forward(self, x):
            h = torch.relu(self.trunk(x))
            return self.rgb_head(h), self.clip_head(h)

    net = Net()
    rgb, clip = net(torch.randn(32, 6))
    (rgb.square().mean() + 10.0 * clip.square().mean()).backward()
    grads = {n: p.grad for n, p in net.named_parameters()}
    by_module = values(H.head_stats({"rgb": net.rgb_head, "clip": net.clip_head}, grads=grads, model=net))
    by_prefix = values(H.head_stats({"rgb": "rgb_head", "clip": "clip_head"}, grads=grads, model=net))
    assert by_module == pytest.approx(by_prefix, rel=1e-12)
    ref = {
        h: np.linalg.norm(np.concatenate([p.grad.numpy().ravel() for p in m.parameters()]))
        for h, m in (("rgb", net.rgb_head), ("clip", net.clip_head))
    }
    assert close(by_module["rgb/grad_norm"], ref["rgb"], 1e-6)
    assert close(by_module["grad_ratio"], max(ref.values()) / min(ref.values()), 1e-6)
    # A submodule head reads the loop's `grads` (e.g. pre-clip gradients), not the module's .grad.
    halved = {n: 0.5 * g for n, g in grads.items()}
    scaled = values(H.head_stats({"rgb": net.rgb_head, "clip": net.clip_head}, grads=halved, model=net))
    assert close(scaled["rgb/grad_norm"], 0.5 * ref["rgb"], 1e-6)


def test_monitor_writes_head_tags_every_100_steps(tmp_path):
    params, grads = two_heads()
    with mr.Monitor(str(tmp_path)) as mon:
        for step in range(201):
            mon.step(step, model=params, grads=grads, heads={"rgb": "rgb_head", "clip": "clip_head"})
    written = scalars(tmp_path)
    assert [s for s, _ in written["train/optimization/heads/grad_ratio"]] == [0, 100, 200]
    assert "train/optimization/heads/rgb/param_std" in written
    assert "train/optimization/heads/clip/grad_norm" in written


def test_half_precision_heads_are_summed_in_a_wider_float():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    # The norm is accumulated in float32 but returned in the gradients' dtype (as clip_grad_norm_ does):
    # one rounding, 2^-11 relative for float16, 2^-8 for bfloat16.
    for dtype, norm_rtol in ((torch.float16, 2**-11), (torch.bfloat16, 2**-8)):
        params = {"h": {"w": torch.from_numpy(rng.standard_normal((64, 64)) + 3.0).to(dtype)}}
        grads = {"h": {"w": torch.from_numpy(1e-3 * rng.standard_normal((64, 64))).to(dtype)}}
        got = values(H.head_stats({"h": "h"}, grads=grads, model=params))
        p, g = params["h"]["w"].double().numpy().ravel(), grads["h"]["w"].double().numpy().ravel()
        assert close(got["h/param_mean"], p.mean(), 1e-9) and close(got["h/param_std"], p.std(ddof=1), 1e-9)
        assert close(got["h/grad_norm"], np.linalg.norm(g), norm_rtol)


def test_structured_heads_a_stopped_head_constant_and_offset_parameters(fw):
    """A head that stopped learning (zero gradient), constant parameters, and a large offset with a small
    spread (a one-pass E[x²] − E[x]² would cancel to noise; float64 reference)."""
    rng = np.random.default_rng(7)
    params = {
        "live": {"w": 1e4 + 1e-3 * rng.standard_normal((16, 16))},
        "dead": {"w": np.full((4, 4), 0.25)},
    }
    grads = {"live": {"w": rng.standard_normal((16, 16))}, "dead": {"w": np.zeros((4, 4))}}
    got = values(H.head_stats({"live": "live", "dead": "dead"}, grads=fw.tree(grads), model=fw.tree(params)))
    p = reference(params["live"])
    assert close(got["live/param_mean"], p.mean(), fw.rtol)
    # Float32 (JAX without x64) cannot hold 1e4 ± 1e-3 beyond ~1e-3 absolute: compare at that resolution.
    assert close(
        got["live/param_std"], p.std(ddof=1), 1e-6 if fw.rtol < 1e-6 else 0.0, atol=0 if fw.rtol < 1e-6 else 2e-3
    )
    assert got["dead/param_std"] == 0.0 and got["dead/param_mean"] == 0.25
    assert got["dead/grad_norm"] == 0.0
    assert close(got["grad_ratio"], np.linalg.norm(reference(grads["live"])) / 1e-30, fw.rtol)  # min clamped at 1e-30


def test_two_head_names_with_one_tag_are_an_error_naming_both():
    """'rgb head' and 'rgb_head' both become the tag 'rgb_head': the second head's values silently replaced the
    first's (and its grad norm still entered grad_ratio) (review12 regression)."""
    params, grads = two_heads()
    with pytest.raises(PartialResult, match=r"heads 'rgb head' and 'rgb_head' both write the tag name 'rgb_head'"):
        H.head_stats({"rgb head": "rgb_head", "rgb_head": "clip_head"}, grads=grads, model=params)


def test_a_bad_head_costs_only_itself_through_the_monitor(tmp_path):
    """One typo'd prefix used to fail the whole family every step, and disable it after max_failures: the
    good heads' tags were lost with it (review12 regression)."""
    params, grads = two_heads()
    with mr.Monitor(str(tmp_path), max_failures=2, config={"optimization/heads": {"every": 1}}) as mon:
        for step in range(4):
            mon.step(step, heads={"rgb": "rgb_head", "audio": "audio_head"}, grads=grads, model=params)
        errors = mon.errors
    written = scalars(tmp_path)
    assert [s for s, _ in written["train/optimization/heads/rgb/grad_norm"]] == [0, 1, 2, 3]
    assert not any("audio" in tag for tag in written)
    error = errors["optimization/heads"]
    assert "heads['audio']: prefix 'audio_head'" in error["last_message"]
    assert error["count"] == 4 and not error["disabled"]
