"""Lightning: ``HealthCallback`` feeds a metricreg Monitor from a ``Trainer``.

Works with ``lightning`` (``lightning.pytorch``) or the standalone ``pytorch_lightning``;
``HealthCallback`` subclasses whichever is installed (``lightning`` first), and
``callback_class(pl)`` builds one for a given package when both are.

What the callback takes from Lightning, and where:

* the step number is the one Lightning's own loggers write (``_batches_that_stepped``),
  so ``train/loss`` from metricreg and ``train_loss`` from ``self.log`` share x values;
* the loss is read in ``on_before_backward`` (every micro-batch) and un-normalised: under
  ``accumulate_grad_batches=k`` Lightning divides it by k, the Monitor gets the mean of the
  window's raw losses;
* the gradient norm and the learning rate are read in ``on_before_optimizer_step``, which
  Lightning calls after backward and *before* it clips (``Precision._after_closure``) and
  before the scheduler steps; ``max_norm`` is ``gradient_clip_val``;
* the Monitor step runs in ``on_train_batch_end`` of the batch that stepped the optimizer,
  so a ``training_step`` that returns a dict passes its other keys (``embeddings``, ...) too;
* validation and test values logged with ``self.log("val_loss")``/``"val/acc"``/``"test_*"``
  reach ``mon.eval`` at Lightning's step (``_epoch`` suffixes removed, ``_step`` copies skipped);
* DDP ranks come from the trainer; ``should_stop`` is shared from rank 0 every
  ``stop_check_every`` optimizer steps and sets ``trainer.should_stop`` on every rank.
"""

from __future__ import annotations

import json
import os
import time
from collections import OrderedDict
from typing import Any

from metricreg import adapters
from metricreg.integrations._common import ParamGroups, hyperparameters, make_monitor, split_key, stop_plugin
from metricreg.monitor import Monitor

try:  # the unified package first, the standalone one otherwise
    import lightning.pytorch as _pl
except ImportError:  # pragma: no cover - depends on what is installed
    try:
        import pytorch_lightning as _pl
    except ImportError as exc:
        raise ImportError(
            "metricreg.integrations.lightning needs `lightning` or `pytorch_lightning`: pip install lightning"
        ) from exc

__all__ = ["HealthCallback", "callback_class"]

EVAL_PREFIXES = {"val": "val", "validation": "val", "test": "test"}


