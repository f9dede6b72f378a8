"""Gradient noise scale and gradient SNR against a numpy float64 reference written from the paper.

Reference (McCandlish et al. 2018, arXiv:1812.06162, App. A.1), written independently of the
module: ‖G_small‖² = mean over the K micro-batches of ‖g_k‖² (B_small = b), ‖G_big‖² = ‖mean g_k‖²
(B_big = K·b), ‖𝒢‖² = (B_big‖G_big‖² − B_small‖G_small‖²)/(B_big − B_small),
𝒮 = (‖G_small‖² − ‖G_big‖²)/(1/B_small − 1/B_big), B_simple = 𝒮/‖𝒢‖², SNR = ‖𝒢‖²/(𝒮/B_big).
Tolerance: rtol 1e-9 in float64 (numpy, torch), fw.rtol for JAX without x64 (float32), and
1e-9 against the reference on the rounded values for float16/bfloat16 torch gradients.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import metricreg as mr
from metricreg.builtins import gradient_noise as GN
from tests.builtins.conftest import close, is_framework_array, values
from tests.core.eventfiles import scalars


def gns_reference(grads: list[np.ndarray], b: float) -> dict[str, float]:
    flat = [np.concatenate([np.ravel(np.asarray(p, dtype=np.float64)) for p in g]) for g in grads]
    k = len(flat)
    b_small, b_big = float(b), float(k * b)
    small = float(np.mean([f @ f for f in flat]))
    mean = np.mean(flat, axis=0)
    big = float(mean @ mean)
    g2 = (b_big * big - b_small * small) / (b_big - b_small)
    s = (small - big) / (1.0 / b_small - 1.0 / b_big)
    return {
        "g_small_sq": small,
        "g_big_sq": big,
        "g2": g2,
        "trace_sigma": s,
        "b_simple": s / g2,
        "snr": g2 / (s / b_big),
    }


def microbatch_grads(kind: str, seed: int = 0) -> tuple[list[np.ndarray], int]:
    """K micro-batch gradients g_k = G + noise_k with a chosen noise structure, and b."""
    rng = np.random.default_rng(seed)
    if kind == "isotropic":
        k, p, b = 4, 64, 16
        return [0.3 + rng.standard_normal(p) / math.sqrt(b) for _ in range(k)], b
    if kind == "low_rank":  # noise in 3 of 100 directions
        k, p, b = 8, 100, 32
        basis = rng.standard_normal((3, p))
        g = rng.standard_normal(p)
        return [g + rng.standard_normal(3) @ basis for _ in range(k)], b
    if kind == "dominant":  # one noise direction 100x the others
        k, p, b = 4, 50, 8
        u = rng.standard_normal(p)
        g = 0.1 * rng.standard_normal(p)
        return [g + 100.0 * rng.standard_normal() * u + rng.standard_normal(p) for _ in range(k)], b
    if kind == "k_lt_p":  # two micro-batches, many parameters
        return [rng.standard_normal(5000) + 1.0 for _ in range(2)], 4
    if kind == "k_gg_p":  # many micro-batches, few parameters
        return [rng.standard_normal(3) + np.array([1.0, -2.0, 0.5]) for _ in range(500)], 2
    raise ValueError(kind)


KINDS = ["isotropic", "low_rank", "dominant", "k_lt_p", "k_gg_p"]


@pytest.mark.parametrize("kind", KINDS)
def test_estimators_match_the_reference(fw, kind):
    grads, b = microbatch_grads(kind)
    out = GN.gradient_noise([fw.array(g) for g in grads], microbatch_size=b)
    assert all(is_framework_array(v, fw) for v in out.values())  # stays on the input's device
    got = values(out)
    for key, expected in gns_reference([[g] for g in grads], b).items():
        # g2 and b_simple difference large near-equal terms: float32 loses digits there
        rtol = fw.rtol if fw.rtol < 1e-6 else 5e-3
        assert close(got[key], expected, rtol, atol=1e-12), (kind, key, got[key], expected)


def test_dict_and_list_gradients_are_flattened_consistently(fw):
    rng = np.random.default_rng(3)
    parts = [{"w": rng.standard_normal((4, 3)), "b": rng.standard_normal(3) + 1.0} for _ in range(3)]
    as_dicts = values(GN.gradient_noise([fw.tree(p) for p in parts], microbatch_size=10))
    as_lists = values(GN.gradient_noise([fw.tree([p["w"], p["b"]]) for p in parts], microbatch_size=10))
    expected = gns_reference([[p["w"], p["b"]] for p in parts], 10)
    for key, ref in expected.items():
        assert close(as_dicts[key], ref, fw.rtol), key
        assert close(as_lists[key], ref, fw.rtol), key


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_torch_gradients(dtype):
    torch = pytest.importorskip("torch")
    grads, b = microbatch_grads("isotropic")
    half = [torch.from_numpy(g).to(getattr(torch, dtype)) for g in grads]
    got = values(GN.gradient_noise(half, microbatch_size=b))
    for key, ref in gns_reference([[h.double().numpy()] for h in half], b).items():
        assert close(got[key], ref, 1e-9), (dtype, key)


def test_estimators_converge_to_a_known_gradient_and_covariance():
    """Per-sample gradients G + L·z (Σ = LLᵀ known): the A.1 estimates average to ‖G‖² and tr(Σ)."""
    rng = np.random.default_rng(7)
    p, k, b, trials = 20, 4, 16, 3000
    g_true = rng.standard_normal(p) * 0.5
    chol = rng.standard_normal((p, p)) * 0.3
    trace_true = float(np.sum(chol * chol))
    g2_true = float(g_true @ g_true)
    g2s, traces = [], []
    state: dict = {}
    for _ in range(trials):
        # a micro-batch gradient is the mean of b per-sample gradients: G + L z / √b exactly in law
        grads = [g_true + chol @ rng.standard_normal(p) / math.sqrt(b) for _ in range(k)]
        out = values(GN.gradient_noise(grads, microbatch_size=b, state=state))
        g2s.append(out["g2"])
        traces.append(out["trace_sigma"])
    for est, truth in ((g2s, g2_true), (traces, trace_true)):
        mean, se = float(np.mean(est)), float(np.std(est) / math.sqrt(trials))
        assert abs(mean - truth) < 4 * se and abs(mean - truth) < 0.05 * truth, (mean, truth, se)
    # the EMA of numerator and denominator (β = 0.9: ≈ 19 measurements) lands near the true B_simple
    assert close(out["b_simple_ema"], trace_true / g2_true, 0.35)
    assert close(out["snr"], g2s[-1] * k * b / traces[-1], 1e-9)


def test_without_b_only_the_b_free_members_are_written():
    grads, b = microbatch_grads("isotropic")
    got = values(GN.gradient_noise(grads))
    ref = gns_reference([[g] for g in grads], b)
    assert set(got) == {"g_small_sq", "g_big_sq", "g2", "snr"}
    assert close(got["snr"], ref["snr"], 1e-9) and close(got["g2"], ref["g2"], 1e-9)
    # batch_size is the samples of one optimizer step: b = batch_size / K
    via_batch = values(GN.gradient_noise(grads, batch_size=b * len(grads)))
    assert close(via_batch["b_simple"], ref["b_simple"], 1e-9)


@pytest.mark.parametrize(
    ("grads", "kwargs", "match"),
    [
        ([np.ones(3)], {}, "needs at least 2 micro-batch gradients, got 1"),
        (np.ones((4, 3)), {}, "must be a list of K >= 2 micro-batch gradients"),
        ([np.ones(3), np.ones(4)], {}, r"microbatch_grads\[1\] has not the structure and shapes of \[0\]"),
        ([{"w": np.ones(3)}, {"v": np.ones(3)}], {}, r"microbatch_grads\[1\]"),
        ([np.ones(3), "x"], {}, r"microbatch_grads\[1\] is a str"),
        ([np.ones(3), np.ones(3)], {"microbatch_size": 0}, "microbatch_size must be a positive number, got 0"),
    ],
)
def test_bad_input_names_the_culprit(grads, kwargs, match):
    with pytest.raises(ValueError, match=match):
        GN.gradient_noise(grads, **kwargs)


# ------------------------------------------------------------------------------ torch accumulator


def _model_and_batches(seed: int = 0):
    torch = pytest.importorskip("torch")
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    x, y = torch.randn(4, 5, 6), torch.randn(4, 5, 1)  # K = 4 micro-batches of b = 5
    return torch, model, x, y


def test_accumulator_matches_separate_per_microbatch_gradients():
    torch, model, x, y = _model_and_batches()
    separate = []
    for xk, yk in zip(x, y, strict=True):
        loss = torch.nn.functional.mse_loss(model(xk), yk)
        separate.append([g.double() for g in torch.autograd.grad(loss, list(model.parameters()))])
    acc = GN.accumulate(model, microbatch_size=5, every=100)
    assert acc.begin(200)
    for xk, yk in zip(x, y, strict=True):
        (torch.nn.functional.mse_loss(model(xk), yk) / 4).backward()  # the usual 1/K loss scaling
        acc.micro_step()
    got = values(GN.gradient_noise(acc))
    ref = gns_reference([[g.numpy() for g in gs] for gs in separate], 5)
    for key in ("b_simple", "snr"):  # scale-free: the 1/K loss scaling cancels in the ratios
        assert close(got[key], ref[key], 1e-4), (key, got[key], ref[key])
    for key in ("g_small_sq", "g_big_sq", "g2", "trace_sigma"):  # the raw norms: of the 1/K-scaled gradients
        assert close(got[key], ref[key] / 16, 1e-4), (key, got[key], ref[key])


def test_accumulator_does_nothing_on_steps_that_are_not_due():
    torch, model, x, y = _model_and_batches()
    acc = GN.accumulate(model, microbatch_size=5, every=100)
    assert not acc.begin(150)
    for xk, yk in zip(x, y, strict=True):
        torch.nn.functional.mse_loss(model(xk), yk).backward()
        acc.micro_step()
    assert acc._prev is None and acc._sq == []
    # were the metric due here, its schedule and the accumulator's would disagree: say so
    with pytest.raises(ValueError, match=r"due at step 150, which accumulate\(every=100\) did not measure"):
        GN.gradient_noise(acc, step=150)


def test_accumulator_errors_name_the_helper():
    torch, model, x, y = _model_and_batches()
    with pytest.raises(TypeError, match="gradient_noise.accumulate: expected a torch nn.Module"):
        GN.accumulate({"w": np.ones(3)})

    class Sharded(torch.nn.Module):  # a parameter that looks like FSDP2's DTensor
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(3))
            self.w.placements = ("Shard(0)",)

    with pytest.raises(TypeError, match=r"sharded \(DTensor / FSDP2\) parameters are not supported"):
        GN.accumulate(Sharded())
    acc = GN.accumulate(model, microbatch_size=5)
    with pytest.raises(ValueError, match=r"call accumulate\(...\).begin\(step\) at the start of every training step"):
        GN.gradient_noise(acc, step=0)
    acc.begin(0)
    with pytest.raises(ValueError, match=r"no micro_step\(\) since begin\(\)"):
        GN.gradient_noise(acc, step=0)
    with pytest.raises(ValueError, match=r"micro_step\(\) found no .grad"):
        acc.micro_step()
    torch.nn.functional.mse_loss(model(x[0]), y[0]).backward()
    acc.micro_step()
    with pytest.raises(ValueError, match="needs at least 2 micro-steps, got 1"):
        GN.gradient_noise(acc)
    with pytest.raises(ValueError, match=r"due at step 100, but the accumulator's last begin\(\) was for step 0"):
        GN.gradient_noise(acc, step=100)


def test_monitor_writes_the_tags_with_the_accumulator(tmp_path):
    torch, model, x, y = _model_and_batches()
    acc = GN.accumulate(model, microbatch_size=5)
    with mr.Monitor(str(tmp_path)) as mon:
        for step in range(0, 201, 50):
            model.zero_grad()
            acc.begin(step)
            for xk, yk in zip(x, y, strict=True):
                (torch.nn.functional.mse_loss(model(xk), yk) / 4).backward()
                acc.micro_step()
            mon.step(step, microbatch_grads=acc)
    written = scalars(tmp_path)
    for member in GN.MEMBERS:
        assert [s for s, _ in written[f"train/gradient_noise/{member}"]] == [0, 100, 200], member
    b_simple = written["train/gradient_noise/b_simple"][0][1]
    snr = written["train/gradient_noise/snr"][0][1]
    assert close(snr, 20 / b_simple, 1e-6)  # SNR = B_big / B_simple, B_big = K·b = 20
    assert mon.errors == {}


def test_microbatch_size_is_bookkeeping_not_a_generalization_metric(tmp_path):
    grads, b = microbatch_grads("isotropic")
    with mr.Monitor(str(tmp_path)) as mon:
        mon.step(0, loss=1.0, microbatch_grads=grads, microbatch_size=b)
        mon.eval(loss=2.0, microbatch_size=b)
    written = scalars(tmp_path)
    assert "train/gradient_noise/b_simple" in written and "gap/loss" in written
    assert not [tag for tag in written if tag.startswith("gap/microbatch_size")]  # bookkeeping, like batch_size


def test_numpy_and_array_batch_sizes_are_numbers(fw):
    """microbatch_size=np.int64(16) was refused ("must be a positive number, got np.int64(16)") and a numpy
    batch_size was silently ignored (no b_simple, no error) (review12 regression)."""
    grads, b = microbatch_grads("isotropic")
    ref = gns_reference([[g] for g in grads], b)
    for kwargs in (
        {"microbatch_size": np.int64(b)},
        {"microbatch_size": np.float32(b)},
        {"microbatch_size": fw.array(np.array(b))},  # a 0-d array: used on its device
        {"batch_size": np.int64(b * len(grads))},
        {"batch_size": fw.array(np.array([b * len(grads)]))},
    ):
        got = values(GN.gradient_noise(grads, **kwargs))
        assert close(got["b_simple"], ref["b_simple"], 1e-6), kwargs
        assert close(got["trace_sigma"], ref["trace_sigma"], 1e-6), kwargs
    with pytest.raises(ValueError, match=r"microbatch_size must be a positive number, got np.True_|got True"):
        GN.gradient_noise(grads, microbatch_size=np.bool_(True))
