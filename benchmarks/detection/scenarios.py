"""The benchmark's scenarios: a training loop, its settings and its ground truth.

A scenario is *healthy* (``category=None``: no alert of any level is expected)
or *broken* in one health category from an onset step. Onsets are fixed
injection steps, except for overfitting, whose onset is read from the run
itself (``onset_from="best_val_step"``): the eval step with the lowest
validation loss, i.e. the point from which continuing to train makes the model
worse on held-out data. Before that step no alert is legitimate.

Held-out scenarios (``holdout=True``) use other architectures, optimisers, data
and cadences; rules must pass them too but must not be tuned on them.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from benchmarks.detection.outcome import OutcomeCheck
from benchmarks.detection.training import LOOPS

HEALTHY = "healthy"

#: The schedule of the metric responsible for each category at the defaults: the
#: "one due interval" a broken run should be detected within.
DUE_INTERVAL = {"collapse": 100, "ema": 100, "stability": 100, "optimization": 100, "prediction": 100}


@dataclass(frozen=True)
class Scenario:
    """One row of the results table: a loop, its keyword arguments, its ground truth and its seeds."""

    name: str
    group: str
    loop: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    category: str | None = None  # None: healthy
    onset: int | None = None  # broken: the injection step
    onset_from: str | None = None  # broken: an ``info`` key that holds the onset (overfitting)
    seeds: int = 5
    holdout: bool = False
    quick_steps: int | None = None  # length in --quick mode (None: not in the quick subset)
    note: str = ""
    outcome: OutcomeCheck | None = None  # broken only if the recorded evidence says so; else "stressed"

    def __post_init__(self) -> None:
        if self.loop not in LOOPS:
            raise ValueError(f"scenario {self.name!r}: unknown loop {self.loop!r} (known: {', '.join(LOOPS)})")
        if self.category is None and (self.onset is not None or self.onset_from):
            raise ValueError(f"scenario {self.name!r}: a healthy scenario has no onset")
        if self.category is not None and (self.onset is None) == (self.onset_from is None):
            raise ValueError(f"scenario {self.name!r}: a broken scenario needs exactly one of onset / onset_from")
        if self.outcome is not None and self.category is None:
            raise ValueError(f"scenario {self.name!r}: an outcome check needs an injected fault (category, onset)")

    @property
    def healthy(self) -> bool:
        return self.category is None

    @property
    def truth(self) -> str:
        """``healthy`` or ``category@onset`` (``category@best-val`` when read from the run)."""
        if self.healthy:
            return HEALTHY
        return f"{self.category}@{self.onset if self.onset is not None else 'best-val'}"

    @property
    def train(self) -> Callable[..., dict[str, Any]]:
        return LOOPS[self.loop]

    def scaled(self, steps: int) -> Scenario:
        """This scenario shortened to ``steps`` (onset and injection scaled alike), for --quick."""
        full = int(self.kwargs.get("steps", 2000))
        kwargs = dict(self.kwargs, steps=steps)
        onset = self.onset
        if kwargs.get("inject_at"):
            kwargs["inject_at"] = int(kwargs["inject_at"] * steps / full) // 100 * 100
            onset = kwargs["inject_at"]
        return Scenario(**{**self.__dict__, "kwargs": kwargs, "onset": onset})


def _byol(name: str, inject: str | None = None, at: int | None = None, category: str | None = None, **kw: Any):
    kwargs = {"steps": 2000, **kw}
    if inject:
        kwargs.update(inject=inject, inject_at=at)
    return dict(name=name, loop="byol", kwargs=kwargs, category=category, onset=at if inject else None)


def _lr_kill(
    name: str,
    loop: str,
    kw: dict,
    outcome: OutcomeCheck,
    what: str,
    at: int = 1000,
    factor: float = 100.0,
    **extra: Any,
) -> Scenario:
    """A held-out learning-rate injection into a loop's default run, broken only by outcome."""
    kwargs = {"steps": 2000, **kw, **extra, "inject": "lr10", "inject_at": at, "lr_factor": factor}
    return Scenario(
        name,
        "holdout",
        loop,
        kwargs,
        category="stability",
        onset=at,
        seeds=2,
        holdout=True,
        note=f"{what} lr ×{factor:g} at step {at}",
        outcome=outcome,
    )


