"""DINO teacher entropy and KL(P_t‖P_s) against a numpy float64 reference written from the paper.

Reference (Caron et al. 2021, arXiv 2104.14294, Eq. 1-2 and §5.3; facebookresearch/dino DINOLoss):
P_t = softmax((g_t − C)/τ_t), P_s = softmax(g_s/τ_s) row-wise; H(P_t) = −Σ P_t log P_t,
KL(P_t‖P_s) = Σ P_t log(P_t/P_s) (0 log 0 = 0), each averaged over the rows.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import metricreg as mr
from metricreg import arrays as A
from metricreg.builtins import distillation as D
from tests.builtins.conftest import close, is_framework_array, values
from tests.core.eventfiles import scalars


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def reference(pt: np.ndarray, ps: np.ndarray) -> dict[str, float]:
    pt, ps = np.asarray(pt, dtype=np.float64), np.asarray(ps, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -np.where(pt > 0, pt * np.log(pt), 0.0).sum(axis=1)
        kl = np.where(pt > 0, pt * np.log(pt / ps), 0.0).sum(axis=1)
    return {"teacher_entropy": float(h.mean()), "kl": float(kl.mean())}


def logits(kind: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    if kind == "random":
        return rng.standard_normal((64, 32)), rng.standard_normal((64, 32))
    if kind == "n_lt_k":  # DINO: a few hundred rows, 65,536 prototypes (here 4 x 4096)
        return 3.0 * rng.standard_normal((4, 4096)), 3.0 * rng.standard_normal((4, 4096))
    if kind == "n_gg_k":
        return rng.standard_normal((8192, 4)), rng.standard_normal((8192, 4))
    if kind == "uniform_teacher":  # collapse to uniform: H → log K, KL small
        return 1e-3 * rng.standard_normal((64, 32)), 0.1 * rng.standard_normal((64, 32))
    if kind == "dominant":  # one class dominates every teacher row (sharpening without centering)
        t = rng.standard_normal((64, 32))
        t[:, 5] += 40.0
        return t, rng.standard_normal((64, 32))
    raise ValueError(kind)


KINDS = ["random", "n_lt_k", "n_gg_k", "uniform_teacher", "dominant"]


@pytest.mark.parametrize("kind", KINDS)
def test_from_logits_with_temperatures_and_center_matches_reference(fw, kind):
    t, s = logits(kind)
    center = np.linspace(-0.5, 0.5, t.shape[1])
    tq, sq = (np.asarray(A.to_host(fw.array(x)), dtype=np.float64) for x in (t, s))  # JAX: float32 values
    cq = np.asarray(A.to_host(fw.array(center)), dtype=np.float64)
    ref = reference(softmax((tq - cq) / 0.04), softmax(sq / 0.1))
    out = D.dino(
        teacher_logits=fw.array(t),
        student_logits=fw.array(s),
        teacher_temp=0.04,
        student_temp=0.1,
        teacher_center=fw.array(center),
    )
    got = values(out)
    # JAX without x64 works in float32: a log-softmax of logits/0.04 loses ~1e-6 absolute per term.
    atol = 0.0 if fw.rtol < 1e-6 else 1e-4
    for key, expected in ref.items():
        assert close(got[key], expected, fw.rtol, atol), (kind, key, got[key], expected)


@pytest.mark.parametrize("kind", KINDS)
def test_from_probabilities_matches_reference(fw, kind):
    t, s = logits(kind)
    pt, ps = softmax(t), softmax(s)
    ptq, psq = (np.asarray(A.to_host(fw.array(x)), dtype=np.float64) for x in (pt, ps))
    ref = reference(ptq, psq)
    got = values(D.dino(teacher_probs=fw.array(pt), student_probs=fw.array(ps)))
    for key, expected in ref.items():
        assert close(got[key], expected, max(fw.rtol, 1e-9), 0.0 if fw.rtol < 1e-6 else 1e-5), (kind, key)


def test_collapse_signatures():
    k = 32
    t, s = logits("uniform_teacher")
    uniform = values(D.dino(teacher_logits=t, student_logits=s))
    assert uniform["teacher_entropy"] == pytest.approx(math.log(k), rel=1e-4)
    one_hot = np.eye(k)[np.zeros(64, dtype=int)]  # every teacher row puts all mass on class 0
    sharp = values(D.dino(teacher_probs=one_hot, student_probs=softmax(s)))
    assert sharp["teacher_entropy"] == 0.0  # 0 log 0 = 0, not NaN
    assert sharp["kl"] == pytest.approx(float(-np.log(softmax(s)[:, 0]).mean()), rel=1e-12)
    same = values(D.dino(teacher_probs=softmax(t), student_probs=softmax(t)))
    assert abs(same["kl"]) < 1e-12


def test_a_student_zero_under_teacher_mass_is_infinite_kl():
    pt = np.array([[0.5, 0.5, 0.0]])
    ps = np.array([[1.0, 0.0, 0.0]])
    got = values(D.dino(teacher_probs=pt, student_probs=ps))
    assert got["kl"] == math.inf and got["teacher_entropy"] == pytest.approx(math.log(2))


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_torch_logits(dtype):
    torch = pytest.importorskip("torch")
    t, s = logits("random")
    tt = torch.from_numpy(t.astype(np.float32)).to(getattr(torch, dtype))
    st = torch.from_numpy(s.astype(np.float32)).to(getattr(torch, dtype))
    tau_t = float(np.float32(0.04))  # a float32 tensor temperature holds this value
    ref = reference(softmax(tt.double().numpy() / tau_t), softmax(st.double().numpy() / 0.1))
    got = values(D.dino(teacher_logits=tt, student_logits=st, teacher_temp=torch.tensor(0.04), student_temp=0.1))
    for key, expected in ref.items():
        assert close(got[key], expected, 1e-9), (key, got[key], expected)


def test_mixed_probabilities_and_logits(fw):
    t, s = logits("random")
    tq, sq = (np.asarray(A.to_host(fw.array(x)), dtype=np.float64) for x in (softmax(t), s))
    ref = reference(tq, softmax(sq / 0.1))
    got = values(D.dino(teacher_probs=fw.array(softmax(t)), student_logits=fw.array(s), student_temp=0.1))
    for key, expected in ref.items():
        assert close(got[key], expected, max(fw.rtol, 1e-9)), key


def test_results_stay_in_the_framework_or_go_to_the_writer(fw):
    t, s = logits("random")
    out = D.dino(teacher_logits=fw.array(t), student_logits=fw.array(s))
    for v in out.values():
        assert is_framework_array(v, fw) if fw.name == "jax" else isinstance(v, A.Deferred)


def test_nothing_given_is_no_value_and_bad_input_names_the_culprit():
    assert D.dino() is None
    with pytest.raises(ValueError, match="dino.*student_probs or student_logits"):
        D.dino(teacher_probs=np.ones((2, 3)) / 3)
    with pytest.raises(ValueError, match=r"dino.*teacher \(2, 3\).*student \(2, 4\)"):
        D.dino(teacher_probs=np.ones((2, 3)) / 3, student_probs=np.ones((2, 4)) / 4)
    with pytest.raises(TypeError, match="dino.*teacher distribution must be an \\(n, K\\) array"):
        D.dino(teacher_probs=[0.5, 0.5], student_probs=np.ones((1, 2)) / 2)


def test_monitor_writes_the_family_only_when_given(tmp_path):
    t, s = logits("random")
    with mr.Monitor(str(tmp_path)) as mon:
        mon.step(0, loss=1.0, teacher_logits=t, student_logits=s, teacher_temp=0.04, student_temp=0.1)
        mon.step(100, loss=1.0)
    written = scalars(tmp_path)
    ref = reference(softmax(t / 0.04), softmax(s / 0.1))
    assert [p[0] for p in written["train/dino/kl"]] == [0]
    assert close(written["train/dino/kl"][0][1], ref["kl"], 1e-6)
    assert close(written["train/dino/teacher_entropy"][0][1], ref["teacher_entropy"], 1e-6)


def test_device_route_matches_reference(fw):
    """dino_terms in fw's namespace on real values (the CUDA / JAX code path)."""
    t, s = logits("dominant")
    tq, sq = (np.asarray(A.to_host(fw.array(x)), dtype=np.float64) for x in (t, s))
    ref = reference(softmax(tq / 0.5), softmax(sq / 0.1))
    x = fw.array(t)
    got = values(
        D.dino_terms(A.namespace(x), teacher_logits=x, student_logits=fw.array(s), teacher_temp=0.5, student_temp=0.1)
    )
    for key, expected in ref.items():
        assert close(got[key], expected, fw.rtol, 0.0 if fw.rtol < 1e-6 else 1e-5), key