class _HealthCallbackMixin:
    """The callback's behaviour; combined with a Lightning ``Callback`` base by :func:`callback_class`."""

    def __init__(
        self,
        logdir: str | os.PathLike[str] | None = None,
        *,
        ema_attr: str | None = None,
        ema_of: str | None = None,
        stop_check_every: int = 10,
        log_hyperparameters: bool = True,
        stop_on: str | None = None,
        stop_tags: tuple[str, ...] = ("*",),
        flops_per_batch: float | None = None,
        peak_flops: float | None = None,
        **monitor_kwargs: Any,
    ) -> None:
        """``logdir`` defaults to ``<trainer.log_dir>/metricreg`` (beside the trainer's logger).

        ``ema_attr`` names a module attribute holding an EMA teacher (``"teacher"``) and ``ema_of``
        the submodule it is the average of (``"encoder"``; default the whole module); without it a
        ``WeightAveraging`` callback's averaged model is used when present. ``stop_on="critical"``
        (or ``"warn"``) stops training on such an alert for a tag matching ``stop_tags`` (as
        Lightning's SpikeDetection does for ``("train/stability/spikes*",)``) and writes the batches
        to skip when resuming to ``<logdir>/skip_batches.json``. ``flops_per_batch`` (e.g. from
        ``lightning.fabric.utilities.measure_flops``) adds achieved FLOP/s, and with ``peak_flops``
        the model FLOPs utilisation, as Lightning's ThroughputMonitor does. Other keyword arguments
        go to :class:`metricreg.Monitor`.
        """
        if stop_check_every < 1:
            raise ValueError(f"HealthCallback(stop_check_every=...) must be >= 1, got {stop_check_every!r}")
        for name, value in (("flops_per_batch", flops_per_batch), ("peak_flops", peak_flops)):
            if value is not None and not (isinstance(value, (int, float)) and value > 0):
                raise ValueError(f"HealthCallback({name}=...) must be a positive number, got {value!r}")
        self._stop = stop_plugin(stop_on, stop_tags)
        self.flops_per_batch = flops_per_batch
        self.peak_flops = peak_flops
        self._clock: tuple[int, float] | None = None
        self._batches: OrderedDict[int, tuple[int, int]] = OrderedDict()
        self.logdir = os.fspath(logdir) if logdir is not None else None
        self.ema_attr = ema_attr
        self.ema_of = ema_of
        self.stop_check_every = int(stop_check_every)
        self.log_hyperparameters = log_hyperparameters
        self.monitor_kwargs = monitor_kwargs
        self.mon: Monitor | None = None
        self._reset_window()

    # --- life cycle ---------------------------------------------------------------------------

    def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
        # Lightning has set up the process group by now; trainer.log_dir is a collective under DDP.
        if self.mon is None:
            logdir = self.logdir or os.path.join(trainer.log_dir or trainer.default_root_dir, "metricreg")
            self.logdir = logdir
            kwargs = dict(self.monitor_kwargs)
            if self._stop is not None:
                kwargs["plugins"] = [*kwargs.get("plugins", ()), self._stop]
            self.mon = make_monitor(logdir, trainer.global_rank, trainer.world_size, **kwargs)

    def teardown(self, trainer: Any, pl_module: Any, stage: str) -> None:
        if self.mon is not None:
            self.mon.close()
            self.mon = None

    # --- training -----------------------------------------------------------------------------

    def _reset_window(self) -> None:
        self._loss_sum: Any = None
        self._loss_count = 0
        self._grad_norm: Any = None
        self._groups: ParamGroups | None = None
        self._optimizer: Any = None

    def on_before_backward(self, trainer: Any, pl_module: Any, loss: Any) -> None:
        if not trainer.training or loss is None:
            return
        value = loss.detach()
        self._loss_sum = value if self._loss_sum is None else self._loss_sum + value
        self._loss_count += 1

    def on_before_optimizer_step(self, trainer: Any, pl_module: Any, optimizer: Any) -> None:
        mon = self.mon
        if mon is None:
            return
        if self._optimizer is None:  # the first optimizer of this step (manual optimization may use several)
            self._optimizer = optimizer
            self._groups = ParamGroups.of(optimizer)
        if self._grad_norm is None and mon.is_due(_logger_step(trainer)):
            # Gradients are live and not yet clipped here: the norm clip_grad_norm_ will see.
            grads = [p.grad for p in pl_module.parameters() if p.grad is not None]
            self._grad_norm = adapters.global_norm(grads) if grads else None

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        mon = self.mon
        if mon is None or self._optimizer is None:
            return  # an accumulation micro-batch (no optimizer step yet), or no Monitor
        step = _logger_step(trainer)
        if self._stop is not None:  # which batch each recent step trained on, for skip_batches.json
            self._batches[step] = (trainer.current_epoch, batch_idx)
            while len(self._batches) > 4 * self.stop_check_every:
                self._batches.popitem(last=False)
        inputs: dict[str, Any] = {}
        if isinstance(outputs, dict):
            inputs.update((k, v) for k, v in outputs.items() if k != "loss")
        if self._loss_sum is not None:
            accumulate = getattr(trainer, "accumulate_grad_batches", 1) if pl_module.automatic_optimization else 1
            inputs["loss"] = self._loss_sum * (accumulate / self._loss_count)
        inputs["model"] = pl_module
        inputs["optimizer"] = self._groups if self._groups is not None else self._optimizer
        if self._grad_norm is not None:
            inputs["grad_norm"] = self._grad_norm
        clip = trainer.gradient_clip_val
        if clip and (trainer.gradient_clip_algorithm or "norm") == "norm":
            inputs["max_norm"] = float(clip)
        if self.ema_attr or any(hasattr(cb, "_average_model") for cb in trainer.callbacks):
            inputs.setdefault("ema_model", lambda: self._ema_model(trainer, pl_module))  # built when a metric asks
        due = mon.is_due(step)
        optimizer = self._optimizer
        self._accumulate = int(getattr(trainer, "accumulate_grad_batches", 1) or 1)
        self._reset_window()
        mon.step(step, **inputs)
        if due:
            extra = hyperparameters(optimizer) if self.log_hyperparameters else {}
            extra.update(self._throughput(step))
            if extra:
                mon.log(extra, step=step)
        if step % self.stop_check_every == 0:
            self._share_stop(trainer)

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        if self.mon is not None:
            self.mon.epoch_end()

    def _ema_model(self, trainer: Any, pl_module: Any) -> Any:
        if self.ema_attr:
            teacher = getattr(pl_module, self.ema_attr, None)
            if teacher is None or not self.ema_of:
                return teacher
            # Named as the student's parameters, so the EMA metrics pair them by name.
            return {f"{self.ema_of}.{name}": p.detach() for name, p in teacher.named_parameters()}
        for cb in trainer.callbacks:
            averaged = getattr(cb, "_average_model", None)
            if averaged is not None:
                return getattr(averaged, "module", averaged)
        return None

    def _share_stop(self, trainer: Any) -> None:
        """Rank 0's ``should_stop`` to every rank, at steps that are the same on all of them."""
        assert self.mon is not None
        stop = bool(self.mon.should_stop)
        if trainer.world_size > 1:
            stop = bool(trainer.strategy.broadcast(stop, src=0))
        if stop:
            trainer.should_stop = True
            self._write_skip_batches()

    def _throughput(self, step: int) -> dict[str, float]:
        """Achieved FLOP/s (and MFU) over the steps since the previous due step."""
        if self.flops_per_batch is None:
            return {}
        now = time.perf_counter()
        last, self._clock = self._clock, (step, now)
        if last is None or step <= last[0] or now <= last[1]:
            return {}
        batches = (step - last[0]) * getattr(self, "_accumulate", 1)  # micro-batches per optimizer step
        flops = self.flops_per_batch * batches / (now - last[1])
        out = {"performance/flops_per_s": flops}
        if self.peak_flops:
            out["performance/mfu"] = flops / self.peak_flops
        return out

    def _write_skip_batches(self) -> None:
        """The alert's step and the one before it (Lightning's SpikeDetection rule), as (epoch, batch_idx)."""
        alert = self._stop.alert if self._stop is not None else None
        if alert is None or self.mon is None or self.mon.rank != 0 or self.logdir is None:
            return
        steps = [alert.first_step - 1, alert.first_step]
        batches = [{"step": s, "epoch": e, "batch_idx": b} for s, (e, b) in self._batches.items() if s in steps]
        record = {"reason": self.mon.stop_reason, "tag": alert.tag, "step": alert.first_step, "skip": batches}
        with open(os.path.join(self.logdir, "skip_batches.json"), "w") as f:
            json.dump(record, f, indent=1)

    # --- evaluation ---------------------------------------------------------------------------

    def _eval(self, trainer: Any) -> None:
        if self.mon is None or trainer.sanity_checking:
            return
        by_split: dict[str, dict[str, Any]] = {}
        for key, value in trainer.callback_metrics.items():
            parsed = split_key(str(key), EVAL_PREFIXES)
            if parsed is not None:
                by_split.setdefault(parsed[0], {})[parsed[1]] = value
        step = _logger_step(trainer)
        for split, values in by_split.items():
            self.mon.eval(step, split=split, **values)

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        self._eval(trainer)

    def on_test_end(self, trainer: Any, pl_module: Any) -> None:
        self._eval(trainer)


def _logger_step(trainer: Any) -> int:
    """The step Lightning's loggers write for the current point (training and evaluation alike)."""
    loop = getattr(getattr(trainer, "fit_loop", None), "epoch_loop", None)
    step = getattr(loop, "_batches_that_stepped", None)
    return int(step) if step is not None else max(int(trainer.global_step) - 1, 0)


def callback_class(pl: Any) -> type:
    """A ``HealthCallback`` class for the given Lightning package (``lightning.pytorch`` or ``pytorch_lightning``)."""
    return type("HealthCallback", (_HealthCallbackMixin, pl.Callback), {"__module__": __name__})


HealthCallback = callback_class(_pl)
HealthCallback.__doc__ = (_HealthCallbackMixin.__doc__ or "") + "\n\n" + (__doc__ or "")