SCENARIOS: list[Scenario] = [
    # --- joint-embedding SSL with an EMA teacher (BYOL), embeddings = the online projection ------
    Scenario(**_byol("byol"), group="ssl-byol", quick_steps=600),
    Scenario(
        **_byol("byol-collapse-start", "collapse", 0, "collapse"),
        group="ssl-byol",
        seeds=2,
        note="no predictor, no stop-gradient from step 0",
    ),
    Scenario(
        **_byol("byol-collapse-mid", "collapse", 1000, "collapse"),
        group="ssl-byol",
        seeds=2,
        quick_steps=600,
        note="predictor and stop-gradient removed at step 1000",
    ),
    Scenario(
        **_byol("byol-momentum1", "momentum1", 1000, "ema"),
        group="ssl-byol",
        seeds=2,
        note="EMA momentum 1.0 (frozen teacher) from step 1000",
    ),
    Scenario(
        **_byol("byol-lr10", "lr10", 1000, "stability"),
        group="ssl-byol",
        seeds=2,
        note="learning rate ×10 at step 1000",
        outcome=OutcomeCheck("byol"),
    ),
    Scenario(
        **_byol("byol-lr-kill", "lr10", 1000, "stability", lr_factor=100.0),
        group="ssl-byol",
        seeds=2,
        quick_steps=600,
        note="learning rate ×100 at step 1000 (Adam 1e-3 → 0.1): the weights jump 10× their distance from "
        "init in one interval, RankMe/d 0.47 → 0.13, k-NN probe below an untrained encoder's. Labelled "
        "stability like every other lr injection: the fault is the step size, the rank fall its symptom",
        outcome=OutcomeCheck("byol"),
    ),
    # --- VICReg ------------------------------------------------------------------------------------
    Scenario("vicreg", "ssl-vicreg", "vicreg", {"steps": 2000}),
    Scenario(
        "vicreg-no-varcov",
        "ssl-vicreg",
        "vicreg",
        {"steps": 2000, "inject": "no_varcov", "inject_at": 1000},
        category="collapse",
        onset=1000,
        seeds=2,
        note="variance and covariance weights set to 0 at step 1000",
    ),
    # --- supervised classifiers on digits ----------------------------------------------------------
    Scenario(
        "mlp-regularised",
        "supervised",
        "classifier",
        {"steps": 2000, "dropout": 0.2, "weight_decay": 1e-2, "optimizer": "adamw"},
        quick_steps=600,
    ),
    Scenario(
        "mlp-interpolating",
        "supervised",
        "classifier",
        {"steps": 3000},
        note="no regularisation, long: training loss → ~0, validation accuracy stays high",
    ),
    Scenario(
        "mlp-overfit-100",
        "supervised",
        "classifier",
        {"steps": 2000, "train_size": 100, "eval_every": 50},
        category="generalization",
        onset_from="best_val_step",
        seeds=2,
        note="100 training samples; onset = eval step of the lowest validation loss",
    ),
    Scenario(
        "mlp-lr10",
        "supervised",
        "classifier",
        {"steps": 2000, "optimizer": "sgd", "lr": 0.05, "inject": "lr10", "inject_at": 1000},
        category="stability",
        onset=1000,
        seeds=2,
        note="SGD lr 0.05 → 0.5 at step 1000",
    ),
    Scenario(
        "mlp-nan",
        "supervised",
        "classifier",
        {"steps": 2000, "inject": "nan", "inject_at": 1000},
        category="stability",
        onset=1000,
        seeds=2,
        quick_steps=600,
        note="one NaN pixel in the batch of step 1000: the weights turn NaN",
    ),
    # --- README's quickstart: penultimate features as embeddings -------------------------------------
    Scenario(
        "quickstart",
        "quickstart",
        "classifier",
        {"steps": 2000, "embeddings": True, "train_accuracy": False, "eval_every": 200, "width": 64},
        note="mon.step(loss, model, optimizer, embeddings=penultimate); mon.eval(loss, accuracy) every 200",
    ),
    # --- reconstruction judged by PSNR ---------------------------------------------------------------
    Scenario("autoencoder", "reconstruction", "autoencoder", {"steps": 2000}),
    Scenario(
        "autoencoder-overfit-64",
        "reconstruction",
        "autoencoder",
        {"steps": 2000, "train_size": 64, "bottleneck": 32, "eval_every": 50},
        category="generalization",
        onset_from="best_val_step",
        seeds=2,
        note="64 training images; onset = eval step of the lowest validation loss",
    ),
    # --- multi-task: a shared trunk, a classification head and a reconstruction head (issue 12) ----
    Scenario(
        "two-head",
        "multi-head",
        "two_head",
        {"steps": 2000},
        note="digits: cross-entropy + 10 × MSE of a decoder head, Adam; losses= and heads= as the seeds log them",
    ),
    Scenario("two-head-sgd", "multi-head", "two_head", {"steps": 2000, "optimizer": "sgd", "lr": 0.05}, seeds=3),
    Scenario(
        "two-head-off",
        "multi-head",
        "two_head",
        {"steps": 2000, "inject": "head_off", "inject_at": 1000},
        category="optimization",
        onset=1000,
        seeds=2,
        quick_steps=600,
        note="the decoder's loss weight set to 0 at step 1000: the decoder stops learning",
    ),
    Scenario(
        "two-head-sgd-weak",
        "multi-head",
        "two_head",
        {"steps": 2000, "optimizer": "sgd", "lr": 0.05, "inject": "head_off", "inject_at": 1000, "off_weight": 1e-3},
        category="optimization",
        onset=1000,
        seeds=2,
        note="SGD, the decoder's loss weight 10 → 0.001 at step 1000: its updates shrink 10,000×",
    ),
    # --- norm collapse: embeddings shrink to the origin, directions kept (issue 12) -----------------
    Scenario(
        **_byol("byol-head-wd", "head_wd", 1000, "collapse"),
        group="norm-collapse",
        seeds=2,
        note="AdamW weight decay 50 on the projection's last layer from step 1000 (the cosine loss is blind to scale)",
    ),
    # --- two modalities aligned contrastively, pairs misaligned mid-run (issue 12) ------------------
    Scenario(
        "paired",
        "multimodal",
        "paired",
        {"steps": 2000},
        note="top / bottom half of each digit as two modalities, symmetric InfoNCE (τ = 0.1), Adam",
    ),
    Scenario(
        "paired-shuffle",
        "multimodal",
        "paired",
        {"steps": 2000, "inject": "shuffle", "inject_at": 1000},
        category="prediction",
        onset=1000,
        seeds=2,
        quick_steps=600,
        note="the second modality's batch permuted from step 1000: pairs no longer match",
    ),
    # --- held out: other architectures, optimisers, data and cadences (never tuned on) -------------
    Scenario(
        "cnn-sgd",
        "holdout",
        "classifier",
        {
            "steps": 1500,
            "arch": "cnn",
            "optimizer": "sgd",
            "lr": 0.1,
            "weight_decay": 5e-4,
            "eval_every": 50,
            "embeddings": True,
        },
        seeds=3,
        holdout=True,
        note="CNN on 8×8 digits, SGD + momentum, features as embeddings, eval every 50",
    ),
    Scenario(
        "cnn-lr10",
        "holdout",
        "classifier",
        {
            "steps": 1500,
            "arch": "cnn",
            "optimizer": "sgd",
            "lr": 0.1,
            "weight_decay": 5e-4,
            "eval_every": 50,
            "embeddings": True,
            "inject": "lr10",
            "inject_at": 700,
        },
        category="stability",
        onset=700,
        seeds=2,
        holdout=True,
        note="SGD lr 0.1 → 1.0 at step 700 (validation accuracy 0.98 → 0.80)",
    ),
    Scenario(
        "tanh-breast-cancer",
        "holdout",
        "classifier",
        {
            "steps": 1200,
            "dataset": "breast_cancer",
            "act": "tanh",
            "width": 32,
            "dropout": 0.3,
            "optimizer": "adamw",
            "lr": 3e-4,
            "weight_decay": 1e-2,
            "eval_every": 25,
        },
        seeds=3,
        holdout=True,
        note="tanh MLP + dropout on load_breast_cancer (398 training rows), AdamW, eval every 25",
    ),
    Scenario(
        "gelu-bn-classification",
        "holdout",
        "classifier",
        {
            "steps": 2500,
            "dataset": "classification",
            "act": "gelu",
            "batchnorm": True,
            "optimizer": "sgd",
            "lr": 0.05,
            "weight_decay": 1e-3,
            "batch_size": 64,
            "eval_every": 250,
        },
        seeds=3,
        holdout=True,
        note="GELU + BatchNorm MLP on make_classification (7,500 training rows), SGD, eval every 250",
    ),
    Scenario(
        "gelu-bn-nan",
        "holdout",
        "classifier",
        {
            "steps": 2500,
            "dataset": "classification",
            "act": "gelu",
            "batchnorm": True,
            "optimizer": "sgd",
            "lr": 0.05,
            "weight_decay": 1e-3,
            "batch_size": 64,
            "eval_every": 250,
            "inject": "nan",
            "inject_at": 1500,
        },
        category="stability",
        onset=1500,
        seeds=2,
        holdout=True,
    ),
    Scenario(
        **_byol("simsiam", variant="simsiam", optimizer="sgd", lr=0.05),
        group="holdout",
        seeds=3,
        holdout=True,
        note="SimSiam: predictor + stop-gradient, no EMA teacher, SGD",
    ),
    Scenario(
        **_byol("simsiam-no-stopgrad", "collapse", 800, "collapse", variant="simsiam", optimizer="sgd", lr=0.05),
        group="holdout",
        seeds=2,
        holdout=True,
    ),
    Scenario(
        "dino",
        "holdout",
        "dino",
        {"steps": 2000},
        seeds=3,
        holdout=True,
        note="DINO-like self-distillation (centring, sharpening), EMA 0.996, backbone features as embeddings",
    ),
    Scenario(
        "dino-momentum1",
        "holdout",
        "dino",
        {"steps": 2000, "inject": "momentum1", "inject_at": 1200},
        category="ema",
        onset=1200,
        seeds=2,
        holdout=True,
    ),
    Scenario(
        **_byol("byol-wrapped", variant="wrapped", momentum=0.996),
        group="holdout",
        seeds=3,
        holdout=True,
        note="BYOL with a learner wrapper: student 'online_encoder.*' vs teacher '*' parameter names",
    ),
    Scenario(
        **_byol("byol-wrapped-momentum1", "momentum1", 1000, "ema", variant="wrapped", momentum=0.996),
        group="holdout",
        seeds=2,
        holdout=True,
    ),
    Scenario(
        **_byol("byol-wrapped-lr-kill", "lr10", 1050, "stability", variant="wrapped", momentum=0.996, lr_factor=100.0),
        group="holdout",
        seeds=2,
        holdout=True,
        note="learner-wrapper BYOL, learning rate ×100 at step 1050 (between two due points)",
        outcome=OutcomeCheck("byol-wrapped"),
    ),
]

