"""The training loops of the scenarios, each monitored exactly as README.md shows.

Every loop creates ``metricreg.Monitor(logdir)`` with the defaults (no threshold or
schedule tweaks), calls ``mon.step(loss=..., model=..., optimizer=..., ...)`` once per
step and ``mon.eval(loss=..., accuracy=...)`` at its eval points, and returns an
``info`` dict of evidence that the ground truth holds (final losses, probe
accuracies, the step of the best validation loss). A fault is *injected* by
changing one thing at ``inject_at``: the loss (collapse), the momentum (EMA), the
learning rate or the data (stability).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

import metricreg as mr
from benchmarks.detection import data as D
from benchmarks.detection.models import Classifier, DigitsCNN, Siamese, Wrapped, mlp

Info = dict[str, Any]


def _seed(seed: int) -> torch.Generator:
    torch.set_num_threads(1)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def _injected(inject_at: int | None, step: int) -> bool:
    return inject_at is not None and step >= inject_at


def _scale_lr(opt: torch.optim.Optimizer, factor: float) -> None:
    for group in opt.param_groups:
        group["lr"] *= factor


def _set_lr(opt: torch.optim.Optimizer, lr: float) -> None:
    for group in opt.param_groups:
        group["lr"] = lr


def _warmup_cosine(step: int, warmup: int, steps: int) -> float:
    """The learning-rate factor of a linear warm-up over ``warmup`` steps, then a cosine decay to 0."""
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1.0 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))


def _optimizer(name: str, params: Any, lr: float, weight_decay: float = 0.0) -> torch.optim.Optimizer:
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)


@torch.no_grad()
def knn_accuracy(embed: Callable[[torch.Tensor], torch.Tensor], split: D.Split, k: int = 5) -> float:
    """Validation accuracy of a k-NN (cosine) probe on the representation: did SSL learn anything?"""
    a = F.normalize(embed(split.x_train), dim=1)
    b = F.normalize(embed(split.x_val), dim=1)
    idx = (b @ a.T).topk(k, dim=1).indices
    votes = split.y_train[idx]
    pred = torch.mode(votes, dim=1).values
    return float((pred == split.y_val).float().mean())


@torch.no_grad()
def _spread(z: torch.Tensor) -> float:
    """Mean per-channel std of L2-normalised rows × √d: 1 when isotropic, 0 when collapsed."""
    zn = F.normalize(z, dim=1)
    return float(zn.std(0).mean() * math.sqrt(z.shape[1]))


@torch.no_grad()
def _mean_norm(z: torch.Tensor) -> float:
    """Mean L2 norm of the rows: the scale that the direction statistics (spread, cosine) cannot see."""
    return float(z.norm(dim=1).mean())


# --- joint-embedding SSL --------------------------------------------------------------------------


def _cos_loss(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    return 2 - 2 * F.cosine_similarity(p, z, dim=-1).mean()


def byol(
    logdir: str,
    seed: int,
    steps: int = 2000,
    *,
    variant: str = "byol",
    momentum: float = 0.99,
    lr: float = 1e-3,
    optimizer: str = "adam",
    batch_size: int = 128,
    inject: str | None = None,
    inject_at: int | None = None,
    head_wd: float = 50.0,
    lr_factor: float = 10.0,
) -> Info:
    """BYOL (``variant="byol"``), BYOL with wrapper naming (``"wrapped"``) or SimSiam (``"simsiam"``).

    Injections: ``collapse`` drops the predictor and the stop-gradient (the
    symmetric cosine loss between two online projections, which collapses);
    ``momentum1`` freezes the teacher (m = 1); ``lr10`` multiplies the learning rate by ``lr_factor`` (10 unless given);
    ``head_wd`` switches on decoupled weight decay ``head_wd`` (AdamW) on the projection's last
    layer: the cosine loss cannot see the projection's scale, so the embeddings shrink to the
    origin while keeping their directions (norm collapse).
    """
    g = _seed(seed)
    split = D.digits()
    if variant == "wrapped":
        learner = Wrapped()
        online, predictor = learner.online_encoder, learner.online_predictor
        model: nn.Module = learner
        teacher: nn.Module | None = copy.deepcopy(online)
    else:
        online = Siamese()
        predictor = online.predictor
        model = online
        teacher = None
        if variant == "byol":
            teacher = copy.deepcopy(online)
            teacher.predictor = None
    if teacher is not None:
        teacher.requires_grad_(False)
    opt = _optimizer(optimizer, model.parameters(), lr)
    if inject == "head_wd":  # AdamW, the projection's last layer in its own group (decay switched on at onset)
        last = list(online.projector[-1].parameters())
        rest = [p for p in model.parameters() if all(p is not q for q in last)]
        opt = torch.optim.AdamW([{"params": rest}, {"params": last}], lr=lr, weight_decay=0.0)
    norms: dict[str, float] = {}
    order = D.batches(len(split.x_train), batch_size, g)
    with mr.Monitor(logdir) as mon:
        for step in range(steps):
            if inject == "lr10" and step == inject_at:
                _scale_lr(opt, lr_factor)
            if inject == "head_wd" and step == inject_at:
                opt.param_groups[1]["weight_decay"] = head_wd
            m = 1.0 if inject == "momentum1" and _injected(inject_at, step) else momentum
            x = split.x_train[next(order)]
            v1, v2 = D.augment(x, g), D.augment(x, g)
            z1 = online.embed(v1)[1]
            _, z2 = online.embed(v2)
            if inject == "collapse" and _injected(inject_at, step):
                loss = _cos_loss(z1, z2)  # no predictor, no stop-gradient
            elif teacher is not None:
                with torch.no_grad():
                    t1, t2 = teacher.embed(v1)[1], teacher.embed(v2)[1]
                loss = (_cos_loss(predictor(z1), t2) + _cos_loss(predictor(z2), t1)) / 2
            else:  # SimSiam: the other branch's projection, stop-gradient
                loss = (_cos_loss(predictor(z1), z2.detach()) + _cos_loss(predictor(z2), z1.detach())) / 2
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if teacher is not None:
                with torch.no_grad():
                    for pt, ps in zip(teacher.parameters(), online.parameters(), strict=False):
                        pt.mul_(m).add_(ps, alpha=1 - m)
                mon.step(
                    loss=loss, model=model, optimizer=opt, embeddings=lambda z1=z1: z1.detach(),
                    ema_model=teacher, momentum=m,
                )  # fmt: skip
            else:
                mon.step(loss=loss, model=model, optimizer=opt, embeddings=lambda z1=z1: z1.detach())
            if inject == "head_wd" and step in (inject_at - 1, steps - 1):  # the batch's projection norm
                norms["batch_norm_before_onset" if step < inject_at else "batch_norm_final"] = _mean_norm(z1)
    if "batch_norm_final" in norms:
        norms["projection_norm_fall"] = norms["batch_norm_final"] / norms["batch_norm_before_onset"]
    online.eval()
    with torch.no_grad():
        h_val, z_val = online.embed(split.x_val)
    return {
        "final_loss": float(loss.detach()),
        "knn_accuracy": knn_accuracy(online.encoder, split),
        "representation_spread": _spread(h_val),
        "projection_spread": _spread(z_val),
        "projection_norm": _mean_norm(z_val),
        **norms,
    }


# --- VICReg ---------------------------------------------------------------------------------------


def _vicreg_terms(z1: torch.Tensor, z2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    inv = F.mse_loss(z1, z2)
    var = sum(F.relu(1 - torch.sqrt(z.var(0) + 1e-4)).mean() for z in (z1, z2))
    cov = 0.0
    for z in (z1, z2):
        zc = z - z.mean(0)
        c = zc.T @ zc / (z.shape[0] - 1)
        off = c - torch.diag(torch.diag(c))
        cov = cov + off.pow(2).sum() / z.shape[1]
    return inv, var, cov


def vicreg(
    logdir: str,
    seed: int,
    steps: int = 2000,
    *,
    lr: float = 1e-3,
    batch_size: int = 128,
    inject: str | None = None,
    inject_at: int | None = None,
    lr_factor: float = 10.0,
) -> Info:
    """VICReg (λ=25, μ=25, ν=1); ``inject="no_varcov"`` sets the variance and covariance weights to 0,
    ``lr10`` multiplies the learning rate by ``lr_factor``."""
    g = _seed(seed)
    split = D.digits()
    encoder = mlp([64, 128, 64], last_act=True)
    expander = mlp([64, 128, 128])
    model = nn.Sequential(encoder, expander)
    opt = _optimizer("adam", model.parameters(), lr)
    order = D.batches(len(split.x_train), batch_size, g)
    with mr.Monitor(logdir) as mon:
        for step in range(steps):
            if inject == "lr10" and step == inject_at:
                _scale_lr(opt, lr_factor)
            mu = nu = 0.0 if inject == "no_varcov" and _injected(inject_at, step) else None
            x = split.x_train[next(order)]
            v1, v2 = D.augment(x, g), D.augment(x, g)
            z1, z2 = model(v1), model(v2)
            inv, var, cov = _vicreg_terms(z1, z2)
            loss = 25 * inv + (25 if mu is None else mu) * var + (1 if nu is None else nu) * cov
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            mon.step(loss=loss, model=model, optimizer=opt, embeddings=lambda z1=z1: z1.detach())
    with torch.no_grad():
        h_val = encoder(split.x_val)
        z_val = expander(h_val)
    return {
        "final_loss": float(loss.detach()),
        "knn_accuracy": knn_accuracy(encoder, split),
        "representation_spread": _spread(h_val),
        "projection_spread": _spread(z_val),
    }


# --- DINO-like self-distillation ------------------------------------------------------------------


def dino(
    logdir: str,
    seed: int,
    steps: int = 2000,
    *,
    momentum: float = 0.996,
    lr: float = 1e-3,
    batch_size: int = 128,
    out_dim: int = 64,
    warmup: int = 0,
    inject: str | None = None,
    inject_at: int | None = None,
    lr_factor: float = 10.0,
) -> Info:
    """DINO-style: softmax heads, teacher centring (0.9) and sharpening (τ_t = 0.04, τ_s = 0.1), EMA teacher.

    ``warmup > 0``: linear LR warm-up then cosine, as ``classifier``'s (DINO's own recipe warms up).
    ``inject="lr10"`` multiplies the learning rate by ``lr_factor`` from ``inject_at`` on.
    """
    g = _seed(seed)
    split = D.digits()
    student = Siamese(proj=out_dim, predictor=False)
    teacher = copy.deepcopy(student).requires_grad_(False)
    center = torch.zeros(out_dim)
    opt = _optimizer("adamw", student.parameters(), lr, weight_decay=0.04)
    order = D.batches(len(split.x_train), batch_size, g)
    with mr.Monitor(logdir) as mon:
        for step in range(steps):
            factor = lr_factor if inject == "lr10" and _injected(inject_at, step) else 1.0
            if warmup:
                _set_lr(opt, factor * lr * _warmup_cosine(step, warmup, steps))
            elif inject == "lr10" and step == inject_at:
                _scale_lr(opt, lr_factor)
            m = 1.0 if inject == "momentum1" and _injected(inject_at, step) else momentum
            x = split.x_train[next(order)]
            v1, v2 = D.augment(x, g), D.augment(x, g)
            h1, s1 = student.embed(v1)
            s2 = student.embed(v2)[1]
            with torch.no_grad():
                t1, t2 = teacher.embed(v1)[1], teacher.embed(v2)[1]
                p1, p2 = F.softmax((t1 - center) / 0.04, -1), F.softmax((t2 - center) / 0.04, -1)
                center = 0.9 * center + 0.1 * torch.cat([t1, t2]).mean(0)
            loss = (
                -((p2 * F.log_softmax(s1 / 0.1, -1)).sum(-1).mean() + (p1 * F.log_softmax(s2 / 0.1, -1)).sum(-1).mean())
                / 2
            )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(student.parameters(), 3.0)
            opt.step()
            with torch.no_grad():
                for pt, ps in zip(teacher.parameters(), student.parameters(), strict=True):
                    pt.mul_(m).add_(ps, alpha=1 - m)
            mon.step(
                loss=loss, model=student, optimizer=opt, embeddings=lambda h1=h1: h1.detach(),
                ema_model=teacher, momentum=m,
            )  # fmt: skip
    return {"final_loss": float(loss.detach()), "knn_accuracy": knn_accuracy(student.encoder, split)}


# --- supervised classification --------------------------------------------------------------------


@torch.no_grad()
def _evaluate(model: nn.Module, split: D.Split) -> tuple[float, float]:
    was = model.training
    model.eval()
    logits, _ = model(split.x_val)
    model.train(was)
    loss = F.cross_entropy(logits, split.y_val)
    return float(loss), float((logits.argmax(1) == split.y_val).float().mean())


def _classifier(arch: str, split: D.Split, width: int, act: str, dropout: float, batchnorm: bool) -> Classifier:
    if arch == "cnn":
        return Classifier(DigitsCNN(), 128, split.classes)
    feats = mlp([split.features, width, width], act=act, dropout=dropout, batchnorm=batchnorm, last_act=True)
    return Classifier(feats, width, split.classes)


def classifier(
    logdir: str,
    seed: int,
    steps: int = 2000,
    *,
    dataset: str = "digits",
    arch: str = "mlp",
    width: int = 128,
    act: str = "relu",
    dropout: float = 0.0,
    batchnorm: bool = False,
    optimizer: str = "adam",
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    batch_size: int = 32,
    train_size: int | None = None,
    eval_every: int = 100,
    train_accuracy: bool = True,
    embeddings: bool = False,
    warmup: int = 0,
    restarts: int = 0,
    inject: str | None = None,
    inject_at: int | None = None,
    lr_factor: float = 10.0,
) -> Info:
    """A supervised classifier, monitored with ``loss``/``accuracy`` per step and ``mon.eval`` every ``eval_every``.

    ``embeddings=True`` is README's quickstart pattern: the penultimate features
    go to ``mon.step(embeddings=lambda: z.detach())``. ``train_size`` trains on a
    small subset (overfitting on purpose). ``warmup > 0`` ramps the learning rate
    linearly from 0 over ``warmup`` steps, then decays it on a cosine to 0 (the
    transformer recipe). ``restarts > 0``: SGDR warm restarts (a cosine from ``lr`` to 0 over
    each period of ``restarts`` steps, then back to ``lr`` at once). Injections: ``lr10``
    (learning rate × ``lr_factor``, 10 unless given)
    and ``nan`` (one batch carries a NaN pixel: the weights turn NaN).
    """
    g = _seed(seed)
    split = D.DATASETS[dataset]()
    if train_size is not None:
        split = split.subset(train_size, seed)
    model = _classifier(arch, split, width, act, dropout, batchnorm)
    opt = _optimizer(optimizer, model.parameters(), lr, weight_decay)
    order = D.batches(len(split.x_train), batch_size, g)
    evals: list[tuple[int, float, float]] = []
    with mr.Monitor(logdir) as mon:
        for step in range(steps):
            if warmup:
                _set_lr(opt, lr * _warmup_cosine(step, warmup, steps))
            if restarts:
                factor = lr_factor if inject == "lr10" and _injected(inject_at, step) else 1.0
                _set_lr(opt, factor * lr * 0.5 * (1.0 + math.cos(math.pi * (step % restarts) / restarts)))
            elif inject == "lr10" and step == inject_at:
                _scale_lr(opt, lr_factor)
            idx = next(order)
            x, y = split.x_train[idx], split.y_train[idx]
            if inject == "nan" and step == inject_at:
                x = x.clone()
                x[0, 0] = float("nan")
            logits, z = model(x)
            loss = F.cross_entropy(logits, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            inputs: dict[str, Any] = {"loss": loss, "model": model, "optimizer": opt}
            if train_accuracy:
                inputs["accuracy"] = (logits.argmax(1) == y).float().mean()
            if embeddings:
                inputs["embeddings"] = lambda z=z: z.detach()
            mon.step(**inputs)
            if step % eval_every == 0 or step == steps - 1:
                val_loss, val_acc = _evaluate(model, split)
                evals.append((step, val_loss, val_acc))
                mon.eval(loss=val_loss, accuracy=val_acc)
    return _classifier_info(loss, evals)


def _classifier_info(loss: torch.Tensor, evals: list[tuple[int, float, float]]) -> Info:
    finite = [e for e in evals if math.isfinite(e[1])]
    best = min(finite, key=lambda e: e[1]) if finite else (None, math.nan, math.nan)
    return {
        "final_loss": float(loss.detach()),
        "final_val_loss": evals[-1][1],
        "final_val_accuracy": evals[-1][2],
        "best_val_loss": best[1],
        "best_val_step": best[0],
        "best_val_accuracy": max((e[2] for e in finite), default=math.nan),
    }


# --- reconstruction -------------------------------------------------------------------------------


def _psnr(recon: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over images of per-image PSNR (data range 1)."""
    mse = (recon - target).pow(2).mean(1).clamp_min(1e-10)
    return (10 * torch.log10(1.0 / mse)).mean()


