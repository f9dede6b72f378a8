"""Reference §5 experiments: tiny real torch trainings, monitored by a Monitor with the default built-ins.

Each experiment is a plain training function that calls ``observe(step, **inputs)`` once per
step; the tests pass ``Monitor.step`` (and ``Monitor.eval``), read the event file back with
TensorBoard's EventAccumulator, and assert the reference's suggested values and alerts. The
diagnostics are also recomputed directly on the final model, so a Monitor problem and a
metric problem fail differently.

* §5.1 healthy / dimensional / complete collapse (Linear(16,16), orthogonal init, SGD).
* §5.2 EMA toy: predictor + m = 0.99 (healthy), predictor + frozen teacher (stalled),
  no predictor + m = 0 (collapse through agreement).
* Generalization: a 64-sample training set with label noise (overfits) vs a fresh stream.
"""

from __future__ import annotations

import glob
import math
import os
from collections.abc import Callable
from typing import Any

import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

import metricreg as mr  # noqa: E402
from metricreg.builtins import collapse as C  # noqa: E402
from metricreg.builtins import ema as E  # noqa: E402
from tests.builtins.conftest import values  # noqa: E402

os.environ.setdefault("METRICREG_DISABLE_PLUGIN_AUTOLOAD", "1")
D = 16
Observe = Callable[..., None]


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Tiny models: one intra-op thread is fastest, and avoids spin-waiting on a busy 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _orthogonal_linear(gen: torch.Generator, bias: bool = True) -> torch.nn.Linear:
    lin = torch.nn.Linear(D, D, bias=bias)
    q, r = torch.linalg.qr(torch.randn(D, D, generator=gen))
    with torch.no_grad():
        lin.weight.copy_(q * torch.sign(torch.diagonal(r)))
        if bias:
            lin.bias.zero_()
    return lin


