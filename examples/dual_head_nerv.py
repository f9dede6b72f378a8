"""The dual-head HNeRV seed's TensorBoard logging, reproduced with metricreg (see docs/seeds.md).

A tiny patch-based neural video representation on a synthetic video (40 frames of
16×32 RGB: drifting colour blobs over a moving gradient, 8 patches of 8×8 per frame).
A shared decoder maps (frame time, patch position) to features; two heads read them:

* ``rgb_head`` reconstructs the patch's pixels (pixel loss: MSE; quality: PSNR),
* ``clip_head`` predicts the patch's semantic embedding from a frozen random
  "CLIP stand-in" encoder (clip loss: 1 − cosine), switched on after a warm-up.

Every 5th frame is held out (NeRV's interpolation frames): the generalization gap on
PSNR is train PSNR − validation PSNR, as the seed's ``Eval/Gap/psnr_gap``.

The seed logged PSNR, its spread, loss components and their balance, per-head gradient
norms, head parameter statistics and the train/val gap by hand. Here ``losses`` gives
``train/losses/<name>`` and ``<name>_share`` (the loss balance), ``reconstruction`` /
``image`` give PSNR and its spread, ``model`` gives per-module gradient norms
(``optimization/grad_flow/rgb_head``, ``clip_head``, ``decoder``), ``heads`` the per-head
gradient norms, their ratio and the heads' parameter mean/std
(``optimization/heads/...``), ``warmup`` the warm-up flag, and ``mon.eval`` the validation
values and gaps. Only the unweighted CLIP loss, a per-patch PSNR spread and the data set
sizes are still logged with ``mon.log`` under the seed's names.

    python examples/dual_head_nerv.py --logdir runs/nerv
    tensorboard --logdir runs        # Health tab; `metricreg report runs/nerv`

Needs PyTorch.
"""

from __future__ import annotations

import argparse
import math
import sys
import time

import metricreg as mr

FRAMES, H, W, P = 40, 16, 32, 8  # frames, frame height/width, patch size: 2 × 4 = 8 patches a frame
CLIP_DIM, CLIP_WEIGHT, WARMUP = 16, 0.5, 50  # the seed's λ and CLIP warm-up (steps; see docs/seeds.md)
EVAL_EVERY = 50
CONFIG = {  # a 400-step run: the 100-step defaults every 50
    "prediction/psnr_spread": {"every": 50},
    "prediction/cosine": {"every": 50},
    "optimization/heads": {"every": 50},
}


def make_video(generator):
    """(FRAMES, H, W, 3) in [0, 1]: three Gaussian blobs on circular paths over a drifting gradient."""
    import torch

    t = torch.linspace(0, 1, FRAMES)[:, None, None]
    y = torch.linspace(0, 1, H)[None, :, None]
    x = torch.linspace(0, 1, W)[None, None, :]
    frames = [0.3 + 0.2 * torch.sin(2 * math.pi * (x + 0.5 * t + c / 3)) * torch.cos(math.pi * y) for c in range(3)]
    video = torch.stack(frames, -1).expand(FRAMES, H, W, 3).clone()
    for _ in range(3):
        phase = torch.rand(1, generator=generator).item() * 2 * math.pi
        cy = 0.5 + 0.3 * torch.sin(2 * math.pi * t + phase)
        cx = 0.5 + 0.35 * torch.cos(2 * math.pi * t + phase)
        blob = torch.exp(-(((y - cy) * H) ** 2 + ((x - cx) * W) ** 2) / 18.0)
        colour = torch.rand(3, generator=generator)
        video = video + 0.5 * blob[..., None] * colour
    return video.clamp(0, 1)


