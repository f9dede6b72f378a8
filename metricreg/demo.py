"""A small JEPA-style training job on synthetic data, healthy and broken on purpose.

This is what ``make demo``, ``metricreg demo`` and ``examples/jepa_train.py`` run: a
hierarchical joint-embedding predictive architecture (a student/context encoder, a
predictor, an EMA teacher/target encoder, block masking) trained on synthetic
"images" of 8 patches, monitored by metricreg. Four variants reproduce the problems
the Health tab exists for:

============  ============================================================================
variant       what changes                                     what the Health tab shows
============  ============================================================================
healthy       nothing                                          every category ok
collapse      no predictor, no EMA teacher / stop-gradient,    collapse: critical (RankMe → 1,
              negative-cosine loss                             mean cosine → 1)
stalled_ema   EMA momentum 1.0: the teacher never moves        ema: critical (teacher stalled)
overfit       16 training samples instead of a fresh stream    generalization: critical
============  ============================================================================

Data: a latent s ~ N(0, I₁₆) per sample, seen through 8 fixed random rotations
(one per patch position) plus noise, so a masked patch is predictable from the
visible ones. Each variant runs in a few seconds on a 2-core CPU.

Needs PyTorch (``pip install "metricreg[torch]"``).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import metricreg as mr

VARIANTS: dict[str, dict[str, Any]] = {
    "healthy": {},
    "collapse": {"collapse": True},
    "stalled_ema": {"ema_momentum": 1.0},
    "overfit": {"overfit": True},
}
VARIANT_HELP = {
    "healthy": "the reference run: every category should be ok",
    "collapse": "no predictor and no EMA teacher: the representation collapses to a point",
    "stalled_ema": "EMA momentum 1.0: the teacher is frozen while the student moves on",
    "overfit": "a training set of 16 samples: the held-out loss leaves the training loss behind",
}

# How often the demo's metrics run: denser than the built-in defaults, because the runs are short.
DEMO_CONFIG: dict[str, Any] = {
    "collapse": {"every": 25},
    "ema": {"every": 50},
}


@dataclass
class JEPAConfig:
    """Everything one run depends on. The variants change one or two fields."""

    steps: int = 600
    batch_size: int = 64
    patches: int = 8  # patch positions per sample; pairs of patches form the coarse level
    dim_in: int = 16  # latent and patch dimension
    dim: int = 16  # embedding dimension
    noise: float = 0.3  # patch noise std
    lr: float = 2e-3
    weight_decay: float = 0.0
    max_norm: float = 1.0  # gradient clipping threshold
    ema_momentum: float = 0.99
    collapse: bool = False  # remove what prevents collapse (predictor, EMA teacher, stop-gradient)
    overfit: bool = False  # train on a tiny fixed set instead of a fresh stream
    train_size: int = 16  # training set size when overfit
    eval_every: int = 50
    eval_size: int = 512
    level_weights: tuple[float, float] = (1.0, 0.5)
    seed: int = 0
    threads: int | None = 1  # torch intra-op threads while training (tiny models run fastest on one)
    extra_config: dict[str, Any] = field(default_factory=dict)


def variant_config(name: str, **overrides: Any) -> JEPAConfig:
    if name not in VARIANTS:
        raise ValueError(f"unknown variant {name!r}; choose from {', '.join(VARIANTS)}")
    return replace(JEPAConfig(), **{**VARIANTS[name], **overrides})


# --- a plugin defined in the training script: JEPA-specific metrics -----------------------------


def masking(mask: Any) -> dict[str, Any]:
    """Masking statistics of this step's batch: the fraction of patches that are prediction targets."""
    per_sample = mask.float().sum(dim=1)
    return {"ratio": mask.float().mean(), "targets_per_sample": per_sample.mean()}


def level_losses(level_losses: Mapping[str, Any]) -> dict[str, Any]:
    """Per-level JEPA losses (h0: patches, h1: pairs of patches) and each level's share of their sum."""
    total = sum(abs(v) for v in level_losses.values())
    out: dict[str, Any] = dict(level_losses)
    for name, value in level_losses.items():
        out[f"contribution_{name}"] = abs(value) / total.clamp_min(1e-12)
    return out