def read_scalars(logdir: str) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    (path,) = glob.glob(os.path.join(logdir, "events.out.tfevents.*"))
    acc = EventAccumulator(path, size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def last(series: dict, tag: str) -> float:
    return series[tag][-1][1]


def at(series: dict, tag: str, step: int) -> float:
    return dict(series[tag])[step]


def find(series: dict, *candidates: str) -> str:
    """The first tag present (the gap family's tag prefix is the Monitor's choice)."""
    for tag in candidates:
        if tag in series:
            return tag
    raise KeyError(f"none of {candidates} in {sorted(series)}")


# --------------------------------------------------------------------- §5.1 collapse regimes

REGIMES = {
    # objective, noise std on dims 8-15 (or all dims), lr, steps
    "healthy": ("infonce", 0.01, False, 0.2, 500),
    "dimensional": ("infonce", 3.0, False, 0.2, 500),
    "complete": ("negcos", 0.5, True, 1.0, 800),
}


def train_ssl(regime: str, observe: Observe, seed: int = 0) -> tuple[torch.nn.Module, torch.Tensor, float]:
    objective, noise, all_dims, lr, steps = REGIMES[regime]
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    data = torch.randn(10_000, D, generator=gen)
    probe = torch.randn(2048, D, generator=gen)
    enc = _orthogonal_linear(gen)
    opt = torch.optim.SGD(enc.parameters(), lr=lr)
    scale = torch.full((D,), noise) if all_dims else torch.cat([torch.zeros(8), torch.full((8,), noise)])
    loss = torch.tensor(float("nan"))
    for step in range(steps + 1):
        # The monitor sees the encoder after `step` updates.
        observe(step, loss=loss, model=enc, optimizer=opt, embeddings=lambda: enc(probe).detach())
        if step == steps:
            break
        x = data[torch.randint(0, len(data), (128,), generator=gen)]
        v1 = x + scale * torch.randn(x.shape, generator=gen)
        v2 = x + scale * torch.randn(x.shape, generator=gen)
        z1, z2 = enc(v1), enc(v2)
        if objective == "infonce":
            logits = F.normalize(z1, dim=1) @ F.normalize(z2, dim=1).T / 0.1
            loss = F.cross_entropy(logits, torch.arange(128))
        else:
            loss = -F.cosine_similarity(z1, z2, dim=1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        loss = loss.detach()
    return enc, probe, float(loss)


@pytest.fixture(scope="module")
def collapse_runs(tmp_path_factory) -> dict[str, dict[str, Any]]:
    root = tmp_path_factory.mktemp("collapse")
    runs = {}
    for regime in REGIMES:
        logdir = str(root / regime)
        with mr.Monitor(logdir) as mon:
            enc, probe, final_loss = train_ssl(regime, mon.step)
        # After close the writer thread has judged every value (inside the block it may lag).
        alerts = [a for a in mon.alerts if a.category == "collapse"]
        errors = mon.errors
        runs[regime] = {
            "series": read_scalars(logdir),
            "direct": values(C.collapse(enc(probe).detach())),
            "loss": final_loss,
            "alerts": alerts,
            "errors": errors,
        }
    return runs


def test_healthy_regime(collapse_runs):
    run = collapse_runs["healthy"]
    s, d = run["series"], run["direct"]
    assert not run["errors"]
    assert last(s, "train/collapse/rankme") > 0.9 * D and last(s, "train/collapse/std") > 0.9
    assert abs(last(s, "train/collapse/mean_cos")) < 0.05 and last(s, "train/collapse/near_zero") == 0
    assert d["rankme"] > 0.9 * D and d["std"] > 0.9
    assert 0.05 < run["loss"] < 0.15  # reference: 0.084–0.087
    assert run["alerts"] == []


def test_dimensional_collapse(collapse_runs):
    run = collapse_runs["dimensional"]
    s, d = run["series"], run["direct"]
    final = last(s, "train/collapse/rankme")
    assert 0.35 * D < final < 0.65 * D
    assert last(s, "train/collapse/std") > 0.9  # std alone does not see dimensional collapse
    assert last(s, "train/collapse/near_zero") >= 6
    assert final < 0.6 * at(s, "train/collapse/rankme", 0)  # the trend: 16 → 8
    assert 0.35 * D < d["rankme"] < 0.65 * D and d["near_zero"] >= 6
    levels = {(a.tag, a.level) for a in run["alerts"]}
    # Not judged: half the directions are gone (variance ~1e-7 of the rest) and the rank halved, but
    # healthy BYOL, DINO and VICReg runs also lose 45-85% of their initial rank and leave 25-50% of
    # their directions below 1e-3 σ₁ (docs/metrics.md), so a rank fall alone is no verdict.
    assert levels == set()


def test_complete_collapse(collapse_runs):
    run = collapse_runs["complete"]
    s, d = run["series"], run["direct"]
    assert last(s, "train/collapse/rankme") < 1.5
    assert last(s, "train/collapse/std") < 0.05
    assert last(s, "train/collapse/mean_cos") > 0.99
    assert d["rankme"] < 1.5 and d["std"] < 0.05 and d["mean_cos"] > 0.99
    assert run["loss"] < -0.999  # a loss at its theoretical minimum is itself a red flag
    critical = {a.tag for a in run["alerts"] if a.level == "critical"}
    assert {"train/collapse/rankme", "train/collapse/std"} <= critical


def test_other_builtins_ran_in_the_ssl_runs(collapse_runs):
    s = collapse_runs["healthy"]["series"]
    for tag in (
        "train/loss",
        "train/optimization/lr",
        "train/optimization/grad_norm",
        "train/optimization/update_ratio",
        "train/stability/spikes/detected",
        "train/performance/step_time_ms",
        "train/system/rss_gb",
    ):
        assert tag in s, tag
    assert last(s, "train/optimization/lr") == pytest.approx(0.2)
    assert 1e-5 < last(s, "train/optimization/update_ratio") < 1e-1


# ------------------------------------------------------------------------------ §5.2 EMA toy


def train_ema(momentum: float, predictor: bool, steps: int, observe: Observe, seed: int = 0) -> dict[str, Any]:
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    data = torch.randn(10_000, D, generator=gen)
    probe = torch.randn(2048, D, generator=gen)
    online = _orthogonal_linear(gen)
    target = _orthogonal_linear(gen)
    target.load_state_dict(online.state_dict())
    for p in target.parameters():
        p.requires_grad_(False)
    head = torch.nn.Linear(D, D)
    with torch.no_grad():
        head.weight.copy_(torch.eye(D) + 0.01 * torch.randn(D, D, generator=gen))
        head.bias.zero_()
    params = list(online.parameters()) + (list(head.parameters()) if predictor else [])
    opt = torch.optim.SGD(params, lr=0.5)

    def pred(z):
        return head(z) if predictor else z

    loss = torch.tensor(float("nan"))
    for step in range(steps + 1):
        # The monitor sees the student after its update and the teacher before its own.
        observe(
            step,
            loss=loss,
            model=online,
            ema_model=target,
            momentum=momentum,
            student_out=lambda: online(probe).detach(),
            teacher_out=lambda: target(probe),
        )
        if step == steps:
            break
        x = data[torch.randint(0, len(data), (128,), generator=gen)]
        v1 = x + 0.5 * torch.randn(x.shape, generator=gen)
        v2 = x + 0.5 * torch.randn(x.shape, generator=gen)
        with torch.no_grad():
            t1, t2 = target(v1), target(v2)
        p1, p2 = pred(online(v1)), pred(online(v2))
        loss = (2 - 2 * F.cosine_similarity(p1, t2, dim=1).mean()) + (2 - 2 * F.cosine_similarity(p2, t1, dim=1).mean())
        opt.zero_grad()
        loss.backward()
        opt.step()
        loss = loss.detach()
        with torch.no_grad():
            for pt, ps in zip(target.parameters(), online.parameters(), strict=True):
                pt.mul_(momentum).add_(ps, alpha=1 - momentum)
    return {"student": values(C.collapse(online(probe).detach())), "online": online, "target": target}


EMA_CONFIGS = {
    "healthy": (0.99, True, 2000),
    "frozen": (1.0, True, 2000),
    "collapse": (0.0, False, 1000),
}


@pytest.fixture(scope="module")
def ema_runs(tmp_path_factory) -> dict[str, dict[str, Any]]:
    root = tmp_path_factory.mktemp("ema")
    runs = {}
    for name, (m, predictor, steps) in EMA_CONFIGS.items():
        logdir = str(root / name)
        with mr.Monitor(logdir) as mon:
            result = train_ema(m, predictor, steps, mon.step)
        result["alerts"] = [a for a in mon.alerts if a.category in ("ema", "collapse")]
        result["series"] = read_scalars(logdir)
        result["direct"] = values(E.ema(result["online"], result["target"], momentum=m))
        runs[name] = result
    return runs


def test_ema_healthy(ema_runs):
    run = ema_runs["healthy"]
    s = run["series"]
    r1000, r2000 = at(s, "train/ema/rel_distance", 1000), at(s, "train/ema/rel_distance", 2000)
    assert 0 < r2000 < 0.05 and r2000 < 1.5 * r1000  # stable (reference: 0.021 → 0.018)
    assert abs(last(s, "train/ema/weight_norm_ratio") - 1) < 0.05
    assert last(s, "train/ema/teacher_step") > 1e-4  # reference: 8e-4
    assert all(v == 0.0 for _, v in s["train/ema/stalled"]) and last(s, "train/ema/collapsing") == 0.0
    assert run["student"]["rankme"] > 15 and run["student"]["std"] > 0.9
    assert not [a for a in run["alerts"] if a.level == "critical"]


def test_ema_frozen_teacher_is_stalled(ema_runs):
    run = ema_runs["frozen"]
    s = run["series"]
    assert at(s, "train/ema/rel_distance", 2000) > at(s, "train/ema/rel_distance", 1000)  # reference: 0.084 → 0.146
    assert last(s, "train/ema/teacher_step") == 0.0
    assert last(s, "train/ema/weight_norm_ratio") > 1.1  # reference: 1.14
    assert [v for _, v in s["train/ema/stalled"]][-5:] == [1.0] * 5
    assert run["direct"]["weight_norm_ratio"] > 1.1
    assert ("train/ema/stalled", "critical") in {(a.tag, a.level) for a in run["alerts"]}


def test_ema_without_predictor_collapses_through_agreement(ema_runs):
    run = ema_runs["collapse"]
    s = run["series"]
    assert last(s, "train/ema/agreement") > 0.999 and last(s, "train/ema/student_std") < 0.1
    assert last(s, "train/ema/collapsing") == 1.0
    assert run["student"]["rankme"] < 1.5  # reference: 1.00 by step 1000
    assert at(s, "train/ema/collapsing", 0) == 0.0
    assert ("train/ema/collapsing", "critical") in {(a.tag, a.level) for a in run["alerts"]}


# --------------------------------------------------------------------------- generalization


def train_classifier(n_train: int | None, observe: Observe, evaluate: Observe, steps: int = 600, seed: int = 0) -> None:
    """4-class problem with 30 % label noise; n_train=None draws a fresh batch every step."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    teacher = torch.randn(D, 4, generator=gen)

    def sample(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.randn(n, D, generator=gen)
        y = (x @ teacher).argmax(1)
        flip = torch.rand(n, generator=gen) < 0.3
        return x, torch.where(flip, torch.randint(0, 4, (n,), generator=gen), y)

    fixed = sample(n_train) if n_train else None
    val_x, val_y = sample(2048)
    net = torch.nn.Sequential(torch.nn.Linear(D, 256), torch.nn.ReLU(), torch.nn.Linear(256, 4))
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    for step in range(steps + 1):
        x, y = fixed if fixed is not None else sample(64)
        logits = net(x)
        loss = F.cross_entropy(logits, y)
        acc = (logits.argmax(1) == y).float().mean()
        observe(step, loss=loss.detach(), accuracy=acc, model=net, optimizer=opt)
        if step % 50 == 0:
            with torch.no_grad():
                val_logits = net(val_x)
                evaluate(
                    step,
                    loss=F.cross_entropy(val_logits, val_y),
                    accuracy=(val_logits.argmax(1) == val_y).float().mean(),
                )
        opt.zero_grad()
        loss.backward()
        opt.step()


@pytest.fixture(scope="module")
def gap_runs(tmp_path_factory) -> dict[str, dict[str, Any]]:
    root = tmp_path_factory.mktemp("gap")
    runs = {}
    for name, n_train in (("overfit", 64), ("healthy", None)):
        logdir = str(root / name)
        with mr.Monitor(logdir) as mon:
            train_classifier(n_train, mon.step, mon.eval)
        alerts = [a for a in mon.alerts if a.category == "generalization"]
        runs[name] = {"series": read_scalars(logdir), "alerts": alerts}
    return runs


def test_overfitting_is_a_generalization_gap(gap_runs):
    s = gap_runs["overfit"]["series"]
    rel = find(s, "gap/loss_relative", "gap/gap/loss_relative")
    acc = find(s, "gap/accuracy", "gap/gap/accuracy")
    assert last(s, rel) > 1.0 and last(s, acc) > 0.2
    assert "val/loss" in s and "val/accuracy" in s
    assert not any(t.endswith("loss_gl") for t in s)  # a classifier: GL is not written
    critical = {a.tag for a in gap_runs["overfit"]["alerts"] if a.level == "critical"}
    assert critical == {acc + "_overfit"}  # the accuracy gap while the eval loss rises holds the verdict


def test_no_gap_on_a_fresh_stream(gap_runs):
    s = gap_runs["healthy"]["series"]
    rel = find(s, "gap/loss_relative", "gap/gap/loss_relative")
    assert abs(last(s, rel)) < 0.25
    assert math.isfinite(last(s, find(s, "gap/accuracy", "gap/gap/accuracy")))
    assert gap_runs["healthy"]["alerts"] == []