def autoencoder(
    logdir: str,
    seed: int,
    steps: int = 2000,
    *,
    lr: float = 1e-3,
    batch_size: int = 64,
    bottleneck: int = 16,
    train_size: int | None = None,
    eval_every: int = 100,
    inject: str | None = None,
    inject_at: int | None = None,
    lr_factor: float = 10.0,
) -> Info:
    """An MLP autoencoder on digits, judged by PSNR: ``mon.step(loss=mse, psnr=...)``, ``mon.eval(loss, psnr)``."""
    g = _seed(seed)
    split = D.digits()
    if train_size is not None:
        split = split.subset(train_size, seed)
    model = nn.Sequential(mlp([64, 256, bottleneck]), mlp([bottleneck, 256, 64]), nn.Sigmoid())
    opt = _optimizer("adam", model.parameters(), lr)
    order = D.batches(len(split.x_train), batch_size, g)
    evals: list[tuple[int, float, float]] = []
    with mr.Monitor(logdir) as mon:
        for step in range(steps):
            if inject == "lr10" and step == inject_at:
                _scale_lr(opt, lr_factor)
            x = split.x_train[next(order)]
            recon = model(x)
            loss = F.mse_loss(recon, x)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            mon.step(loss=loss, model=model, optimizer=opt, psnr=_psnr(recon.detach(), x))
            if step % eval_every == 0 or step == steps - 1:
                with torch.no_grad():
                    r = model(split.x_val)
                    val_loss, val_psnr = float(F.mse_loss(r, split.x_val)), float(_psnr(r, split.x_val))
                evals.append((step, val_loss, val_psnr))
                mon.eval(loss=val_loss, psnr=val_psnr)
    finite = [e for e in evals if math.isfinite(e[1])]
    best = min(finite, key=lambda e: e[1]) if finite else (None, math.nan, math.nan)
    return {
        "final_loss": float(loss.detach()),
        "final_val_psnr": evals[-1][2],
        "best_val_psnr": best[2],
        "best_val_step": best[0],
        "best_val_loss": best[1],
        "final_val_loss": evals[-1][1],
    }


