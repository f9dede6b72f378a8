"""A JAX training loop monitored by metricreg: parameters as a pytree, arrays stay JAX arrays.

A small MLP regressor (encoder + head) trained with ``jax.value_and_grad`` under
``jax.jit`` and plain SGD, keeping a Polyak/EMA average of the parameters (the usual JAX
idiom for an EMA model). Synthetic data: y = sin(x·w) + noise.

    python examples/jax_train.py --logdir runs/jax
    metricreg report runs/jax

What the monitor gets, all as JAX arrays or pytrees of them (no conversion to numpy in
the loop; the writer thread turns results into numbers):

* ``loss``: the step's loss, a 0-d JAX array;
* ``embeddings``: the encoder's output for the batch -> ``train/collapse/*``;
* ``model`` / ``ema_model`` / ``momentum``: the parameter pytree, its EMA and the EMA
  coefficient -> ``train/ema/*`` (parameters matched by their pytree paths);
* ``grads``: the gradient pytree -> gradient norm and per-module gradient flow;
* ``mon.eval(loss=...)`` -> ``val/loss`` and ``gap/*``.

JAX compiles each new operation shape once; the first due step of each metric therefore
costs more than the later ones.
"""

from __future__ import annotations

import argparse
import functools
import sys

import jax
import jax.numpy as jnp

import metricreg as mr

DIM, HIDDEN, EMBED = 16, 64, 16


def init_params(key: jax.Array) -> dict:
    k1, k2, k3 = jax.random.split(key, 3)
    return {
        "encoder": {
            "dense1": {"kernel": jax.random.normal(k1, (DIM, HIDDEN)) / jnp.sqrt(DIM), "bias": jnp.zeros(HIDDEN)},
            "dense2": {"kernel": jax.random.normal(k2, (HIDDEN, EMBED)) / jnp.sqrt(HIDDEN), "bias": jnp.zeros(EMBED)},
        },
        "head": {"kernel": jax.random.normal(k3, (EMBED, 1)) / jnp.sqrt(EMBED), "bias": jnp.zeros(1)},
    }


def encode(params: dict, x: jax.Array) -> jax.Array:
    h = jax.nn.gelu(x @ params["encoder"]["dense1"]["kernel"] + params["encoder"]["dense1"]["bias"])
    return h @ params["encoder"]["dense2"]["kernel"] + params["encoder"]["dense2"]["bias"]


def loss_fn(params: dict, x: jax.Array, y: jax.Array) -> tuple[jax.Array, jax.Array]:
    z = encode(params, x)
    pred = (z @ params["head"]["kernel"] + params["head"]["bias"])[:, 0]
    return jnp.mean((pred - y) ** 2), z


@jax.jit
def train_step(params: dict, ema: dict, x: jax.Array, y: jax.Array, lr: float, momentum: float):
    (loss, z), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, x, y)
    params = jax.tree_util.tree_map(lambda p, g: p - lr * g, params, grads)
    ema = jax.tree_util.tree_map(lambda e, p: momentum * e + (1.0 - momentum) * p, ema, params)
    return params, ema, loss, z, grads


@jax.jit
def eval_loss(params: dict, x: jax.Array, y: jax.Array) -> jax.Array:
    return loss_fn(params, x, y)[0]


@functools.partial(jax.jit, static_argnums=2)
def make_data(key: jax.Array, w: jax.Array, n: int) -> tuple[jax.Array, jax.Array]:
    kx, kn = jax.random.split(key)
    x = jax.random.normal(kx, (n, DIM))
    return x, jnp.sin(x @ w) + 0.1 * jax.random.normal(kn, (n,))


def train(logdir: str, steps: int = 300, lr: float = 0.05, batch_size: int = 256, seed: int = 0) -> dict:
    key = jax.random.PRNGKey(seed)
    k_w, k_init, k_val, key = jax.random.split(key, 4)
    w = jax.random.normal(k_w, (DIM,)) / jnp.sqrt(DIM)
    x_val, y_val = make_data(k_val, w, 2048)
    params = init_params(k_init)
    ema = params
    momentum = 0.98

    with mr.Monitor(logdir, config={"collapse": {"every": 50}, "ema": {"every": 50}}) as mon:
        for step in range(steps):
            key, k_batch = jax.random.split(key)
            x, y = make_data(k_batch, w, batch_size)
            params, ema, loss, z, grads = train_step(params, ema, x, y, lr, momentum)
            mon.step(step, loss=loss, embeddings=z, model=params, ema_model=ema, momentum=momentum, grads=grads)
            if step % 50 == 0 or step == steps - 1:
                mon.eval(step, loss=eval_loss(params, x_val, y_val))
    return {
        "loss": float(loss),
        "val_loss": float(eval_loss(params, x_val, y_val)),
        "ema_val_loss": float(eval_loss(ema, x_val, y_val)),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="JAX training loop monitored by metricreg")
    parser.add_argument("--logdir", default="runs/jax", help="the run directory (default: runs/jax)")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    result = train(args.logdir, steps=args.steps, seed=args.seed)
    print(
        f"wrote {args.logdir}: final train loss {result['loss']:.4f}, val loss {result['val_loss']:.4f} "
        f"({result['ema_val_loss']:.4f} with the EMA parameters)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
