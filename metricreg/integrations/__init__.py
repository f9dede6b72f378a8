"""Framework integrations: one module per framework, each importing only its own framework.

``metricreg.integrations.lightning``, ``.transformers``, ``.accelerate``, ``.keras`` and
``.jax`` are imported on demand; importing this package imports none of them, so the core
stays free of torch, JAX and the trainers. ``.metrics`` (torchmetrics objects computed for
``Monitor.eval``) recognises torchmetrics without importing it.
"""
