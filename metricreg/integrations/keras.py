"""Keras 3: ``HealthCallback`` feeds a metricreg Monitor from ``model.fit``, on the torch and JAX backends.

What Keras gives a callback, and what the callback makes of it:

* ``logs["loss"]`` is the running mean since the epoch began; the Monitor gets the loss of
  *this* batch instead, from the loss tracker's total and count (Δtotal / Δcount), on the
  device, without a host sync;
* the learning rate comes from the Keras optimizer: a schedule evaluated at this step's
  iteration (the rate this update used), or the learning-rate variable;
* ``model`` is the trainable variables by path. On the JAX backend ``fit`` keeps the live
  values in ``model._jax_state`` (the variables themselves are purged and the next step
  donates the buffers), so they are read from there and copied on the steps a metric needs
  them. ``grads`` exist on the torch backend only (``variable.value.grad``); the JAX train
  step does not return its gradients, so gradient metrics are skipped there;
* ``val_*`` values at the end of an epoch go to ``mon.eval`` at the last step of the epoch;
* ``should_stop`` sets ``model.stop_training``.

Steps count batches from the optimizer's iteration count when ``fit`` starts (read once);
``steps_per_execution`` must be 1 (a callback sees one batch in k otherwise).
"""

from __future__ import annotations

import os
from typing import Any

try:
    import keras
except ImportError as exc:  # pragma: no cover - depends on what is installed
    raise ImportError("metricreg.integrations.keras needs Keras 3: pip install keras") from exc

from metricreg.integrations._common import ParamGroups, make_monitor
from metricreg.monitor import Monitor

__all__ = ["HealthCallback"]


class HealthCallback(keras.callbacks.Callback):
    """A Keras 3 callback that runs metricreg's metrics on every training batch."""

    def __init__(self, logdir: str | os.PathLike[str], **monitor_kwargs: Any) -> None:
        """``logdir`` is the run directory; other keyword arguments go to :class:`metricreg.Monitor`."""
        super().__init__()
        if not isinstance(logdir, (str, os.PathLike)) or not os.fspath(logdir):
            raise ValueError(f"HealthCallback(logdir=...) needs a directory path, got {logdir!r}")
        self.logdir = os.fspath(logdir)
        self.monitor_kwargs = monitor_kwargs
        self.mon: Monitor | None = None
        self.step = 0
        self._prev: tuple[int, Any, Any] | None = None
        self._epoch_start = 0
        self._index: dict[str, dict[int, int]] = {}

    # --- life cycle ---------------------------------------------------------------------------

    def on_train_begin(self, logs: dict | None = None) -> None:
        model = self.model
        if getattr(model, "_steps_per_execution", 1) not in (1, None):
            raise ValueError("metricreg HealthCallback needs steps_per_execution=1 in model.compile(...)")
        if self.mon is None:
            self.mon = make_monitor(self.logdir, None, None, **self.monitor_kwargs)
        optimizer = model.optimizer
        self.step = int(keras.ops.convert_to_numpy(optimizer.iterations)) if optimizer is not None else 0
        self._index = {
            "trainable_variables": {id(v): i for i, v in enumerate(model.trainable_variables)},
            "optimizer_variables": {id(v): i for i, v in enumerate(optimizer.variables)} if optimizer else {},
            "metrics_variables": {id(v): i for i, v in enumerate(model.metrics_variables)},
        }

    def on_train_end(self, logs: dict | None = None) -> None:
        if self.mon is not None:
            self.mon.close()
            self.mon = None

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._epoch_start = self.step  # fit resets the loss tracker at each epoch

    # --- training -----------------------------------------------------------------------------

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        mon = self.mon
        step = self.step
        self.step += 1
        if mon is None:
            return
        if mon.is_due(step):
            inputs: dict[str, Any] = {"model": self._params, "optimizer": lambda: self._param_groups(step)}
            loss = self._batch_loss(step)
            if loss is not None:
                inputs["loss"] = loss
            if keras.backend.backend() == "torch":
                inputs["grads"] = self._torch_grads
            mon.step(step, **inputs)
        if mon.is_due(step + 1):  # the next step's loss needs this step's tracker totals
            self._prev = (step, *(keras.ops.copy(x) for x in self._tracker()))
        if mon.should_stop:
            self.model.stop_training = True

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if self.mon is None:
            return
        values = {k[len("val_") :]: v for k, v in (logs or {}).items() if k.startswith("val_")}
        if values:
            self.mon.eval(max(self.step - 1, 0), **values)
        self.mon.epoch_end()

    # --- reading live values ------------------------------------------------------------------

    def _live(self, variable: Any, group: str) -> Any:
        """A variable's current value: from fit's JAX state while training on JAX, else the variable."""
        state = getattr(self.model, "_jax_state", None)
        if state and not getattr(self.model, "_jax_state_synced", True):
            i = self._index.get(group, {}).get(id(variable))
            values = state.get(group)
            if i is not None and values:
                return values[i]
        return variable.value

    def _tracker(self) -> tuple[Any, Any]:
        """(total, count) of the loss tracker, live."""
        tracker = self.model._loss_tracker
        return self._live(tracker.total, "metrics_variables"), self._live(tracker.count, "metrics_variables")

    def _batch_loss(self, step: int) -> Any:
        """This batch's loss: Δtotal / Δcount of the loss tracker since the previous batch."""
        tracker = getattr(self.model, "_loss_tracker", None)
        if tracker is None or not hasattr(tracker, "total") or not hasattr(tracker, "count"):
            return None
        total, count = self._tracker()
        if step == self._epoch_start:
            return total / count
        prev = self._prev
        if prev is None or prev[0] != step - 1:
            return None  # no totals from the previous batch (never when the schedule is followed)
        return (total - prev[1]) / (count - prev[2])

    def _params(self) -> dict[str, Any]:
        out = {}
        jax_backend = keras.backend.backend() == "jax"
        for v in self.model.trainable_variables:
            value = self._live(v, "trainable_variables")
            if jax_backend:
                value = value.copy()  # the next step donates this buffer
            out[v.path] = value
        return out

    def _torch_grads(self) -> dict[str, Any] | None:
        out = {}
        for v in self.model.trainable_variables:
            grad = getattr(v.value, "grad", None)
            if grad is not None:
                out[v.path] = grad
        return out or None

    def _param_groups(self, step: int) -> ParamGroups | None:
        optimizer = self.model.optimizer
        lr = getattr(optimizer, "_learning_rate", None)
        if isinstance(lr, keras.optimizers.schedules.LearningRateSchedule):
            value = lr(step)
        elif isinstance(lr, keras.Variable):
            value = self._live(lr, "optimizer_variables")
        elif callable(lr):
            value = lr()
        elif lr is not None:
            value = lr
        else:
            return None
        return ParamGroups([{"lr": value}])
