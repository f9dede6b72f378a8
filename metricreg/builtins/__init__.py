"""Built-in metric plugins, registered through the same hooks as third-party ones.

One module per family (see ``metricreg.plugins.BUILTIN_PLUGINS`` and docs/metrics.md):
loss, collapse, ema, generalization, optimization, stability, performance, system,
prediction. Each module has a ``METRICS`` list and ``metricreg_register_metrics`` /
``metricreg_register_inputs`` hook implementations; the compute functions are plain
functions of their inputs and can be called directly.
"""
