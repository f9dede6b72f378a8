"""Rules earned on the detection benchmark for issue 12's signals, through a real Monitor.

Each rule fires on the failure its benchmark scenario injects and stays quiet on the nearest
healthy state (numbers: docs/metrics.md, "Detection benchmark"):

* ``optimization/heads/grad_ratio`` critical above 1e12: a head that receives no gradient at all
  (``two-head-off``); a large but finite imbalance is not judged.
* ``gap/psnr`` critical above 5 dB for 3 evals (``autoencoder-overfit-*``).
* ``prediction/paired/margin`` critical below 0.25× the run's best for 2 points
  (``paired-shuffle``: matched pairs no longer match); ≈ 0 at initialisation raises nothing.
"""

from __future__ import annotations

import numpy as np

import metricreg as mr
from metricreg.builtins import generalization as G
from metricreg.builtins import heads as H
from metricreg.builtins import prediction as P
from tests.builtins.test_heads import two_heads

# --- heads: a head with no gradient -------------------------------------------------------------


def _run_heads(tmp_path, cut_at: int | None, factor: float) -> list:
    """A Monitor fed two heads for 501 steps; from ``cut_at`` the clip head's gradient is scaled by ``factor``."""
    params, grads = two_heads()
    cut = {**grads, "clip_head": {n: factor * g for n, g in grads["clip_head"].items()}}
    with mr.Monitor(str(tmp_path)) as mon:
        for step in range(501):
            g = cut if cut_at is not None and step >= cut_at else grads
            mon.step(step, model=params, grads=g, heads={"rgb": "rgb_head", "clip": "clip_head"})
    return [a for a in mon.alerts if a.tag.startswith("train/optimization/heads/")]


def test_a_head_that_gets_no_gradient_is_critical_at_the_first_due_point(tmp_path):
    # The clip head's loss weight drops to 0 at step 250: its gradient is exactly 0 from there.
    (alert,) = _run_heads(tmp_path, cut_at=250, factor=0.0)
    assert (alert.tag, alert.category) == ("train/optimization/heads/grad_ratio", "optimization")
    assert (alert.level, alert.first_step) == ("critical", 300)


def test_a_large_but_finite_imbalance_between_heads_raises_nothing(tmp_path):
    # 1e-6 × the gradient: a ratio of ~2e6, beyond any healthy run of the benchmark (≤ 7e3) yet not zero.
    # A head that merely learns slowly is not told apart from one that has fit its data: no rule.
    assert _run_heads(tmp_path, cut_at=250, factor=1e-6) == []


def test_only_grad_ratio_is_judged_the_per_head_members_stay_informational():
    (metric,) = H.METRICS
    assert set(metric.health) == {"", "grad_ratio"}
    assert metric.health["grad_ratio"].critical_above == 1e12
    informational = metric.health[""]
    assert informational.category == "optimization" and not informational.has_thresholds


# --- gap/psnr in dB -------------------------------------------------------------------------------