# Held out for the issue-12 rules (head gradient ratio, norm collapse, PSNR gap): same failures,
# other optimisers, loss weights, cadences and wrappers; never tuned on.
SCENARIOS += [
    Scenario(
        "two-head-holdout",
        "holdout",
        "two_head",
        {"steps": 3000, "optimizer": "sgd", "lr": 0.1, "recon_weight": 1.0, "batch_size": 32, "eval_every": 50},
        seeds=3,
        holdout=True,
        note="SGD 0.1, batch 32, unit loss weights, 3,000 steps (the classifier interpolates)",
    ),
    Scenario(
        "two-head-holdout-weak",
        "holdout",
        "two_head",
        {
            "steps": 3000,
            "optimizer": "sgd",
            "lr": 0.1,
            "recon_weight": 1.0,
            "batch_size": 32,
            "eval_every": 50,
            "inject": "head_off",
            "inject_at": 1500,
            "off_weight": 1e-3,
        },
        category="optimization",
        onset=1500,
        seeds=2,
        holdout=True,
        note="the decoder's loss weight 1 → 0.001 at step 1500",
    ),
    Scenario(
        "two-head-holdout-off",
        "holdout",
        "two_head",
        {
            "steps": 3000,
            "optimizer": "sgd",
            "lr": 0.1,
            "recon_weight": 1.0,
            "batch_size": 32,
            "eval_every": 50,
            "inject": "head_off",
            "inject_at": 1500,
        },
        category="optimization",
        onset=1500,
        seeds=2,
        holdout=True,
        note="the decoder's loss weight 1 → 0 at step 1500",
    ),
    Scenario(
        **_byol("byol-wrapped-head-wd", "head_wd", 800, "collapse", variant="wrapped", momentum=0.996),
        group="holdout",
        seeds=2,
        holdout=True,
        note="learner-wrapper BYOL, AdamW weight decay 50 on the projection's last layer from step 800",
    ),
    Scenario(
        "paired-sgd",
        "holdout",
        "paired",
        {"steps": 2500, "optimizer": "sgd", "lr": 0.05, "temperature": 0.2, "dim": 64, "batch_size": 64},
        seeds=3,
        holdout=True,
        note="SGD 0.05 + momentum, τ = 0.2, 64-d embeddings, batch 64",
    ),
    Scenario(
        "paired-sgd-shuffle",
        "holdout",
        "paired",
        {
            "steps": 2500,
            "optimizer": "sgd",
            "lr": 0.05,
            "temperature": 0.2,
            "dim": 64,
            "batch_size": 64,
            "inject": "shuffle",
            "inject_at": 1200,
        },
        category="prediction",
        onset=1200,
        seeds=2,
        holdout=True,
    ),
    Scenario(
        "autoencoder-wide",
        "holdout",
        "autoencoder",
        {"steps": 3000, "bottleneck": 32, "lr": 2e-3, "batch_size": 32, "eval_every": 50},
        seeds=3,
        holdout=True,
        note="32-d bottleneck, lr 2e-3, batch 32, 3,000 steps, eval every 50",
    ),
    Scenario(
        "autoencoder-overfit-128",
        "holdout",
        "autoencoder",
        {"steps": 3000, "train_size": 128, "bottleneck": 16, "batch_size": 32, "eval_every": 100},
        category="generalization",
        onset_from="best_val_step",
        seeds=2,
        holdout=True,
        note="128 training images, 16-d bottleneck, eval every 100",
    ),
    # --- healthy supervised runs whose penultimate features lose rank as the classes separate -------
    # (neural collapse toward C − 1 directions): they withdrew rankme_ratio's fall-from-best rule.
    Scenario(
        "bc-slow-penultimate",
        "holdout",
        "classifier",
        {
            "steps": 6000,
            "dataset": "breast_cancer",
            "width": 256,
            "optimizer": "adamw",
            "lr": 3e-5,
            "batch_size": 128,
            "embeddings": True,
        },
        seeds=3,
        holdout=True,
        note="README's quickstart on load_breast_cancer: 2 classes, 30-256-256 ReLU, AdamW 3e-5, no weight decay, "
        "batch 128, 6,000 steps, penultimate features as embeddings",
    ),
    Scenario(
        "digits-warmup-penultimate",
        "holdout",
        "classifier",
        {
            "steps": 3000,
            "width": 256,
            "optimizer": "adamw",
            "lr": 1e-3,
            "batch_size": 128,
            "warmup": 1500,
            "embeddings": True,
        },
        seeds=3,
        holdout=True,
        note="digits, 64-256-256 ReLU, AdamW warmed up linearly to 1e-3 over 1,500 steps then cosine to 0, "
        "batch 128, 3,000 steps, penultimate features as embeddings",
    ),
    # --- held out from the weight-jump rule (init_distance > 4× its previous point), trained after
    # its threshold was fixed: learning-rate schedules that move the weights fast on purpose, and
    # lr ×100 injections into loops the rule was not calibrated on (broken only by outcome).
    Scenario(
        "mlp-sgdr",
        "holdout",
        "classifier",
        {"steps": 2500, "restarts": 500, "embeddings": True},
        seeds=3,
        holdout=True,
        note="Adam 1e-3 with SGDR warm restarts every 500 steps (cosine to 0, then back to 1e-3 at once), "
        "penultimate features as embeddings",
    ),
    Scenario(
        "dino-warmup",
        "holdout",
        "dino",
        {"steps": 2000, "warmup": 500},
        seeds=3,
        holdout=True,
        note="DINO with its recipe's linear LR warm-up over 500 steps, then cosine",
    ),
    _lr_kill(
        "quickstart-lr-kill",
        "classifier",
        {"embeddings": True, "train_accuracy": False, "eval_every": 200, "width": 64},
        OutcomeCheck("quickstart", key="final_val_accuracy"),
        "README's quickstart, Adam",
    ),
    _lr_kill("vicreg-lr-kill", "vicreg", {}, OutcomeCheck("vicreg"), "VICReg, Adam"),
    _lr_kill("dino-lr-kill", "dino", {}, OutcomeCheck("dino"), "DINO, AdamW"),
    _lr_kill(
        "autoencoder-lr-kill",
        "autoencoder",
        {},
        OutcomeCheck("autoencoder", key="final_val_psnr", margin=1.0),
        "autoencoder, Adam",
    ),
    # --- a second held-out batch, trained once after the std and progress_lost rules were revised
    # on the first one (dino-warmup): never used to choose a rule or a threshold.
    Scenario(
        "dino-warmup-long",
        "holdout",
        "dino",
        {"steps": 3000, "warmup": 1000},
        seeds=2,
        holdout=True,
        note="DINO warmed up over 1,000 steps, 3,000 steps",
    ),
    Scenario(
        "cnn-warmup",
        "holdout",
        "classifier",
        {"steps": 1500, "arch": "cnn", "optimizer": "adamw", "lr": 1e-3, "warmup": 500, "embeddings": True},
        seeds=2,
        holdout=True,
        note="CNN, AdamW warmed up over 500 steps then cosine, features as embeddings",
    ),
    Scenario(
        "bc-penultimate-wd",
        "holdout",
        "classifier",
        {
            "steps": 3000,
            "dataset": "breast_cancer",
            "optimizer": "adamw",
            "weight_decay": 0.05,
            "width": 256,
            "embeddings": True,
        },
        seeds=2,
        holdout=True,
        note="breast cancer, AdamW 1e-3 with weight decay, penultimate features as embeddings",
    ),
    Scenario(
        **_byol("byol-wrapped-sgd", variant="wrapped", momentum=0.996, optimizer="sgd", lr=0.05),
        group="holdout",
        seeds=2,
        holdout=True,
        note="learner-wrapper BYOL trained with SGD",
    ),
    Scenario(
        **_byol("simsiam-collapse-start", "collapse", 0, "collapse", variant="simsiam", optimizer="sgd", lr=0.05),
        group="holdout",
        seeds=2,
        holdout=True,
        note="SimSiam without predictor and stop-gradient from step 0",
    ),
    Scenario(
        **_byol("byol-wrapped-collapse-late", "collapse", 1500, "collapse", variant="wrapped", momentum=0.996),
        group="holdout",
        seeds=2,
        holdout=True,
        note="learner-wrapper BYOL, predictor and stop-gradient removed at step 1500",
    ),
    Scenario(
        "dino-warmup-momentum1",
        "holdout",
        "dino",
        {"steps": 2000, "warmup": 500, "inject": "momentum1", "inject_at": 1200},
        category="ema",
        onset=1200,
        seeds=2,
        holdout=True,
    ),
    _lr_kill(
        "cnn-lr-kill",
        "classifier",
        {"steps": 1500, "arch": "cnn", "optimizer": "sgd", "lr": 0.1, "weight_decay": 5e-4, "eval_every": 50},
        OutcomeCheck("cnn-sgd", key="final_val_accuracy"),
        "CNN, SGD",
        at=700,
        factor=30.0,
        embeddings=True,
    ),
    # --- a third held-out batch (generalization, SSL collapse variants, long healthy runs), defined
    # and committed before it was trained, judged once.
    Scenario(
        "cnn-overfit-100",
        "holdout",
        "classifier",
        {"steps": 2000, "arch": "cnn", "train_size": 100, "eval_every": 50, "embeddings": True},
        category="generalization",
        onset_from="best_val_step",
        seeds=2,
        holdout=True,
        note="CNN on 100 training digits (Adam 1e-3); onset = eval step of the lowest validation loss",
    ),
    Scenario(
        "bc-overfit-60",
        "holdout",
        "classifier",
        {"steps": 3000, "dataset": "breast_cancer", "width": 256, "train_size": 60, "eval_every": 50},
        category="generalization",
        onset_from="best_val_step",
        seeds=2,
        holdout=True,
        note="breast cancer, 60 training samples, 30-256-256 ReLU, Adam 1e-3",
    ),
    Scenario(
        "mlp-sgd-long",
        "holdout",
        "classifier",
        {"steps": 5000, "optimizer": "sgd", "lr": 0.05, "eval_every": 250, "embeddings": True},
        seeds=2,
        holdout=True,
        note="digits, SGD + momentum 0.05, 5,000 steps, no regularisation, penultimate features",
    ),
    Scenario(
        "vicreg-no-varcov-start",
        "holdout",
        "vicreg",
        {"steps": 1500, "inject": "no_varcov", "inject_at": 0},
        category="collapse",
        onset=0,
        seeds=2,
        holdout=True,
        note="VICReg with only its invariance term from the start",
    ),
    Scenario(
        **_byol("simsiam-collapse-mid", "collapse", 1200, "collapse", variant="simsiam", optimizer="sgd", lr=0.05),
        group="holdout",
        seeds=2,
        holdout=True,
        note="SimSiam losing predictor and stop-gradient at step 1200",
    ),
    Scenario(
        "dino-long",
        "holdout",
        "dino",
        {"steps": 4000},
        seeds=2,
        holdout=True,
        note="DINO without warm-up, 4,000 steps",
    ),
]

BY_NAME = {s.name: s for s in SCENARIOS}
if len(BY_NAME) != len(SCENARIOS):  # pragma: no cover - a typo in the table above
    raise RuntimeError("duplicate scenario names")

GROUPS = list(dict.fromkeys(s.group for s in SCENARIOS))


def select(patterns: Iterable[str] = (), quick: bool = False) -> list[Scenario]:
    """Scenarios whose names match any glob in ``patterns`` (all when empty); ``quick`` shortens and subsets."""
    patterns = list(patterns)
    chosen = [s for s in SCENARIOS if not patterns or any(fnmatch.fnmatchcase(s.name, p) for p in patterns)]
    if patterns and not chosen:
        raise ValueError(f"no scenario matches {' '.join(patterns)} (known: {', '.join(BY_NAME)})")
    if quick:
        chosen = [s.scaled(s.quick_steps) for s in chosen if s.quick_steps]
    return chosen
