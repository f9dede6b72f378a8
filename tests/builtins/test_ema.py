"""EMA family: parameter distances, teacher step, failure indicators; numpy / torch / JAX."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from metricreg.builtins import ema as E
from metricreg.spec import PartialResult
from tests.builtins.conftest import close, is_framework_array, value, values


def params(seed: int, scale: float = 1.0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "enc": {"w": scale * rng.standard_normal((6, 5)), "b": scale * rng.standard_normal(5)},
        "head": rng.standard_normal(3),
    }


def flat(tree: dict) -> np.ndarray:
    out = []
    for v in tree.values():
        out.append(flat(v) if isinstance(v, dict) else np.ravel(v))
    return np.concatenate(out)


def test_parameter_members_match_reference(fw):
    student, teacher = params(0), params(1)
    m = 0.99
    got = E.ema(fw.tree(student), fw.tree(teacher), step=0, state={}, momentum=m)
    assert all(is_framework_array(v, fw) for k, v in got.items() if k != "momentum")
    got = values(got)
    s, t = flat(student), flat(teacher)
    dist = np.linalg.norm(s - t)
    assert close(got["rel_distance"], dist / np.linalg.norm(t), fw.rtol)
    assert close(got["weight_norm_ratio"], np.linalg.norm(s) / np.linalg.norm(t), fw.rtol)
    assert close(got["teacher_step"], (1 - m) * dist, fw.rtol)
    assert got["momentum"] == m and got["stalled"] == 0.0


def test_torch_modules_and_pytrees_agree():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    student = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Linear(8, 2))
    teacher = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Linear(8, 2))
    as_tree = lambda mod: {n: p.detach().numpy().astype(np.float64) for n, p in mod.named_parameters()}  # noqa: E731
    a = values(E.ema(student, teacher, momentum=0.9))
    b = values(E.ema(as_tree(student), as_tree(teacher), momentum=0.9))
    for k in b:
        assert close(a[k], b[k], 1e-6), k
    # A predictor only the student has is ignored; a DDP-style prefix is removed.
    student.predictor = torch.nn.Linear(2, 2)
    wrapped = torch.nn.Module()
    wrapped.module = teacher
    c = values(E.ema(student, wrapped, momentum=0.9))
    assert close(c["rel_distance"], a["rel_distance"], 1e-6)


def test_teacher_step_without_momentum_is_measured_between_due_steps(fw):
    student, teacher = params(0), params(1)
    state: dict = {}
    first = E.ema(fw.tree(student), fw.tree(teacher), step=100, state=state)
    assert "teacher_step" not in first
    moved = {k: v for k, v in teacher.items()}
    delta = params(2, scale=0.01)
    moved = {
        "enc": {k: teacher["enc"][k] + delta["enc"][k] for k in teacher["enc"]},
        "head": teacher["head"] + delta["head"],
    }
    got = values(E.ema(fw.tree(student), fw.tree(moved), step=150, state=state))
    assert close(got["teacher_step"], np.linalg.norm(flat(delta)) / 50, fw.rtol * 10)


def simulate(momentum: float, steps: int = 1500, every: int = 100, noise: float = 0.3, seed: int = 0) -> list[dict]:
    """Student drifting (decelerating) with noise; EMA teacher with momentum m; the family every `every` steps."""
    rng = np.random.default_rng(seed)
    theta = rng.standard_normal(64)
    xi = theta.copy()
    drift = 2.5e-4 * rng.standard_normal(64)
    state: dict = {}
    out = []
    for k in range(steps + 1):
        if k % every == 0:
            out.append(values(E.ema({"p": theta}, {"p": xi}, step=k, state=state, momentum=momentum)))
        theta = theta + drift / (1 + k / 300) + noise * 2.5e-4 * rng.standard_normal(64)
        xi = momentum * xi + (1 - momentum) * theta
    return out


def test_stalled_indicator_fires_for_a_frozen_teacher_not_for_a_healthy_one():
    frozen = simulate(1.0)
    healthy = simulate(0.99)
    slow = simulate(0.9999)
    assert [r["stalled"] for r in frozen[:4]] == [0.0] * 4  # needs 5 points
    assert all(r["stalled"] == 1.0 for r in frozen[4:])
    assert all(r["stalled"] == 1.0 for r in slow[4:])  # half-life 6,931 steps > the run
    assert all(r["stalled"] == 0.0 for r in healthy)
    # m = 0.999: a single point while the gap builds up (half-life 693 steps), never twice in a row,
    # so the rule's persistence of 2 keeps it quiet.
    flags = [r["stalled"] for r in simulate(0.999)]
    assert not any(a == b == 1.0 for a, b in itertools.pairwise(flags))
    assert E.HEALTH["stalled"].persistence == 2
    assert frozen[-1]["teacher_step"] == 0.0
    assert frozen[-1]["rel_distance"] > frozen[5]["rel_distance"]


def test_collapsing_indicator(fw):
    rng = np.random.default_rng(0)
    healthy = rng.standard_normal((256, 16))
    got = values(E.ema(None, None, student_out=fw.array(healthy), teacher_out=fw.array(healthy + 0.01)))
    assert got["agreement"] > 0.99 and got["student_std"] > 0.9 and got["collapsing"] == 0.0
    collapsed = np.outer(1 + 0.1 * rng.random(256), rng.standard_normal(16))
    got = values(E.ema(None, None, student_out=fw.array(collapsed), teacher_out=fw.array(collapsed)))
    assert got["agreement"] > 0.999 and got["student_std"] < 1e-3 and got["collapsing"] == 1.0
    bad = healthy.copy()
    bad[0, 0] = np.nan
    got = values(E.ema(None, None, student_out=fw.array(bad), teacher_out=fw.array(bad)))
    assert math.isnan(got["collapsing"])


def test_agreement_matches_reference(fw):
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((100, 8)), rng.standard_normal((100, 8))
    ref = np.mean((a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1))
    assert close(value(E.ema(None, None, student_out=fw.array(a), teacher_out=fw.array(b))["agreement"]), ref, fw.rtol)


def test_nothing_to_report_returns_none():
    assert E.ema(None, None) is None


def test_teacher_step_without_momentum_is_not_moved_by_the_in_place_ema_update():
    """Regression: the snapshot of a small teacher was a view, so the EMA update moved it too."""
    import torch

    from metricreg.builtins.ema import ema

    torch.manual_seed(0)
    student, teacher = torch.nn.Linear(8, 8), torch.nn.Linear(8, 8)
    state: dict = {}
    m = 0.9
    ema(student, teacher, step=0, state=state)
    before = torch.cat([p.detach().flatten().clone() for p in teacher.parameters()])
    with torch.no_grad():
        for ps, pt in zip(student.parameters(), teacher.parameters(), strict=True):
            pt.mul_(m).add_((1 - m) * ps)
    after = torch.cat([p.detach().flatten() for p in teacher.parameters()])
    out = ema(student, teacher, step=1, state=state)
    assert float(out["teacher_step"]) == pytest.approx(float(torch.linalg.vector_norm(after - before)), rel=1e-5)


def test_wrapped_student_with_predictor_matches_a_bare_teacher():
    import copy

    import torch

    from metricreg import adapters

    encoder = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 8))

    class Online(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = encoder
            self.predictor = torch.nn.Linear(8, 8)

    online = Online()
    teacher = copy.deepcopy(encoder)  # names 0.weight ... against encoder.0.weight ...
    pairs = adapters.matched_parameters(online, teacher)
    assert [n for n, _, _ in pairs] == ["encoder.0.weight", "encoder.0.bias", "encoder.2.weight", "encoder.2.bias"]
    for _, p, q in pairs:
        assert torch.equal(p, q)
    # A teacher built as another wrapper: matched by name suffix.
    wrapped = torch.nn.ModuleDict({"encoder": copy.deepcopy(encoder)})
    assert len(adapters.matched_parameters(online, wrapped)) == 4


def test_nothing_matched_is_said_once(caplog):
    import torch

    from metricreg.builtins.ema import ema

    state: dict = {}
    with caplog.at_level("WARNING", logger="metricreg"):
        ema(torch.nn.Linear(3, 5), torch.nn.Linear(7, 2), step=0, state=state, momentum=0.99)
        ema(torch.nn.Linear(3, 5), torch.nn.Linear(7, 2), step=100, state=state, momentum=0.99)
    assert sum("no parameter of `ema_model` matches" in r.message for r in caplog.records) == 1


def test_frozen_teacher_is_flagged_at_the_first_due_point():
    import copy

    import torch

    from metricreg.builtins.ema import HEALTH, ema

    torch.manual_seed(0)
    student = torch.nn.Linear(6, 6)
    teacher = copy.deepcopy(student)
    with torch.no_grad():
        student.weight.add_(0.1)
    assert float(ema(student, teacher, step=100, state={}, momentum=1.0)["frozen"]) == 1.0
    assert float(ema(student, teacher, step=100, state={}, momentum=0.996)["frozen"]) == 0.0
    # m = 0: the teacher *is* the student, which is not a frozen teacher.
    assert float(ema(student, copy.deepcopy(student), step=100, state={}, momentum=0.0)["frozen"]) == 0.0
    # Without momentum: a measured displacement of 0 between two due steps.
    state: dict = {}
    assert "frozen" not in ema(student, teacher, step=100, state=state)  # nothing measured yet
    with torch.no_grad():
        student.weight.add_(0.1)  # the student trains on, the teacher does not follow
    assert float(ema(student, teacher, step=200, state=state)["frozen"]) == 1.0
    assert HEALTH["frozen"].critical_above == 0.5 and HEALTH["frozen"].persistence == 1


# --- momentum against its schedule ------------------------------------------------------------


def cosine_schedule(step: int, total: int = 1000, start: float = 0.996, end: float = 1.0) -> float:
    """The reference schedule, in float64: I-JEPA / BYOL's cosine ramp from start to end."""
    return end - (end - start) * 0.5 * (1.0 + math.cos(math.pi * step / total))


