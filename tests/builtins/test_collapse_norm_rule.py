"""The collapse ``norm`` rule: embeddings shrinking to the origin are critical within one due interval.

An invariance-only objective (VICReg with its variance and covariance terms off) is minimised by
shrinking every embedding toward 0; the direction spread (``std``) then falls slowly or not at all,
so the scale is the signal. The same holds when weight decay shrinks the last layer of a projection
head that a cosine loss cannot see the scale of (``byol-head-wd``). The rule's threshold (0.25 × the
run's best) comes from the detection benchmark (``python -m benchmarks.detection.analyse --candidate
norm/best``): healthy runs never fell below 0.50× their best (held-out DINO; 0.58× for the runs tuned
on); one due interval after the onset the ``vicreg-no-varcov`` runs were at 0.073× and 0.047×, the
``byol-head-wd`` runs at 0.148× and 0.144×.
"""

from __future__ import annotations

import os

import pytest

import metricreg as mr
from metricreg.builtins.collapse import HEALTH
from metricreg.health import evaluate_series

torch = pytest.importorskip("torch")
F = torch.nn.functional
os.environ.setdefault("METRICREG_DISABLE_PLUGIN_AUTOLOAD", "1")

STEPS = list(range(0, 2000, 100))
# train/collapse/norm as the detection benchmark recorded it (/work/detruns2, seed 0 of each).
VICREG_NO_VARCOV = [0.686, 20.1, 19.6, 18.0, 17.7, 16.8, 17.1, 16.4, 15.9, 14.9, 14.5,  # onset 1000
                    1.47, 1.03, 0.905, 0.85, 0.835, 0.82, 0.783, 0.779, 0.766]  # fmt: skip
# byol-head-wd (/tmp/d12bench, seed 0): AdamW weight decay 50 on the projection's last layer from 1000.
BYOL_HEAD_WD = [2.24, 3.16, 3.67, 4.15, 4.26, 4.23, 4.22, 4.23, 4.15, 4.1, 3.99,  # onset 1000
                0.629, 0.581, 0.481, 0.415, 0.429, 0.369, 0.363, 0.366, 0.34]  # fmt: skip
DINO = [0.72, 1.18, 1.55, 2.19, 3.13, 2.6, 2.1, 2.22, 2.85, 3.85,
        2.83, 2.19, 3.45, 3.36, 2.04, 3.33, 3.04, 2.24, 3.01, 1.92]  # fmt: skip


def test_a_tenfold_shrink_is_critical_at_the_first_point_after_it():
    verdict = evaluate_series("train/collapse/norm", STEPS, VICREG_NO_VARCOV, HEALTH["norm"])
    assert [(a.level, a.first_step, a.category) for a in verdict.alerts] == [("critical", 1100, "collapse")]
    assert verdict.alerts[0].threshold == pytest.approx(5.025)  # 0.25 × the best (20.1)


def test_a_sevenfold_shrink_of_a_decayed_projection_head_is_critical_at_the_first_point_after_it():
    # Directions are kept (collapse/std rises), only the scale goes: 0.148× the best one interval on.
    verdict = evaluate_series("train/collapse/norm", STEPS, BYOL_HEAD_WD, HEALTH["norm"])
    assert [(a.level, a.first_step, a.category) for a in verdict.alerts] == [("critical", 1100, "collapse")]


def test_a_noisy_healthy_scale_stays_quiet():
    # DINO-style backbone features: the norm swings between 0.5× and 1× its best, step to step.
    assert evaluate_series("train/collapse/norm", STEPS, DINO, HEALTH["norm"]).alerts == []


# --- a real training run: VICReg on 16-d data, variance and covariance terms off from ONSET ---------

D, ONSET, STEPS_RUN = 16, 300, 500


def _vicreg(observe, switch_off_at: int | None, seed: int = 0) -> None:
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    data = torch.randn(4096, D, generator=gen)
    probe = torch.randn(512, D, generator=gen)
    enc = torch.nn.Linear(D, D, bias=False)  # no bias: nothing holds the cloud away from the origin
    opt = torch.optim.SGD(enc.parameters(), lr=0.5)
    loss = torch.tensor(float("nan"))
    for step in range(STEPS_RUN + 1):
        observe(step, loss=loss, model=enc, optimizer=opt, embeddings=lambda: enc(probe).detach())
        if step == STEPS_RUN:
            break
        x = data[torch.randint(0, len(data), (128,), generator=gen)]
        z1 = enc(x + 0.5 * torch.randn(x.shape, generator=gen))
        z2 = enc(x + 0.5 * torch.randn(x.shape, generator=gen))
        loss = F.mse_loss(z1, z2)
        if switch_off_at is None or step < switch_off_at:
            for z in (z1, z2):
                loss = loss + F.relu(1 - torch.sqrt(z.var(dim=0) + 1e-4)).mean()  # VICReg's variance hinge
        opt.zero_grad()
        loss.backward()
        opt.step()
        loss = loss.detach()


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    out = {}
    try:
        for name, off in (("healthy", None), ("no_var", ONSET)):
            with mr.Monitor(str(tmp_path_factory.mktemp(name))) as mon:
                _vicreg(mon.step, off)
            # After close the writer thread has judged every value (inside the block it may lag).
            out[name] = [a for a in mon.alerts if a.category == "collapse"]
    finally:
        torch.set_num_threads(before)
    return out


def test_vicreg_with_its_variance_term_raises_no_collapse_alert(runs):
    assert runs["healthy"] == []


def test_vicreg_without_its_variance_term_is_critical_within_one_due_interval(runs):
    alerts = runs["no_var"]
    assert alerts, "the shrinking embeddings raised no collapse alert"
    first = min(alerts, key=lambda a: a.first_step)
    assert first.tag == "train/collapse/norm" and first.level == "critical"
    assert ONSET < first.first_step <= ONSET + 100  # never before onset; at the first due point after it
