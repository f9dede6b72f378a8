"""The multimodal seed's TensorBoard logging, reproduced with metricreg (see docs/seeds.md).

Three encoders (text, image, audio) trained contrastively into one 32-dimensional space,
on data made here around scikit-learn's 8×8 digits:

* image: the digit's pixels;
* text: a bag of words of a synthetic caption ("a handwritten seven", with filler words
  and a 10% chance of a wrong digit word);
* audio: 128 samples of a tone whose pitch encodes the digit, random phase and noise,
  seen by its encoder as a magnitude spectrum.

The loss is the seed's: CLIP-style InfoNCE for each modality pair (text_image, text_audio,
image_audio) plus a global term aligning each modality with their mean (global_modal).

The seed logged loss components, embedding mean/std/norm per modality, learning rate,
gradient norm, per-pair diagonal and mean similarity, similarity heatmaps and weight and
gradient histograms by hand. Here ``losses`` gives the components and their shares,
``embeddings`` (a dict per modality) the norm and scale statistics (and collapse) and the
feature histograms per modality, ``paired_embeddings`` (all three modalities) the alignment
and heatmap of every pair, ``model`` the weight and gradient histograms. The embedding means
are logged with ``mon.log`` under the seed's names.

    python examples/multimodal_contrastive.py --logdir runs/multimodal
    tensorboard --logdir runs        # Health tab; `metricreg report runs/multimodal`

Needs PyTorch and scikit-learn.
"""

from __future__ import annotations

import argparse
import math
import sys

import metricreg as mr

DIGIT_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
FILLER = ["a", "the", "handwritten", "digit", "small", "scanned", "number", "image", "of", "blurry"]
VOCAB = {word: i for i, word in enumerate(DIGIT_WORDS + FILLER)}
PAIRS = (("text", "image"), ("text", "audio"), ("image", "audio"))
DIM, TEMPERATURE = 32, 0.1
# The built-ins' defaults (every 100/1000 steps) suit long runs; this run is 300 steps ("epochs" of 50):
# scalars and heatmaps per epoch, feature histograms every 5 epochs, as the seed logged them.
CONFIG = {
    "collapse": {"every": 50},
    "collapse_scale": {"every": 50},
    "prediction/paired": {"every": 50},
    "prediction/similarity": {"every": 50},
    "features": {"every": 250},
}


def make_data(seed: int):
    """(image, text, audio, label) tensors for every digit: the captions and tones are made here."""
    import torch
    from sklearn.datasets import load_digits

    g = torch.Generator().manual_seed(seed)
    digits = load_digits()
    image = torch.tensor(digits.data, dtype=torch.float32) / 16.0
    label = torch.tensor(digits.target)
    n = len(label)
    said = torch.where(torch.rand(n, generator=g) < 0.1, torch.randint(0, 10, (n,), generator=g), label)
    text = torch.zeros(n, len(VOCAB))
    text[torch.arange(n), said] = 1.0
    fillers = torch.randint(len(DIGIT_WORDS), len(VOCAB), (n, 4), generator=g)
    text.scatter_add_(1, fillers, torch.ones(n, 4))
    t = torch.arange(128) / 128
    pitch = (4 + 3 * label.float())[:, None]
    phase = 2 * math.pi * torch.rand(n, 1, generator=g)
    wave = torch.sin(2 * math.pi * pitch * t + phase) + 0.5 * torch.randn(n, 128, generator=g)
    audio = torch.fft.rfft(wave).abs() / 16  # the audio encoder's fixed front end: a magnitude spectrum
    return image, text, audio, label


def build():
    from torch import nn

    def tower(d_in: int) -> nn.Module:
        return nn.Sequential(nn.Linear(d_in, 128), nn.GELU(), nn.Linear(128, DIM))

    return nn.ModuleDict({"text": tower(len(VOCAB)), "image": tower(64), "audio": tower(65)})


def info_nce(a, b):
    """Symmetric InfoNCE (CLIP): row i of a matches row i of b."""
    import torch
    import torch.nn.functional as F

    logits = F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).T / TEMPERATURE
    target = torch.arange(len(a))
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


def contrastive_losses(z: dict) -> dict:
    """The seed's loss components: one InfoNCE per modality pair, and each modality against the global mean."""
    parts = {f"{a}_{b}": info_nce(z[a], z[b]) for a, b in PAIRS}
    parts["global_modal"] = sum(info_nce(z[m], z["global"]) for m in ("text", "image", "audio")) / 3
    return parts


def encode(model, image, text, audio) -> dict:
    import torch
    import torch.nn.functional as F

    z = {"text": model["text"](text), "image": model["image"](image), "audio": model["audio"](audio)}
    z["global"] = torch.stack([F.normalize(v, dim=-1) for v in z.values()]).mean(0)
    return z


def train(logdir: str, steps: int = 300, seed: int = 0, batch_size: int = 128) -> dict[str, float]:
    import torch

    torch.manual_seed(seed)
    image, text, audio, _ = make_data(seed)
    order = torch.randperm(len(image))
    tr, va = order[:1500], order[1500:]
    model = build()
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    epoch_losses: list[float] = []

    with mr.Monitor(logdir, config=CONFIG) as mon:
        for step in range(steps):
            idx = tr[torch.randint(0, len(tr), (batch_size,))]
            z = encode(model, image[idx], text[idx], audio[idx])
            parts = contrastive_losses(z)
            loss = sum(parts.values())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), float("inf"))
            opt.step()
            sched.step()

            # --- monitoring: the seed's per-step, per-epoch and histogram logging -----------------
            detached = {k: v.detach() for k, v in z.items()}
            mon.step(
                step,
                loss=loss.detach(),
                losses={k: v.detach() for k, v in parts.items()},  # losses/<pair> and <pair>_share
                embeddings=detached,  # collapse/<modality>/norm, collapse_scale/<modality>/dim_std_mean, ...
                paired_embeddings={m: detached[m] for m in ("text", "image", "audio")},  # paired/<a>_vs_<b>/*
                model=model,  # weight and gradient histograms, grad_flow per tower
                grad_norm=grad_norm,
                optimizer=opt,
                batch_size=batch_size,
            )
            epoch_losses.append(float(loss.detach()))
            if step % 10 == 0:  # the seed's log_interval: what no built-in computes yet
                mon.log({f"embeddings/{k}/mean": v.mean() for k, v in detached.items()}, step)
            if (step + 1) % 50 == 0:  # an "epoch" of this short run
                losses = torch.tensor(epoch_losses)
                mon.log({"loss/train/epoch_mean": losses.mean(), "loss/train/epoch_std": losses.std()}, step)
                epoch_losses.clear()
                with torch.no_grad():  # validation batches of the training batch size: InfoNCE grows with log(n)
                    chunks = [
                        contrastive_losses(encode(model, image[c], text[c], audio[c])) for c in va.split(batch_size)
                    ]
                    val = {k: sum(c[k] for c in chunks[:-1]) / (len(chunks) - 1) for k in chunks[0]}  # full batches
                mon.eval(step, loss=sum(val.values()), **{f"{k}_loss": v for k, v in val.items()})
    return {"loss": float(loss.detach())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--logdir", default="runs/multimodal", help="the run directory (default: runs/multimodal)")
    parser.add_argument("--steps", type=int, default=300, help="training steps (default: 300)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.steps < 1:
        parser.error("--steps must be positive")
    result = train(args.logdir, steps=args.steps, seed=args.seed)
    print(f"wrote {args.logdir}: final loss {result['loss']:.3f}; view with: tensorboard --logdir {args.logdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