def _psnr_run(tmp_path, eval_psnr: list[float]) -> list:
    """A Monitor fed a training PSNR of 25 dB every step and ``eval_psnr`` at an eval every 50 steps."""
    with mr.Monitor(str(tmp_path)) as mon:
        for step in range(50 * len(eval_psnr)):
            mon.step(step, loss=0.01, psnr=25.0)
            if step % 50 == 49:
                mon.eval(loss=0.02, psnr=eval_psnr[step // 50])
    return [a for a in mon.alerts if a.tag == "gap/psnr"]


def test_a_psnr_gap_above_5_db_for_3_evals_is_critical_overfitting(tmp_path):
    # A 64-image autoencoder of the detection benchmark: the gap passes 6.6 dB by its best-validation eval.
    (alert,) = _psnr_run(tmp_path, [24.0, 23.0, 19.5, 19.0, 18.5, 18.0])
    assert (alert.level, alert.category, alert.first_step) == ("critical", "generalization", 249)


def test_a_psnr_gap_of_a_few_db_raises_nothing(tmp_path):
    # Healthy benchmark autoencoders stay below 1.7 dB (held-out 3,000-step ones: 2.4-2.8 dB); 4 dB is quiet.
    assert _psnr_run(tmp_path, [24.0, 23.0, 21.0, 21.0, 21.0, 21.0]) == []
    assert G.HEALTH["psnr"].critical_above == 5.0 and G.HEALTH["psnr"].persistence == 3
    assert not G.HEALTH["loss"].has_thresholds  # the other raw gaps stay informational


# --- paired embeddings: alignment margin ----------------------------------------------------------


def _paired_run(tmp_path, shuffle_at: int | None, steps: int = 801) -> list:
    """Two 'modalities' that align after step 100 (b = a + noise); from ``shuffle_at`` b's rows are permuted."""
    rng = np.random.default_rng(0)
    with mr.Monitor(str(tmp_path)) as mon:
        for step in range(steps):
            a = rng.standard_normal((128, 16))
            if step < 100:  # initialisation: the towers are unrelated, margin ≈ 0
                b = rng.standard_normal((128, 16))
            else:
                b = a + 0.5 * rng.standard_normal((128, 16))
                if shuffle_at is not None and step >= shuffle_at:
                    b = b[rng.permutation(128)]
            mon.step(step, paired_embeddings=(a, b))
    return [a for a in mon.alerts if a.tag.startswith("train/prediction/paired/")]


def test_misaligned_pairs_are_critical_within_one_due_interval(tmp_path):
    (alert,) = _paired_run(tmp_path, shuffle_at=500)
    assert (alert.tag, alert.category) == ("train/prediction/paired/margin", "prediction")
    assert (alert.level, alert.first_step) == ("critical", 600)  # points 500 and 600 (persistence 2)


def test_an_unaligned_start_then_alignment_raises_nothing(tmp_path):
    assert _paired_run(tmp_path, shuffle_at=None) == []
    assert P.HEALTH_PAIRED["margin"].critical_below_frac == 0.25


def test_a_head_whose_term_joins_after_a_warm_up_raises_nothing_with_the_warmup_flag(tmp_path):
    """HNeRV's CLIP term has weight 0 for the first 250 steps: a zero gradient by design, not a failure."""
    params, grads = two_heads()
    off = {**grads, "clip_head": {n: 0.0 * g for n, g in grads["clip_head"].items()}}
    heads = {"rgb": "rgb_head", "clip": "clip_head"}
    with mr.Monitor(str(tmp_path / "flagged")) as mon:
        for step in range(501):
            mon.step(step, model=params, grads=off if step < 250 else grads, heads=heads, warmup=step < 250)
    assert [a for a in mon.alerts if a.tag.startswith("train/optimization/heads/")] == []
    assert H.head_stats(heads, grads=off, model=params, warmup=True).get("grad_ratio") is None
    assert H.head_stats(heads, grads=off, model=params, warmup=False)["grad_ratio"] > 1e12


def test_every_pair_of_three_modalities_is_judged_by_the_margin_rule(tmp_path):
    """Text/image/audio: from step 500 the audio rows no longer match; only the audio pairs turn critical."""
    rng = np.random.default_rng(1)
    with mr.Monitor(str(tmp_path)) as mon:
        for step in range(801):
            text = rng.standard_normal((128, 16))
            image = text + 0.5 * rng.standard_normal((128, 16))
            audio = text + 0.5 * rng.standard_normal((128, 16))
            if step >= 500:
                audio = audio[rng.permutation(128)]
            mon.step(step, paired_embeddings={"text": text, "image": image, "audio": audio})
    critical = sorted(a.tag for a in mon.alerts if a.level == "critical")
    assert critical == [
        "train/prediction/paired/image_vs_audio/margin",
        "train/prediction/paired/text_vs_audio/margin",
    ]
    assert all(a.first_step == 600 for a in mon.alerts if a.level == "critical")
    spec = next(m for m in P.METRICS if m.name == "prediction/paired")
    assert spec.health_for("text_vs_image/top1") is P.HEALTH_PAIRED["top1"]  # every member shows in the tab
