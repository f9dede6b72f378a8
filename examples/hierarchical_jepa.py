"""The H-JEPA seed's TensorBoard logging, reproduced with metricreg (see docs/seeds.md).

A hierarchical JEPA on scikit-learn's 8×8 digits: each image is 16 patches of 2×2
pixels; a context encoder sees the image with half its patches masked, a predictor
predicts the target encoder's features of every patch, and an EMA teacher (the target
encoder) follows the context encoder with a cosine momentum schedule. Three levels:
patches (16 tokens), 2×2 pooled (4 tokens), the whole image (1 token), with a weighted
loss per level.

The seed's hand-written logger computed collapse statistics per level, EMA dynamics,
hierarchical loss contributions, masking, gradient clipping, stability and performance by
hand. Here one ``mon.step`` call replaces it: ``embeddings`` and ``predictions``/``targets``
are per-level dicts, so every collapse and scale statistic fans out to
``train/collapse/<level>/...`` and the prediction quality to ``train/levels/<level>/...``;
``mask`` gives ``train/masking/...`` and ``momentum_target`` the momentum's distance from its
schedule. The few numbers no built-in computes (an unweighted loss sum, the clipped norm,
feature means, token counts, an epoch mean) are logged with ``mon.log`` under the seed's
own names.

    python examples/hierarchical_jepa.py --logdir runs/hjepa
    tensorboard --logdir runs        # Health tab; `metricreg report runs/hjepa`

Needs PyTorch and scikit-learn.
"""

from __future__ import annotations

import argparse
import copy
import math
import sys
import time

import metricreg as mr

LEVEL_WEIGHTS = (1.0, 0.5, 0.25)  # the seed's loss.hierarchy_weights: finest level first
LOG_EVERY = 10  # the seed's log_frequency, scaled to a short run
# The built-ins' defaults (every 100/1000 steps) suit long runs; this run is 300 steps.
CONFIG = {"collapse": {"every": 50}, "collapse_scale": {"every": 50}, "ema": {"every": 50}, "levels/*": {"every": 50}}


def patches(x):
    """(B, 64) digits -> (B, 16, 4): a 4×4 grid of 2×2 patches, row-major."""
    return x.reshape(-1, 4, 2, 4, 2).permute(0, 1, 3, 2, 4).reshape(-1, 16, 4)


def pool(tokens, level: int):
    """Average a (B, 16, d) 4×4 token grid down to level 0 (16), 1 (4) or 2 (1 token)."""
    import torch.nn.functional as F

    if level == 0:
        return tokens
    b, _, d = tokens.shape
    grid = tokens.transpose(1, 2).reshape(b, d, 4, 4)
    return F.avg_pool2d(grid, 2**level).flatten(2).transpose(1, 2)


