"""The seed-parity examples: every signal a seed system's hand-written logger wrote has a tag,
and the healthy run they train raises no alert.

Each table maps the seed's own name for a signal (docs in ../shared/seeds/, summarised in
docs/seeds.md) to the metricreg tag that carries it, a built-in's or one the example logs with
``mon.log``. A tag is a scalar, histogram or image tag of the run. Signals only written on CUDA
(GPU memory, NVML utilisation) are listed in docs/seeds.md and not here: the examples run on CPU.
The examples run in this process (``main()``), each once per module, into a tmp logdir.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from metricreg.reader import read_logdir
from tests.examples.test_examples import load_example

# --- the tables: seed signal -> metricreg tag ---------------------------------------------------

HJEPA = {  # seeds 001 (MetricsLogger) and 002 (HJEPATensorBoardLogger)
    "train/loss": "train/loss",
    "train/lr": "train/optimization/lr",
    "learning_rate/base_lr": "train/optimization/lr",
    "train/ema_momentum": "train/ema/momentum",
    "ema/momentum_current": "train/ema/momentum",
    "ema/momentum_target": "train/ema/momentum_target",  # the schedule's value at the step (seed: its end value)
    "ema/avg_parameter_divergence": "train/ema/rel_distance",
    "ema/weight_magnitude_ratio": "train/ema/weight_norm_ratio",
    "val/loss": "val/loss",
    "train_epoch/loss": "train/train_epoch/loss",  # mon.log
    "train/context_std": "train/collapse_scale/level0/dim_std_mean",
    "train/target_std": "train/collapse_scale/target/dim_std_mean",
    "train/context_norm": "train/collapse/level0/norm",
    "train/target_norm": "train/collapse/target/norm",
    "train/context_rank": "train/collapse/level0/rankme",
    "train/target_rank": "train/collapse/target/rankme",
    "loss/total": "train/loss",
    "loss/unweighted": "train/loss/unweighted",  # mon.log
    **{f"loss/h{i}": f"train/losses/h{i}" for i in range(3)},
    **{f"loss/contribution_h{i}": f"train/losses/h{i}_share" for i in range(3)},
    **{f"collapse/level{i}_mean_std_per_dim": f"train/collapse_scale/level{i}/dim_std_mean" for i in range(3)},
    **{f"collapse/level{i}_min_std_per_dim": f"train/collapse_scale/level{i}/dim_std_min" for i in range(3)},
    **{f"collapse/level{i}_effective_rank": f"train/collapse/level{i}/effective_rank" for i in range(3)},
    **{f"collapse/level{i}_mean_similarity": f"train/collapse/level{i}/mean_cos" for i in range(3)},
    **{f"prediction/level0_cosine_sim_{s}": f"train/levels/level0/cosine/{s}" for s in ("mean", "std", "min", "max")},
    **{
        f"prediction/level{i}_cosine_sim_{s}": f"train/levels/level{i}/cosine/{s}"
        for i in (1, 2)
        for s in ("mean", "std")
    },
    **{f"prediction/level{i}_normalized_mse": f"train/levels/level{i}/nmse" for i in range(3)},
    "gradient_flow/global_norm": "train/optimization/grad_norm",
    "gradient_flow/context_encoder_mean": "train/optimization/grad_flow/context_encoder",
    "gradient_flow/predictor_mean": "train/optimization/grad_flow/predictor",
    "gradient/global_norm_before_clip": "train/optimization/grad_norm",
    "gradient/global_norm_after_clip": "train/gradient/global_norm_after_clip",  # mon.log
    "gradient/clipping_percentage": "train/optimization/clip_fraction",
    "stability/loss_smoothness": "train/stability/spikes/rate",
    "stability/loss_trend_slope": "train/stability/loss_trend",
    "stability/loss_spike_ratio": "train/stability/spikes/ratio",
    "performance/forward_time_ms": "train/performance/forward_ms",
    "performance/backward_time_ms": "train/performance/backward_ms",
    "performance/samples_per_second": "train/performance/samples_per_s",
    **{f"hierarchy/level{i}_feat_mean": f"train/hierarchy/level{i}_feat_mean" for i in range(3)},  # mon.log
    **{f"hierarchy/level{i}_feat_std": f"train/collapse_scale/level{i}/dim_std_mean" for i in range(3)},
    **{f"hierarchy/level{i}_num_patches": f"train/hierarchy/level{i}_num_patches" for i in range(3)},  # mon.log
    "masking/mask_ratio": "train/masking/ratio",
    "masking/num_masked_patches": "train/masking/num_masked",
    "masking/num_unmasked_patches": "train/masking/num_unmasked",
    "gradients/{param_name} (histograms)": "train/optimization/grads",
    "weights/{param_name} (histograms)": "train/optimization/weights",
}

NERV = {  # seed 003
    "Train/PSNR": "train/prediction/psnr",
    "Train/learning_rate": "train/optimization/lr",
    "Train/Loss/pixel_loss": "train/losses/pixel",
    "Train/Loss/clip_loss": "train/Loss/clip_loss",  # mon.log: unweighted
    "Train/Loss/total_loss": "train/loss",
    "Train/Loss/clip_loss_weighted": "train/losses/clip_weighted",
    "Train/Loss/pixel_to_clip_ratio": "train/losses/pixel_share",  # ratio = share / (1 - share)
    "Train/clip_loss_active": "train/warmup",  # inverted
    "Train/Gradients/total_norm": "train/optimization/grad_norm",
    "Train/Gradients/rgb_head_norm": "train/optimization/grad_flow/rgb_head",
    "Train/Gradients/clip_head_norm": "train/optimization/grad_flow/clip_head",
    "Train/Gradients/decoder_norm": "train/optimization/grad_flow/decoder",
    "Train/Gradients/rgb_to_clip_ratio": "train/optimization/heads/grad_ratio",  # max / min of the two heads
    "Train_Batch/PSNR": "train/prediction/psnr",
    "Train_Batch/pixel_loss": "train/losses/pixel",
    "Train_Batch/clip_loss": "train/losses/clip_weighted",
    "Train_Batch/total_loss": "train/loss",
    **{
        f"Model/Params/{h}_{s}": f"train/optimization/heads/{h}/param_{s}"
        for h in ("rgb_head", "clip_head")
        for s in ("mean", "std")
    },
    "Eval/Frame/train_psnr": "train/prediction/psnr",  # full-batch training: the training frames themselves
    "Eval/Frame/val_psnr": "val/psnr",
    "Eval/Frame/train_clip_sim": "train/prediction/cosine/mean",
    "Eval/Frame/val_clip_sim": "val/clip_sim",
    "Eval/Frame/train_clip_dist": "train/Loss/clip_loss",  # 1 - clip_sim
    "Eval/Frame/val_clip_dist": "val/clip_sim",  # 1 - val clip_sim
    "Eval/PSNR_Stats/train_std": "train/prediction/psnr_spread/std",
    "Eval/PSNR_Stats/train_min": "train/prediction/psnr_spread/min",
    "Eval/PSNR_Stats/train_max": "train/prediction/psnr_spread/max",
    "Eval/PSNR_Stats/val_std": "val/psnr_std",
    "Eval/PSNR_Stats/val_min": "val/psnr_min",
    "Eval/PSNR_Stats/val_max": "val/psnr_max",
    "Eval/Patch/train_psnr_std": "train/patch_psnr_std",  # mon.log
    "Eval/Patch/val_psnr_std": "val/psnr_std",  # per frame here (NeRV's val frames)
    "Eval/Patch/train_clip_sim_std": "train/prediction/cosine/std",
    "Eval/Patch/val_clip_sim_std": "val/clip_sim_std",
    "Eval/Gap/psnr_gap": "gap/psnr",
    "Eval/Gap/clip_sim_gap": "gap/clip_sim",
    "Eval/Histogram/train_psnr_distribution": "train/prediction/psnr_hist",
    **{
        f"Eval/Info/num_{k}": f"train/Info/num_{k}"
        for k in ("train_frames", "val_frames", "train_patches", "val_patches")
    },
}

MULTIMODAL = {  # seed 004
    "loss/train/total": "train/loss",
    **{f"loss/train/{k}": f"train/losses/{k}" for k in ("text_image", "text_audio", "image_audio", "global_modal")},
    "loss/val/total": "val/loss",
    **{f"loss/val/{k}": f"val/{k}_loss" for k in ("text_image", "text_audio", "image_audio", "global_modal")},
    **{f"embeddings/{m}/mean": f"train/embeddings/{m}/mean" for m in ("text", "image", "audio", "global")},  # mon.log
    **{f"embeddings/{m}/std": f"train/collapse_scale/{m}/dim_std_mean" for m in ("text", "image", "audio", "global")},
    **{f"embeddings/{m}/norm": f"train/collapse/{m}/norm" for m in ("text", "image", "audio", "global")},
    "optimization/lr": "train/optimization/lr",
    "optimization/grad_norm": "train/optimization/grad_norm",
    **{
        f"alignment/{p}/{s}": f"train/prediction/paired/{p}/{m}"
        for p in ("text_vs_image", "text_vs_audio", "image_vs_audio")
        for s, m in (("diagonal_similarity", "diag"), ("mean_similarity", "offdiag"))
    },
    **{
        f"similarity matrix {p.replace('_vs_', ' vs ')} (image)": f"train/prediction/similarity/{p}"
        for p in ("text_vs_image", "text_vs_audio", "image_vs_audio")
    },
    **{
        f"feature histograms {m} ({s})": f"train/features/{m}/{s}"  # issue 12: feature histograms
        for m in ("text", "image", "audio")
        for s in ("values", "norms")
    },
    "epoch mean of the training loss": "train/loss/train/epoch_mean",  # mon.log
    "epoch std of the training loss": "train/loss/train/epoch_std",  # mon.log
    "weight histograms": "train/optimization/weights",
    "gradient histograms": "train/optimization/grads",
}

EXAMPLES = {"hierarchical_jepa": HJEPA, "dual_head_nerv": NERV, "multimodal_contrastive": MULTIMODAL}


def run_tags(path: str) -> set[str]:
    """Every scalar, histogram and image tag of one run, read with TensorBoard's own loader."""
    from tensorboard.backend.event_processing import event_accumulator as ea

    acc = ea.EventAccumulator(path, size_guidance={ea.SCALARS: 1, ea.HISTOGRAMS: 1, ea.IMAGES: 1, ea.TENSORS: 1})
    acc.Reload()
    tags = acc.Tags()
    return {*tags[ea.SCALARS], *tags[ea.HISTOGRAMS], *tags[ea.IMAGES]}