def to_patches(video):
    """(N, H, W, 3) -> (N, 8, P*P*3), patches in row-major order."""
    n = video.shape[0]
    return video.reshape(n, H // P, P, W // P, P, 3).permute(0, 1, 3, 2, 4, 5).reshape(n, (H // P) * (W // P), -1)


def to_frames(patches):
    """Inverse of to_patches."""
    n = patches.shape[0]
    return patches.reshape(n, H // P, W // P, P, P, 3).permute(0, 1, 3, 2, 4, 5).reshape(n, H, W, 3)


def coordinates(frame_ids):
    """Fourier features of (time, patch row, patch column) for every patch of the given frames: (N, 8, 30)."""
    import torch

    t = frame_ids.float()[:, None].expand(-1, 8) / FRAMES
    row = torch.arange(8).div(4, rounding_mode="floor").float().expand_as(t)
    col = (torch.arange(8) % 4).float().expand_as(t)
    coords = torch.stack([t, row / 2, col / 4], -1)
    bands = 2.0 ** torch.arange(5) * math.pi
    angles = coords[..., None] * bands
    return torch.cat([angles.sin(), angles.cos()], -1).flatten(-2)


def build():
    from torch import nn

    class DualHeadNeRV(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.decoder = nn.Sequential(nn.Linear(30, 256), nn.GELU(), nn.Linear(256, 256), nn.GELU())
            self.rgb_head = nn.Linear(256, P * P * 3)
            self.clip_head = nn.Linear(256, CLIP_DIM)

        def forward(self, coords):
            h = self.decoder(coords)
            return self.rgb_head(h).sigmoid(), self.clip_head(h)

    return DualHeadNeRV()


def psnr_per_frame(pred, frames):
    """PSNR (dB) of every frame, data range 1."""
    return -10 * ((pred - frames) ** 2).flatten(1).mean(1).log10()


def evaluate(model, clip, frame_ids, video):
    """The seed's Eval/Frame values on some frames, in eval mode."""
    import torch
    import torch.nn.functional as F

    model.eval()
    with torch.no_grad():
        rgb, sem = model(coordinates(frame_ids))
        frames = video[frame_ids]
        psnr = psnr_per_frame(to_frames(rgb), frames)
        sim = F.cosine_similarity(sem, clip(to_patches(frames)), dim=-1)
        pixel = F.mse_loss(rgb, to_patches(frames))
    model.train()
    return {
        "loss": pixel + CLIP_WEIGHT * (1 - sim.mean()),
        "psnr": psnr.mean(),
        "clip_sim": sim.mean(),
        "psnr_std": psnr.std(),
        "psnr_min": psnr.min(),
        "psnr_max": psnr.max(),
        "clip_sim_std": sim.std(),
    }


def train(logdir: str, steps: int = 400, seed: int = 0) -> dict[str, float]:
    import torch
    import torch.nn.functional as F

    torch.manual_seed(seed)
    video = make_video(torch.Generator().manual_seed(seed))
    ids = torch.arange(FRAMES)
    train_ids, val_ids = ids[ids % 5 != 2], ids[ids % 5 == 2]
    clip_proj = torch.randn(P * P * 3, CLIP_DIM, generator=torch.Generator().manual_seed(seed + 1))
    clip = lambda patches: torch.tanh((patches - 0.5) @ clip_proj / 4)  # noqa: E731 - the frozen "CLIP" encoder
    model = build()
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    coords, frames = coordinates(train_ids), video[train_ids]
    target_rgb, target_clip = to_patches(frames), clip(to_patches(frames))

    with mr.Monitor(logdir, config=CONFIG) as mon:
        mon.log({"Info/num_train_frames": len(train_ids), "Info/num_train_patches": 8 * len(train_ids)}, 0)
        mon.log({"Info/num_val_frames": len(val_ids), "Info/num_val_patches": 8 * len(val_ids)}, 0)
        for step in range(steps):  # full batch: every training patch, every step
            t0 = time.perf_counter()
            rgb, sem = model(coords)
            pixel_loss = F.mse_loss(rgb, target_rgb)
            clip_loss = 1 - F.cosine_similarity(sem, target_clip, dim=-1).mean()
            clip_active = step >= WARMUP
            weighted = CLIP_WEIGHT * clip_loss if clip_active else torch.zeros(())
            loss = pixel_loss + weighted
            t1 = time.perf_counter()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            t2 = time.perf_counter()
            opt.step()
            sched.step()

            # --- monitoring: the seed's per-batch, per-epoch and per-eval logging -----------------
            recon = to_frames(rgb.detach())
            mon.step(
                step,
                loss=loss.detach(),  # with warmup=, the stability rules restart when the CLIP term joins
                losses={"pixel": pixel_loss.detach(), "clip_weighted": weighted.detach()},  # and _share
                warmup=not clip_active,  # the seed's clip_loss_active, inverted
                reconstruction=recon,  # (frames, H, W, 3): prediction/psnr, psnr_spread, psnr_hist
                image=frames,
                predictions=sem.detach(),  # clip head vs its targets: prediction/cosine/*
                targets=target_clip,
                psnr=psnr_per_frame(recon, frames).mean(),  # the training side of gap/psnr
                clip_sim=1 - clip_loss.detach(),  # ... and of gap/clip_sim
                model=model,
                heads={"rgb_head": "rgb_head", "clip_head": "clip_head"},  # optimization/heads/<head>/...
                optimizer=opt,
                batch_size=len(train_ids),
                forward_time=t1 - t0,
                backward_time=t2 - t1,
            )
            if step % 10 == 0:
                patch_psnr = -10 * ((rgb.detach() - target_rgb) ** 2).mean(-1).log10()
                mon.log({"Loss/clip_loss": clip_loss.detach(), "patch_psnr_std": patch_psnr.std()}, step)
            if step % EVAL_EVERY == EVAL_EVERY - 1:
                mon.eval(step, **evaluate(model, clip, val_ids, video))  # val/psnr, gap/psnr, ...
    return {"loss": float(loss.detach()), "train_psnr": float(psnr_per_frame(recon, frames).mean())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--logdir", default="runs/nerv", help="the run directory (default: runs/nerv)")
    parser.add_argument("--steps", type=int, default=400, help="training steps (default: 400)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.steps <= WARMUP:
        parser.error(f"--steps must exceed the CLIP warm-up ({WARMUP} steps)")
    result = train(args.logdir, steps=args.steps, seed=args.seed)
    print(
        f"wrote {args.logdir}: train PSNR {result['train_psnr']:.1f} dB; view with: tensorboard --logdir {args.logdir}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