def test_momentum_error_matches_reference(fw):
    # A schedule that was never stepped (the momentum stuck at its start) against the true schedule,
    # and one that follows it: errors |m − m*| from the float64 reference, 0 when following.
    for step in (0, 250, 999):
        target = cosine_schedule(step)
        for used in (cosine_schedule(0), target, cosine_schedule(step, total=500)):
            ref = abs(np.float64(used) - np.float64(target))
            for m, t in ((used, target), (fw.array(used), fw.array(target)), (used, fw.array([target]))):
                got = E.ema(None, None, momentum=m, momentum_target=t)
                assert set(got) == {"momentum", "momentum_target", "momentum_error"}
                if E.A.is_array(t):
                    assert is_framework_array(got["momentum_error"], fw)
                got = values(got)
                assert close(got["momentum_error"], ref, fw.rtol, atol=1e-7 if fw.rtol > 1e-6 else 0.0), (step, used)
                assert close(got["momentum_target"], target, fw.rtol)
    assert values(E.ema(None, None, momentum=0.999, momentum_target=0.999))["momentum_error"] == 0.0


def test_half_precision_momentum_is_compared_in_a_wide_float():
    torch = pytest.importorskip("torch")
    target = cosine_schedule(300)
    for dtype in (torch.float16, torch.bfloat16):
        m = torch.tensor(target, dtype=dtype)  # the updater stores its momentum in half precision
        got = E.ema(None, None, momentum=m, momentum_target=target)
        assert got["momentum_error"].dtype == torch.float64
        # The error is exactly the half-precision rounding of m, not a half-precision difference of two
        # numbers near 1 (which would round to 0 or to one ulp of 1: 2^-11 / 2^-8).
        ref = abs(float(m.double()) - target)
        assert close(values(got)["momentum_error"], ref, 1e-12), dtype