@pytest.fixture(scope="module", params=sorted(EXAMPLES))
def trained(request, tmp_path_factory) -> tuple[str, Path]:
    """(example name, logdir) after the example's default run (a few seconds each)."""
    pytest.importorskip("torch")
    pytest.importorskip("sklearn")
    name = request.param
    logdir = tmp_path_factory.mktemp(name)
    assert load_example(name).main(["--logdir", str(logdir / "run")]) == 0
    return name, logdir


@pytest.mark.slow
def test_every_seed_signal_has_a_tag(trained):
    name, logdir = trained
    data = read_logdir(logdir)["run"]
    tags = run_tags(data.path)
    missing = {signal: tag for signal, tag in EXAMPLES[name].items() if tag not in tags}
    assert not missing, f"{name}: seed signals without their tag: {missing}"


@pytest.mark.slow
def test_healthy_run_raises_no_alert(trained):
    name, logdir = trained
    verdict = read_logdir(logdir)["run"].evaluate()
    assert verdict.alerts == [], f"{name}: {[(a.tag, a.level, a.first_step, a.value) for a in verdict.alerts]}"
    assert verdict.errors == [], f"{name}: metric errors {verdict.errors}"
    assert verdict.status == "ok"


@pytest.mark.slow
def test_per_key_inputs_fan_out(trained):
    """The dict inputs are the point of the examples: one family per level / modality, shares summing to 1."""
    name, logdir = trained
    series = read_logdir(logdir)["run"].series
    keys = {
        "hierarchical_jepa": ("level0", "level1", "level2", "target"),
        "multimodal_contrastive": ("text", "image", "audio", "global"),
        "dual_head_nerv": (),
    }[name]
    for key in keys:
        assert f"train/collapse/{key}/rankme" in series
    shares = [
        values for tag, (_, values, _) in series.items() if tag.startswith("train/losses/") and tag.endswith("_share")
    ]
    assert len(shares) >= 2
    assert sum(s[-1] for s in shares) == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_bad_step_count_names_the_flag(name, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        load_example(name).main(["--logdir", str(tmp_path / "run"), "--steps", "0"])
    assert exit_info.value.code == 2
    assert "--steps" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()  # rejected before a Monitor opened the run


@pytest.mark.slow
def test_built_ins_read_what_the_seed_computed_by_hand(trained):
    """The built-ins that replaced hand-written lines give the seed's numbers on the example's own run."""
    name, logdir = trained
    series = read_logdir(logdir)["run"].series
    if name == "hierarchical_jepa":  # 8 of 16 patches masked in every image; the EMA update follows its schedule
        assert set(series["train/masking/ratio"][1]) == {0.5}
        assert set(series["train/masking/num_masked"][1]) == {8.0}
        assert set(series["train/masking/num_unmasked"][1]) == {8.0}
        assert max(series["train/ema/momentum_error"][1]) < 1e-12
        assert series["train/ema/momentum_target"][1][-1] > series["train/ema/momentum_target"][1][0]  # cosine ramp
        assert {f"train/levels/level{i}/nmse" for i in range(3)} <= set(series)
    elif name == "dual_head_nerv":  # the CLIP head has no gradient (and no ratio) before its warm-up ends
        steps, _, _ = series["train/optimization/heads/clip_head/grad_norm"]
        assert min(steps) >= load_example(name).WARMUP
        assert min(series["train/optimization/heads/grad_ratio"][1]) >= 1.0
        assert series["train/optimization/heads/rgb_head/param_std"][1][-1] > 0.0