def build(dim: int = 32):
    import torch
    from torch import nn

    class Mixer(nn.Module):
        """Token MLP plus token mixing: enough for a patch to see the others."""

        def __init__(self) -> None:
            super().__init__()
            self.tokens = nn.Linear(16, 16)
            self.channels = nn.Sequential(
                nn.LayerNorm(dim), nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim)
            )

        def forward(self, h):
            h = h + self.tokens(h.transpose(1, 2)).transpose(1, 2)
            return h + self.channels(h)

    class Hierarchy(nn.Module):
        """Levels 1 and 2: pooled tokens through their own projection (level 0: the tokens themselves)."""

        def __init__(self) -> None:
            super().__init__()
            self.heads = nn.ModuleList([nn.Linear(dim, dim), nn.Linear(dim, dim)])

        def forward(self, h):
            return [h] + [head(pool(h, level)) for level, head in enumerate(self.heads, start=1)]

    class Encoder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Linear(4, dim)
            self.position = nn.Parameter(torch.randn(16, dim) * 0.1)
            self.blocks = nn.Sequential(Mixer(), Mixer())
            self.levels = Hierarchy()

        def forward(self, p):
            return self.levels(self.blocks(self.embed(p) + self.position))

    class Predictor(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.mask_token = nn.Parameter(torch.zeros(dim))
            self.tokens = nn.Sequential(Mixer(), nn.LayerNorm(dim), nn.Linear(dim, dim))
            self.levels = Hierarchy()

        def forward(self, context, mask):
            return self.levels(self.tokens(torch.where(mask[..., None], context + self.mask_token, context)))

    class Student(nn.Module):
        """The trained model: context encoder and predictor (their gradients are the seed's gradient_flow)."""

        def __init__(self) -> None:
            super().__init__()
            self.context_encoder = Encoder()
            self.predictor = Predictor()

        def forward(self, p, mask):
            context = self.context_encoder(p * ~mask[..., None])
            return context, self.predictor(context[0], mask)

    student = Student()
    teacher = copy.deepcopy(student.context_encoder).requires_grad_(False)
    return student, teacher


def normed(levels):
    """Layer-normed targets, per level."""
    import torch.nn.functional as F

    return [F.layer_norm(t, t.shape[-1:]) for t in levels]


def hjepa_losses(preds, targets, mask):
    """Per-level losses against layer-normed targets: masked patches at level 0, every pooled token above."""
    out = {}
    for level, (p, t) in enumerate(zip(preds, normed(targets), strict=True)):
        err = ((p - t) ** 2).mean(-1)
        out[f"h{level}"] = err[mask].mean() if level == 0 else err.mean()
    return out


def train(logdir: str, steps: int = 300, seed: int = 0, batch_size: int = 64) -> dict[str, float]:
    import torch
    from sklearn.datasets import load_digits

    torch.manual_seed(seed)
    digits = torch.tensor(load_digits().data, dtype=torch.float32) / 16.0
    order = torch.randperm(len(digits))
    x_train, x_val = digits[order[:1500]], digits[order[1500:]]
    student, teacher = build()
    opt = torch.optim.AdamW(student.parameters(), lr=2e-3, weight_decay=0.05)
    warmup = 30
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * s / steps))
    )
    max_norm = 5.0

    def momentum_at(s: int, start: float = 0.996, end: float = 1.0) -> float:
        """The seed's EMA schedule: cosine from momentum_start to momentum_end."""
        return end - (end - start) * 0.5 * (1 + math.cos(math.pi * s / steps))

    @torch.no_grad()
    def update_teacher(s: int) -> float:
        """The EMA update; returns the momentum it applied (the seed's update_target_encoder)."""
        m = momentum_at(s)
        for t, p in zip(teacher.parameters(), student.context_encoder.parameters(), strict=True):
            t.mul_(m).add_(p.detach(), alpha=1 - m)
        return m

    epoch_losses: list[float] = []

    with mr.Monitor(logdir, config=CONFIG) as mon:
        for step in range(steps):
            x = patches(x_train[torch.randint(0, len(x_train), (batch_size,))])
            mask = torch.rand(batch_size, 16).argsort(1) < 8  # 8 of 16 patches masked per image
            t0 = time.perf_counter()
            context, pred = student(x, mask)
            with torch.no_grad():
                target = teacher(x)
            parts = {
                k: w * v for (k, v), w in zip(hjepa_losses(pred, target, mask).items(), LEVEL_WEIGHTS, strict=True)
            }
            loss = sum(parts.values())
            t1 = time.perf_counter()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            t2 = time.perf_counter()
            grad_norm = torch.nn.utils.clip_grad_norm_(student.parameters(), max_norm)
            opt.step()
            sched.step()
            momentum = update_teacher(step)

            # --- monitoring: the seed's whole MetricsLogger / HJEPATensorBoardLogger -------------
            levels = {f"level{i}": c.detach().flatten(0, 1) for i, c in enumerate(context)}
            norm_target = normed(target)
            mon.step(
                step,
                loss=loss.detach(),
                losses={k: v.detach() for k, v in parts.items()},  # losses/h0.. and their _share
                embeddings={**levels, "target": target[0].flatten(0, 1)},  # collapse/<level>/...
                predictions={"level0": pred[0].detach()[mask], "level1": pred[1].detach(), "level2": pred[2].detach()},
                targets={"level0": norm_target[0][mask], "level1": norm_target[1], "level2": norm_target[2]},
                mask=mask,  # masking/ratio, num_masked, num_unmasked
                model=student,
                ema_model=teacher,
                momentum=momentum,  # what the update applied ...
                momentum_target=momentum_at(step),  # ... against the schedule: ema/momentum_error
                optimizer=opt,
                grad_norm=grad_norm,  # before clipping
                max_norm=max_norm,
                batch_size=batch_size,
                forward_time=t1 - t0,
                backward_time=t2 - t1,
            )
            epoch_losses.append(float(loss.detach()))
            if step % LOG_EVERY == 0:  # what no built-in computes yet, under the seed's names
                hand = {
                    "loss/unweighted": sum(v.detach() / w for v, w in zip(parts.values(), LEVEL_WEIGHTS, strict=True)),
                    "gradient/global_norm_after_clip": grad_norm.clamp(max=max_norm),
                }
                for i in range(3):
                    hand[f"hierarchy/level{i}_feat_mean"] = levels[f"level{i}"].mean()
                    hand[f"hierarchy/level{i}_num_patches"] = 16 // 4**i
                mon.log(hand, step)
            if (step + 1) % 50 == 0:  # an "epoch" of this short run: its mean loss and a validation pass
                mon.log({"train_epoch/loss": sum(epoch_losses) / len(epoch_losses)}, step, split="train")
                epoch_losses.clear()
                with torch.no_grad():
                    xv = patches(x_val)
                    mv = torch.rand(len(xv), 16).argsort(1) < 8
                    _, pv = student(xv, mv)
                    val = hjepa_losses(pv, teacher(xv), mv)
                mon.eval(step, loss=sum(w * v for v, w in zip(val.values(), LEVEL_WEIGHTS, strict=True)))
    return {"loss": float(loss.detach())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--logdir", default="runs/hjepa", help="the run directory (default: runs/hjepa)")
    parser.add_argument("--steps", type=int, default=300, help="training steps (default: 300)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.steps < 1:
        parser.error("--steps must be positive")
    result = train(args.logdir, steps=args.steps, seed=args.seed)
    print(f"wrote {args.logdir}: final loss {result['loss']:.4f}; view with: tensorboard --logdir {args.logdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