class JEPAMetrics:
    """Metrics only this script knows about, registered through the same hooks as every plugin."""

    @mr.hookimpl
    def metricreg_register_inputs(self, register):
        # Declare the step inputs these metrics ask for (so a typo fails at start-up, not silently).
        register("mask", description="bool (batch, patches): True where a patch is a prediction target")
        register("level_losses", description="dict of per-level prediction losses")

    @mr.hookimpl
    def metricreg_register_metrics(self, register):
        register(mr.Metric("jepa/masking", compute=masking, every=50))
        register(mr.Metric("jepa/loss", compute=level_losses, every=10))


# --- model and data -------------------------------------------------------------------------------


def _torch():
    try:
        import torch
    except ImportError:  # pragma: no cover - exercised only without torch
        raise SystemExit('the JEPA demo needs PyTorch: pip install "metricreg[torch]"') from None
    return torch


def _build(cfg: JEPAConfig):
    torch = _torch()
    nn = torch.nn

    class Encoder(nn.Module):
        """Per-patch linear embedding (level 0) and a linear embedding of patch pairs (level 1)."""

        def __init__(self) -> None:
            super().__init__()
            self.patch = nn.Linear(cfg.dim_in, cfg.dim)
            self.pair = nn.Linear(cfg.dim, cfg.dim)
            for layer in (self.patch, self.pair):
                nn.init.orthogonal_(layer.weight)
                nn.init.zeros_(layer.bias)

        def forward(self, x):  # x: (batch, patches, dim_in)
            z0 = self.patch(x)
            b, p, d = z0.shape
            z1 = self.pair(z0.reshape(b, p // 2, 2, d).mean(dim=2))
            return z0, z1

    class Predictor(nn.Module):
        """One linear map per target position and level, from the mean of the visible embeddings."""

        def __init__(self) -> None:
            super().__init__()
            n = cfg.patches + cfg.patches // 2
            eye = torch.eye(cfg.dim).expand(n, cfg.dim, cfg.dim)
            self.maps = nn.Parameter(eye + 0.01 * torch.randn(n, cfg.dim, cfg.dim))

        def forward(self, context_mean, position):  # (batch, dim), (batch,)
            return torch.einsum("bij,bj->bi", self.maps[position], context_mean)

    class Student(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = Encoder()
            self.predictor = Predictor()

    class Teacher(nn.Module):
        def __init__(self, student: Student) -> None:
            super().__init__()
            self.encoder = Encoder()
            self.encoder.load_state_dict(student.encoder.state_dict())
            self.requires_grad_(False)

    student = Student()
    teacher = Teacher(student)
    return student, teacher


class SyntheticPatches:
    """Samples whose 8 patches are fixed random rotations of one latent vector, plus noise."""

    def __init__(self, cfg: JEPAConfig, generator: Any) -> None:
        torch = _torch()
        self.cfg = cfg
        self.generator = generator
        q, _ = torch.linalg.qr(torch.randn(cfg.patches, cfg.dim_in, cfg.dim_in, generator=generator))
        self.mixing = q  # (patches, dim_in, dim_in)
        self.fixed = self.sample(cfg.train_size) if cfg.overfit else None

    def sample(self, n: int, generator: Any = None):
        torch = _torch()
        generator = generator or self.generator
        s = torch.randn(n, self.cfg.dim_in, generator=generator)
        x = torch.einsum("pij,nj->npi", self.mixing, s)
        return x + self.cfg.noise * torch.randn(x.shape, generator=generator)

    def train_batch(self, n: int):
        torch = _torch()
        if self.fixed is None:
            return self.sample(n)
        idx = torch.randint(0, self.fixed.shape[0], (n,), generator=self.generator)
        return self.fixed[idx]


def _masks(cfg: JEPAConfig, n: int, generator: Any):
    """Block masking: one pair of adjacent patches per sample is the prediction target."""
    torch = _torch()
    group = torch.randint(0, cfg.patches // 2, (n,), generator=generator)
    mask = torch.zeros(n, cfg.patches, dtype=torch.bool)
    rows = torch.arange(n)
    mask[rows, 2 * group] = True
    mask[rows, 2 * group + 1] = True
    return mask, group


def _forward(cfg: JEPAConfig, student, teacher, x, mask, group):
    """(total loss, per-level losses, embeddings by encoder and level, outputs for the monitor)."""
    torch = _torch()
    F = torch.nn.functional
    n = x.shape[0]
    rows = torch.arange(n)
    visible = (~mask).float()
    z0, z1 = student.encoder(x)
    visible1 = visible.reshape(n, -1, 2).amin(dim=2)  # a pair is visible if both its patches are
    ctx0 = (z0 * visible[..., None]).sum(1) / visible.sum(1, keepdim=True)
    ctx1 = (z1 * visible1[..., None]).sum(1) / visible1.sum(1, keepdim=True)
    targets0 = torch.stack([2 * group, 2 * group + 1], dim=1)  # (n, 2) target patch positions
    if cfg.collapse:
        # What prevents collapse is gone: no predictor, the target branch is the student itself
        # (no EMA teacher, no stop-gradient), and the loss only asks both branches to agree.
        t0, t1 = z0, z1
        pred0 = ctx0[:, None, :].expand(n, 2, cfg.dim)
        pred1 = ctx1
        tgt0 = t0[rows[:, None], targets0]
        tgt1 = t1[rows, group]
        h0 = -F.cosine_similarity(pred0, tgt0, dim=-1).mean()
        h1 = -F.cosine_similarity(pred1, tgt1, dim=-1).mean()
    else:
        with torch.no_grad():
            t0, t1 = teacher.encoder(x)
        pred0 = torch.stack([student.predictor(ctx0, targets0[:, k]) for k in range(2)], dim=1)
        pred1 = student.predictor(ctx1, cfg.patches + group)
        tgt0 = F.layer_norm(t0[rows[:, None], targets0], (cfg.dim,))
        tgt1 = F.layer_norm(t1[rows, group], (cfg.dim,))
        h0 = F.mse_loss(pred0, tgt0)
        h1 = F.mse_loss(pred1, tgt1)
    w0, w1 = cfg.level_weights
    loss = w0 * h0 + w1 * h1
    embeddings = {
        "context": z0[visible.bool()].detach(),  # visible patches, student
        "target": t0[mask].detach(),  # target patches, teacher (the student itself when collapsing)
        "context_l1": z1.reshape(-1, cfg.dim).detach(),
        "target_l1": t1.reshape(-1, cfg.dim).detach(),
    }
    outputs = {
        "predictions": pred0.detach().reshape(-1, cfg.dim),  # finest level: predicted target patches
        "targets": tgt0.detach().reshape(-1, cfg.dim),
        "student_out": z0.detach().reshape(-1, cfg.dim),  # both encoders on the same patches
        "teacher_out": t0.detach().reshape(-1, cfg.dim),
    }
    return loss, {"h0": h0.detach(), "h1": h1.detach()}, embeddings, outputs


def train(
    logdir: str | os.PathLike[str],
    cfg: JEPAConfig | None = None,
    *,
    progress: Callable[[int, int], None] | None = None,
    plugins: tuple[Any, ...] = (),
    fresh: bool = False,
) -> dict[str, Any]:
    """Train one run into ``logdir`` and return a small summary (final losses, alerts seen live).

    ``fresh=True`` first removes the event files an earlier metricreg run left in ``logdir``
    (only those: files named ``events.out.tfevents.*.metricreg``), so that re-running the
    demo replaces its runs instead of adding a second event file to each.
    """
    torch = _torch()
    cfg = cfg or JEPAConfig()
    if fresh:
        remove_previous_run(logdir)
    previous_threads = torch.get_num_threads()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    try:
        return _train(torch, logdir, cfg, progress, plugins)
    finally:
        torch.set_num_threads(previous_threads)


def _train(torch: Any, logdir: Any, cfg: JEPAConfig, progress: Any, plugins: tuple[Any, ...]) -> dict[str, Any]:
    torch.manual_seed(cfg.seed)
    generator = torch.Generator().manual_seed(cfg.seed)
    data = SyntheticPatches(cfg, generator)
    student, teacher = _build(cfg)
    optimizer = torch.optim.AdamW(student.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    momentum = 0.0 if cfg.collapse else cfg.ema_momentum
    val_gen = torch.Generator().manual_seed(cfg.seed + 1)
    val_x = data.sample(cfg.eval_size, val_gen)  # held-out samples, fixed for the whole run
    val_mask, val_group = _masks(cfg, cfg.eval_size, val_gen)

    config = {**DEMO_CONFIG, **cfg.extra_config}
    loss_value = float("nan")
    val_value = float("nan")
    with mr.Monitor(logdir, plugins=[JEPAMetrics(), *plugins], config=config) as mon:
        for step in range(cfg.steps):
            x = data.train_batch(cfg.batch_size)
            mask, group = _masks(cfg, cfg.batch_size, generator)
            t0 = time.perf_counter()
            loss, losses, embeddings, outputs = _forward(cfg, student, teacher, x, mask, group)
            t1 = time.perf_counter()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            t2 = time.perf_counter()
            grad_norm = torch.nn.utils.clip_grad_norm_(student.parameters(), cfg.max_norm)  # the norm before clipping
            optimizer.step()
            # The monitor sees the student after its update and the teacher before its own.
            mon.step(
                step,
                loss=loss.detach(),
                level_losses=losses,
                mask=mask,
                embeddings=embeddings,
                **outputs,
                model=student,
                ema_model=student if cfg.collapse else teacher,
                momentum=momentum,
                optimizer=optimizer,
                grad_norm=grad_norm,
                max_norm=cfg.max_norm,
                batch_size=cfg.batch_size,
                forward_time=t1 - t0,
                backward_time=t2 - t1,
            )
            if not cfg.collapse:
                with torch.no_grad():
                    for p_t, p_s in zip(teacher.encoder.parameters(), student.encoder.parameters(), strict=True):
                        p_t.mul_(momentum).add_(p_s.detach(), alpha=1.0 - momentum)
            if step % cfg.eval_every == 0 or step == cfg.steps - 1:
                with torch.no_grad():
                    val_loss, _, _, _ = _forward(cfg, student, teacher, val_x, val_mask, val_group)
                val_value = float(val_loss)
                mon.eval(step, loss=val_loss)
            loss_value = float(loss.detach()) if step == cfg.steps - 1 else loss_value
            if progress is not None:
                progress(step + 1, cfg.steps)
            if mon.should_stop:
                break
    alerts = [a.to_dict() for a in mon.alerts]  # after close: the writer thread has judged every value
    return {"logdir": os.fspath(logdir), "loss": loss_value, "val_loss": val_value, "alerts": alerts}


def remove_previous_run(logdir: str | os.PathLike[str]) -> list[str]:
    """Delete the metricreg event files directly in ``logdir``; returns their paths."""
    removed = []
    path = os.fspath(logdir)
    if os.path.isdir(path):
        for name in sorted(os.listdir(path)):
            full = os.path.join(path, name)
            if name.startswith("events.out.tfevents.") and name.endswith(".metricreg") and os.path.isfile(full):
                os.remove(full)
                removed.append(full)
    return removed


def run_all(
    logdir: str | os.PathLike[str],
    steps: int | None = None,
    variants: tuple[str, ...] = tuple(VARIANTS),
    progress: Callable[[str, int, int], None] | None = None,
) -> dict[str, dict[str, Any]]:
    """Train each variant into ``logdir/<variant>``; ``progress(variant, done, total)`` per step."""
    results = {}
    for name in variants:
        cfg = variant_config(name, **({"steps": steps} if steps else {}))
        callback = (lambda done, total, _n=name: progress(_n, done, total)) if progress else None
        results[name] = train(os.path.join(os.fspath(logdir), name), cfg, progress=callback, fresh=True)
    return results


class ProgressBar:
    """A plain-text progress bar on stderr (no dependencies)."""

    def __init__(self, stream: Any = None, width: int = 30) -> None:
        self.stream = stream or sys.stderr
        self.width = width
        self._last: tuple[str, int] | None = None
        self._tty = bool(getattr(self.stream, "isatty", lambda: False)())

    def __call__(self, label: str, done: int, total: int) -> None:
        filled = self.width * done // max(total, 1)
        percent = 100 * done // max(total, 1)
        key = (label, percent if self._tty else percent // 25)
        if key == self._last and done != total:
            return
        self._last = key
        bar = "#" * filled + "-" * (self.width - filled)
        line = f"{label:<12} [{bar}] {done:>5}/{total} steps"
        if self._tty:
            self.stream.write("\r" + line + ("\n" if done == total else ""))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()
