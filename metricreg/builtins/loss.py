"""Plain logging of the training loss and accuracy, with health rules.

``train/loss`` and ``train/accuracy`` every 10 steps (a per-sample vector is averaged).
Eval values given to ``mon.eval`` are written by the Monitor itself as ``<split>/<name>``.
"""

from __future__ import annotations

from typing import Any

from metricreg import arrays as A
from metricreg.hookspecs import hookimpl
from metricreg.rule_jobs import writer_rule
from metricreg.spec import Health, Metric


def scalar(x: Any) -> Any:
    """A detached scalar: the value itself, or the mean of a per-sample array.

    A one-element CPU tensor or numpy array is read as a float now (A.host_scalar, ~0.2 µs): the
    same number the writer would read later, without a copy of the tensor taken at its step.
    """
    x = A.host_scalar(x)
    if A.is_array(x):
        x = A.detach(x)
        if getattr(x, "ndim", 0):
            xp = A.namespace(x)
            return xp.mean(A.to_float(x, xp))
        return x
    return x


@writer_rule
def loss(loss: Any) -> Any:
    return scalar(loss)


@writer_rule
def accuracy(accuracy: Any) -> Any:
    return scalar(accuracy)


HEALTH_LOSS = Health(
    category="stability",
    nonfinite="critical",
    direction="lower_is_better",
    title="training loss",
    description="The training loss (sampled every 10 steps).",
    remedy="A NaN/Inf loss: lower the learning rate, enable gradient clipping, check for log(0) or division "
    "by zero, use a loss scaler (or bf16) under mixed precision, and resume from the last finite checkpoint.",
)
HEALTH_ACCURACY = Health(
    category="prediction",
    direction="higher_is_better",
    title="training accuracy",
    description="Training accuracy (sampled every 10 steps).",
)

METRICS = [
    Metric("loss", compute=loss, every=10, health=HEALTH_LOSS, reduce="mean", description=HEALTH_LOSS.description),
    Metric(
        "accuracy",
        compute=accuracy,
        every=10,
        health=HEALTH_ACCURACY,
        reduce="mean",
        description=HEALTH_ACCURACY.description,
    ),
]


@hookimpl
def metricreg_register_inputs(register):
    register("loss", description="the training loss of this step (scalar)")
    register("accuracy", description="training accuracy of this step (scalar)")


@hookimpl
def metricreg_register_metrics(register):
    for metric in METRICS:
        register(metric)
