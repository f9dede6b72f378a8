"""Framework integrations: one module per framework, each importing only its own framework.

``metricreg.integrations.lightning``, ``.transformers``, ``.accelerate``, ``.keras`` and
``.jax`` are imported on demand; importing this package imports none of them, so the core
stays free of torch, JAX and the trainers. ``metric_values`` (torchmetrics objects to
values) is here because ``Monitor.eval`` uses it without knowing any framework.
"""

from metricreg.integrations.metrics import metric_values

__all__ = ["metric_values"]