def test_momentum_target_is_written_only_when_given():
    assert "momentum_target" not in E.ema(None, None, momentum=0.99)
    got = E.ema(None, None, momentum_target=0.996)
    assert got == {"momentum_target": 0.996}  # no momentum given: nothing to compare
    assert type(got["momentum_target"]) is float


def test_bad_momentum_target_names_the_input():
    # a PartialResult: the failure (named) with the members that do not need momentum_target
    with pytest.raises(PartialResult, match=r"TypeError: input 'momentum_target' must be a number or a one-element"):
        E.ema(None, None, momentum=0.99, momentum_target=True)
    with pytest.raises(PartialResult, match=r"TypeError: input 'momentum_target'.*got list"):
        E.ema(None, None, momentum=0.99, momentum_target=[0.99])
    with pytest.raises(PartialResult, match=r"ValueError: input 'momentum_target' must hold one value") as info:
        E.ema(None, None, momentum=0.99, momentum_target=np.array([0.99, 1.0]))
    assert info.value.values == {"momentum": 0.99}
    with pytest.raises(TypeError, match=r"input 'momentum' must be a number"):
        E.ema(None, None, momentum="0.99", momentum_target=0.99)


def test_monitor_writes_momentum_target_and_error(tmp_path):
    import metricreg as mr
    from tests.core.eventfiles import scalars

    student, teacher = params(0), params(1)
    with mr.Monitor(str(tmp_path)) as mon:
        for step in range(201):
            stuck = cosine_schedule(0, total=200)  # a schedule that is never stepped
            mon.step(step, model=student, ema_model=teacher, momentum=stuck, momentum_target=cosine_schedule(step, 200))
    written = scalars(tmp_path)
    assert [s for s, _ in written["train/ema/momentum_target"]] == [0, 100, 200]
    errors = [v for _, v in written["train/ema/momentum_error"]]
    assert errors == pytest.approx([0.0, 0.002, 0.004], abs=1e-9)


