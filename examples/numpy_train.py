"""A numpy-only training loop monitored by metricreg: no torch, no JAX anywhere.

A two-layer MLP classifier written by hand (forward, backward, SGD with momentum) on
synthetic data: 16-dimensional Gaussian inputs labelled (4 classes) by a fixed random
network, with 5% label noise. The monitor gets plain numpy
arrays and dicts of them; every built-in metric that applies runs on numpy through the
array API, exactly as it would on torch or JAX arrays.

    python examples/numpy_train.py --logdir runs/numpy
    metricreg report runs/numpy

Inputs given to ``mon.step`` (see ``metricreg plugins``):

* ``loss``, ``accuracy``: numbers -> ``train/loss``, ``train/accuracy``, the stability rules
  and the training side of the generalization gap;
* ``embeddings``: the hidden activations -> ``train/collapse/*`` (RankMe, effective rank, ...);
* ``model``: the parameters as a dict of arrays (a pytree) -> update / weight ratio;
* ``grads``: the gradients as a dict of arrays -> gradient norm and per-layer gradient flow;
* ``mon.eval(loss=..., accuracy=...)`` -> ``val/*`` and ``gap/*``.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

import metricreg as mr


def make_teacher(rng: np.random.Generator, dim: int = 16, classes: int = 4) -> dict[str, np.ndarray]:
    """A fixed random network that defines the labels: a nonlinear task that uses every input dimension."""
    return {"w1": rng.standard_normal((dim, 32)) / np.sqrt(dim), "w2": rng.standard_normal((32, classes))}


def make_data(n: int, teacher: dict, rng: np.random.Generator, label_noise: float = 0.05):
    """Gaussian inputs labelled by the teacher network; a fraction of labels replaced at random."""
    dim, classes = teacher["w1"].shape[0], teacher["w2"].shape[1]
    x = rng.standard_normal((n, dim))
    y = (np.tanh(x @ teacher["w1"]) @ teacher["w2"]).argmax(axis=1)
    noisy = rng.random(n) < label_noise
    y[noisy] = rng.integers(0, classes, size=int(noisy.sum()))
    return x.astype(np.float32), y


def init_params(rng: np.random.Generator, dim: int, hidden: int, classes: int) -> dict[str, np.ndarray]:
    return {
        "hidden.weight": (rng.standard_normal((dim, hidden)) * np.sqrt(2.0 / dim)).astype(np.float32),
        "hidden.bias": np.zeros(hidden, np.float32),
        "out.weight": (rng.standard_normal((hidden, classes)) * np.sqrt(1.0 / hidden)).astype(np.float32),
        "out.bias": np.zeros(classes, np.float32),
    }


def forward(params: dict[str, np.ndarray], x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    pre = x @ params["hidden.weight"] + params["hidden.bias"]
    h = np.maximum(pre, 0.0)
    logits = h @ params["out.weight"] + params["out.bias"]
    return pre, h, logits


def loss_and_grads(params, x, y):
    """Softmax cross-entropy, accuracy, hidden activations and the gradient of every parameter."""
    pre, h, logits = forward(params, x)
    shifted = logits - logits.max(axis=1, keepdims=True)
    probs = np.exp(shifted)
    probs /= probs.sum(axis=1, keepdims=True)
    n = x.shape[0]
    loss = float(-np.log(probs[np.arange(n), y] + 1e-12).mean())
    accuracy = float((logits.argmax(axis=1) == y).mean())
    d_logits = probs
    d_logits[np.arange(n), y] -= 1.0
    d_logits /= n
    d_h = d_logits @ params["out.weight"].T
    d_pre = d_h * (pre > 0)
    grads = {
        "hidden.weight": x.T @ d_pre,
        "hidden.bias": d_pre.sum(axis=0),
        "out.weight": h.T @ d_logits,
        "out.bias": d_logits.sum(axis=0),
    }
    return loss, accuracy, h, grads


def evaluate(params, x, y) -> tuple[float, float]:
    loss, accuracy, _, _ = loss_and_grads(params, x, y)
    return loss, accuracy


def train(logdir: str, steps: int = 400, lr: float = 0.1, batch_size: int = 128, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    teacher = make_teacher(rng)
    x_train, y_train = make_data(8192, teacher, rng)
    x_val, y_val = make_data(2048, teacher, rng)
    params = init_params(rng, x_train.shape[1], hidden=32, classes=4)
    velocity = {k: np.zeros_like(v) for k, v in params.items()}

    # Denser collapse checks than the default (every 100 steps) because this run is short.
    with mr.Monitor(logdir, config={"collapse": {"every": 50}}) as mon:
        for step in range(steps):
            idx = rng.integers(0, len(x_train), size=batch_size)
            loss, accuracy, hidden, grads = loss_and_grads(params, x_train[idx], y_train[idx])
            for k in params:  # SGD with momentum 0.9
                velocity[k] = 0.9 * velocity[k] + grads[k]
                params[k] = params[k] - lr * velocity[k]
            mon.step(
                step,
                loss=loss,
                accuracy=accuracy,
                embeddings=hidden,
                model=params,
                grads=grads,
            )
            if step % 50 == 0 or step == steps - 1:
                val_loss, val_accuracy = evaluate(params, x_val, y_val)
                mon.eval(step, loss=val_loss, accuracy=val_accuracy)
    return {"loss": loss, "val_loss": val_loss, "val_accuracy": val_accuracy}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="numpy-only training loop monitored by metricreg")
    parser.add_argument("--logdir", default="runs/numpy", help="the run directory (default: runs/numpy)")
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    result = train(args.logdir, steps=args.steps, seed=args.seed)
    print(
        f"wrote {args.logdir}: final train loss {result['loss']:.3f}, "
        f"val loss {result['val_loss']:.3f}, val accuracy {result['val_accuracy']:.3f}"
    )
    print(f"torch imported: {'torch' in sys.modules}, jax imported: {'jax' in sys.modules}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
