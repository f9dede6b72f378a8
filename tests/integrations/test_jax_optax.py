"""metricreg.integrations.jax with real JAX, optax and flax: a jitted, donating step on digits."""

from __future__ import annotations

import pytest

pytest.importorskip("jax")
pytest.importorskip("optax")

import jax
import jax.numpy as jnp
import numpy as np
import optax

import metricreg as mr
from metricreg.integrations.jax import optimizer_state, params_of, step_inputs

from .conftest import active_alerts, scalars


def _init(key):
    k1, k2 = jax.random.split(key)
    return {
        "hidden": {"kernel": jax.random.normal(k1, (64, 32)) * 0.125, "bias": jnp.zeros(32)},
        "out": {"kernel": jax.random.normal(k2, (32, 10)) * 0.18, "bias": jnp.zeros(10)},
    }


def _loss(params, x, y):
    h = jax.nn.relu(x @ params["hidden"]["kernel"] + params["hidden"]["bias"])
    logits = h @ params["out"]["kernel"] + params["out"]["bias"]
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()


def test_jitted_donating_loop_with_chained_optax_state(tmp_path, digits):
    x, y = (jnp.asarray(a) for a in digits)
    schedule = optax.exponential_decay(0.05, transition_steps=1, decay_rate=0.99)
    tx = optax.chain(optax.clip_by_global_norm(1.0), optax.inject_hyperparams(optax.sgd)(schedule, momentum=0.9))
    params = _init(jax.random.PRNGKey(0))
    opt_state = tx.init(params)

    @jax.jit
    def grads_of(params, xb, yb):
        return jax.value_and_grad(_loss)(params, xb, yb)

    @jax.jit
    def apply(params, opt_state, grads):
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    apply_donating = jax.jit(apply, donate_argnums=(0, 1))
    norms = {}
    with mr.Monitor(tmp_path / "run") as mon:
        for step in range(110):
            i = (step * 32) % 1472
            loss, grads = grads_of(params, x[i : i + 32], y[i : i + 32])
            norms[step] = float(optax.tree.norm(grads))
            params, opt_state = apply_donating(params, opt_state, grads)
            # After the update: the new optax state holds the learning rate this update used.
            mon.step(step, **step_inputs(params=params, grads=grads, opt_state=opt_state, loss=loss, max_norm=1.0))
            if step % 50 == 49:
                mon.eval(step, loss=_loss(params, x[1500:], y[1500:]))
        assert mon.errors == {}  # no "Array has been deleted" from the donated buffers

    ours = scalars(tmp_path / "run")
    for step, lr in ours["train/optimization/lr"]:
        assert lr == pytest.approx(float(schedule(step)), rel=1e-5)
    for step, value in ours["train/optimization/grad_norm"]:
        assert value == pytest.approx(norms[step], rel=1e-5)  # the norm before optax clips
    assert [s for s, _ in ours["train/optimization/update_ratio"]] == [100]
    assert "train/optimization/clip_fraction" in ours
    assert active_alerts(tmp_path / "run") == []


def test_optimizer_state_finds_injected_hyperparams_anywhere():
    params = {"w": jnp.ones(3)}
    inner = optax.inject_hyperparams(optax.adam)(learning_rate=3e-4)
    wrapped = optax.MultiSteps(optax.chain(optax.add_decayed_weights(1e-4), inner), every_k_schedule=2)
    state = optimizer_state(wrapped.init(params))
    assert float(state.hyperparams["learning_rate"]) == pytest.approx(3e-4)
    assert optimizer_state(optax.sgd(0.1).init(params)) is None  # nothing injected: no lr metric


def test_flax_nnx_module_parameters():
    nnx = pytest.importorskip("flax.nnx")
    model = nnx.Linear(4, 3, rngs=nnx.Rngs(0))
    tree = params_of(model)
    assert set(tree) == {"kernel", "bias"}
    assert np.asarray(tree["kernel"]).shape == (4, 3)
    assert set(step_inputs(params=model, donated=False)["model"]) == {"kernel", "bias"}