def test_a_bad_momentum_target_costs_only_its_own_members(tmp_path):
    """momentum_target (informational) given as a vector failed the whole ema family every step and, after
    max_failures, disabled it: the frozen/stalled teacher rules went silent (review12 regression)."""
    import metricreg as mr
    from tests.core.eventfiles import scalars

    rng = np.random.default_rng(0)
    student = {"w": rng.standard_normal((4, 4))}
    teacher = {"w": student["w"] + 0.1}
    with mr.Monitor(str(tmp_path), max_failures=2, config={"ema": {"every": 1}}) as mon:
        for step in range(4):
            mon.step(step, model=student, ema_model=teacher, momentum=0.99, momentum_target=np.array([0.9, 0.99]))
        errors = mon.errors
    written = scalars(tmp_path)
    for member in ("rel_distance", "teacher_step", "frozen", "momentum"):
        assert [s for s, _ in written[f"train/ema/{member}"]] == [0, 1, 2, 3], member
    assert "train/ema/momentum_target" not in written and "train/ema/momentum_error" not in written
    error = errors["ema"]
    assert "input 'momentum_target' must hold one value, got shape (2,)" in error["last_message"]
    assert error["count"] == 4 and not error["disabled"]


def test_a_momentum_of_another_framework_is_an_error_naming_the_input(tmp_path):
    """A JAX momentum with a torch model failed the family with "unsupported operand type(s) for *", naming no
    input (review12 regression). A numpy momentum (a host value: read for free) keeps working with torch."""
    import metricreg as mr
    from tests.core.eventfiles import scalars

    torch = pytest.importorskip("torch")
    jnp = pytest.importorskip("jax.numpy")
    student, teacher = torch.nn.Linear(4, 4), torch.nn.Linear(4, 4)
    with mr.Monitor(str(tmp_path / "jax"), config={"ema": {"every": 1}}) as mon:
        mon.step(0, model=student, ema_model=teacher, momentum=jnp.asarray(0.99))
        errors = mon.errors
    assert "input 'momentum' (ArrayImpl) is not of the model's framework (Tensor)" in errors["ema"]["last_message"]
    with mr.Monitor(str(tmp_path / "numpy"), config={"ema": {"every": 1}}) as mon:
        mon.step(0, model=student, ema_model=teacher, momentum=np.float32(0.99))
        assert mon.errors == {}
    assert "train/ema/teacher_step" in scalars(tmp_path / "numpy")