# --- two heads on one trunk: classification + reconstruction ------------------------------------


class TwoHead(nn.Module):
    """A shared MLP trunk with a classification head and a reconstruction (decoder) head."""

    def __init__(self, classes: int = 10, width: int = 64) -> None:
        super().__init__()
        self.trunk = mlp([64, 128, width], last_act=True)
        self.cls_head = nn.Linear(width, classes)
        self.recon_head = nn.Sequential(mlp([width, 128, 64]), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        z = self.trunk(x)
        return self.cls_head(z), self.recon_head(z), z


def two_head(
    logdir: str,
    seed: int,
    steps: int = 2000,
    *,
    optimizer: str = "adam",
    lr: float = 1e-3,
    recon_weight: float = 10.0,
    batch_size: int = 64,
    eval_every: int = 100,
    inject: str | None = None,
    inject_at: int | None = None,
    off_weight: float = 0.0,
) -> Info:
    """Multi-task digits: cross-entropy + ``recon_weight`` × MSE, with ``losses=`` and ``heads=`` as the seeds log them.

    ``inject="head_off"`` sets the reconstruction loss weight to ``off_weight`` at
    ``inject_at`` (a loss-balance bug: a weight schedule that decays to nothing, a term
    dropped from the sum): the decoder stops learning while the classifier trains on.
    """
    g = _seed(seed)
    split = D.digits()
    model = TwoHead(split.classes)
    opt = _optimizer(optimizer, model.parameters(), lr)
    order = D.batches(len(split.x_train), batch_size, g)
    heads = {"cls": "cls_head", "recon": "recon_head"}
    evals: list[tuple[int, float, float, float]] = []
    with mr.Monitor(logdir) as mon:
        for step in range(steps):
            w = off_weight if inject == "head_off" and _injected(inject_at, step) else recon_weight
            idx = next(order)
            x, y = split.x_train[idx], split.y_train[idx]
            logits, recon, _ = model(x)
            ce, mse = F.cross_entropy(logits, y), F.mse_loss(recon, x)
            loss = ce + w * mse
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            mon.step(
                loss=loss, model=model, optimizer=opt, heads=heads,
                losses={"cls": ce.detach(), "recon": (w * mse).detach()},
                accuracy=(logits.argmax(1) == y).float().mean(),
            )  # fmt: skip
            if step % eval_every == 0 or step == steps - 1:
                with torch.no_grad():
                    vl, vr, _ = model(split.x_val)
                    v_ce = float(F.cross_entropy(vl, split.y_val))
                    v_acc = float((vl.argmax(1) == split.y_val).float().mean())
                    v_psnr = float(_psnr(vr, split.x_val))
                evals.append((step, v_ce, v_acc, v_psnr))
                mon.eval(loss=v_ce, accuracy=v_acc)
    at = [e for e in evals if inject_at is not None and e[0] <= inject_at]
    return {
        "final_loss": float(loss.detach()),
        "final_val_accuracy": evals[-1][2],
        "decoder_val_psnr": evals[-1][3],
        "decoder_val_psnr_at_onset": at[-1][3] if at else None,
        "decoder_best_val_psnr": max(e[3] for e in evals),
        "decoder_best_val_psnr_step": max(evals, key=lambda e: e[3])[0],
    }


# --- two "modalities" of one sample, aligned contrastively (CLIP-style) -----------------------------


def _halves(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The top and bottom four rows of 8×8 digits: two views that only their digit links."""
    return x[:, :32], x[:, 32:]


@torch.no_grad()
def _retrieval_top1(enc_a: nn.Module, enc_b: nn.Module, x: torch.Tensor) -> float:
    """Fraction of validation pairs whose nearest other-modality embedding is their own pair."""
    a, b = _halves(x)
    za, zb = F.normalize(enc_a(a), dim=1), F.normalize(enc_b(b), dim=1)
    hits = (za @ zb.T).argmax(1) == torch.arange(len(za))
    return float(hits.float().mean())


def paired(
    logdir: str,
    seed: int,
    steps: int = 2000,
    *,
    lr: float = 1e-3,
    optimizer: str = "adam",
    batch_size: int = 128,
    temperature: float = 0.1,
    dim: int = 32,
    inject: str | None = None,
    inject_at: int | None = None,
) -> Info:
    """Two encoders (top / bottom half of a digit) trained with a symmetric InfoNCE loss.

    ``mon.step(paired_embeddings=(a, b))`` as README shows for multimodal models.
    ``inject="shuffle"`` misaligns the pairs from ``inject_at`` (the second modality's batch
    is permuted: a loader that shuffles one modality on its own): nothing links a pair any more.
    """
    g = _seed(seed)
    split = D.digits()
    enc_a, enc_b = mlp([32, 128, dim]), mlp([32, 128, dim])
    model = nn.ModuleDict({"a": enc_a, "b": enc_b})
    opt = _optimizer(optimizer, model.parameters(), lr)
    order = D.batches(len(split.x_train), batch_size, g)
    at_onset = None
    with mr.Monitor(logdir) as mon:
        for step in range(steps):
            if inject == "shuffle" and step == inject_at:
                at_onset = _retrieval_top1(enc_a, enc_b, split.x_val)
            a, b = _halves(split.x_train[next(order)])
            if inject == "shuffle" and _injected(inject_at, step):
                b = b[torch.randperm(len(b), generator=g)]
            za, zb = F.normalize(enc_a(a), dim=1), F.normalize(enc_b(b), dim=1)
            logits = za @ zb.T / temperature
            target = torch.arange(len(za))
            loss = (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            mon.step(
                loss=loss, model=model, optimizer=opt,
                paired_embeddings=lambda za=za, zb=zb: (za.detach(), zb.detach()),
            )  # fmt: skip
    return {
        "final_loss": float(loss.detach()),
        "val_retrieval_top1": _retrieval_top1(enc_a, enc_b, split.x_val),
        "val_retrieval_top1_at_onset": at_onset,
    }


LOOPS: dict[str, Callable[..., Info]] = {
    "byol": byol,
    "vicreg": vicreg,
    "dino": dino,
    "classifier": classifier,
    "autoencoder": autoencoder,
    "two_head": two_head,
    "paired": paired,
}
