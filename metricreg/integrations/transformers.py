"""Hugging Face ``Trainer``: ``HealthCallback`` feeds a metricreg Monitor from the training loop.

Where each value comes from (transformers 4.46+ / 5.x):

* the Monitor step runs in ``on_pre_optimizer_step``: the gradients of the step are live
  (the Trainer zeroes them before ``on_step_end``/``on_log``), the parameters are those
  before the update, and the learning rate is the one this update uses (the scheduler
  steps after ``optimizer.step()``);
* step numbers are HF's: the update that ``state.global_step`` counts as k is written at k,
  the step HF's own loggers write its ``train/*`` values at;
* the loss is each micro-batch's ``outputs.loss`` (read with a forward hook while the model
  trains), averaged over the accumulation window (summed when the Trainer passes
  ``num_items_in_batch``, since the model then divides by the whole window's token count):
  the per-step loss HF logs, every step;
* with ``max_grad_norm > 0`` the Trainer clips before ``on_pre_optimizer_step``; on steps
  where a metric is due the gradient norm is read as backward accumulates it (before
  clipping), so ``optimization/grad_norm`` is the pre-clip norm and ``clip_fraction`` works;
* evaluation metrics come from ``on_evaluate`` (``eval_loss`` -> ``val/loss``);
* ``probe=`` (a batch of model inputs) gives ``embeddings``: the mean-pooled last hidden state,
  computed only on steps where a metric needs it;
* ``should_stop`` sets ``control.should_training_stop`` (shared from rank 0 under torch.distributed).

HF's ``TensorBoardCallback`` writes ``train/loss`` itself; when the Monitor writes into the
same directory (``TENSORBOARD_LOGGING_DIR``), metricreg leaves ``train/loss`` to it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

import torch

try:
    from transformers import TrainerCallback
except ImportError as exc:  # pragma: no cover - depends on what is installed
    raise ImportError("metricreg.integrations.transformers needs `transformers`: pip install transformers") from exc

from metricreg import adapters
from metricreg.integrations._common import ParamGroups, hyperparameters, make_monitor, share_stop, split_key
from metricreg.monitor import Monitor

__all__ = ["HealthCallback"]

log = logging.getLogger("metricreg")

EVAL_PREFIXES = {"eval": "val", "test": "test"}
_SKIP_EVAL = ("runtime", "samples_per_second", "steps_per_second", "model_preparation_time")


class HealthCallback(TrainerCallback):
    """A ``TrainerCallback`` that runs metricreg's metrics on every optimizer step of a ``Trainer``."""

    def __init__(
        self,
        logdir: str | os.PathLike[str] | None = None,
        *,
        probe: Mapping[str, Any] | None = None,
        stop_check_every: int = 10,
        **monitor_kwargs: Any,
    ) -> None:
        """``logdir`` defaults to ``<output_dir>/metricreg``; ``probe`` is a batch of model inputs
        (``input_ids``, ``attention_mask``, ...) for the ``embeddings`` metrics. Other keyword
        arguments go to :class:`metricreg.Monitor`."""
        if stop_check_every < 1:
            raise ValueError(f"HealthCallback(stop_check_every=...) must be >= 1, got {stop_check_every!r}")
        if probe is not None and not isinstance(probe, Mapping):
            raise TypeError(f"HealthCallback(probe=...) must be a dict of model inputs, got {type(probe).__name__}")
        self.logdir = os.fspath(logdir) if logdir is not None else None
        self.probe = probe
        self.stop_check_every = int(stop_check_every)
        self.monitor_kwargs = monitor_kwargs
        self.mon: Monitor | None = None
        self._hooks: list[Any] = []
        self._grad_hooks: list[Any] = []
        self._losses: list[Any] = []
        self._summed = False
        self._param_norms: dict[int, Any] = {}

    # --- life cycle ---------------------------------------------------------------------------

    def _open(self, args: Any) -> Monitor:
        if self.mon is None:
            logdir = self.logdir or os.path.join(args.output_dir, "metricreg")
            self.logdir = logdir
            kwargs_mon = dict(self.monitor_kwargs)
            if _hf_tensorboard_dir(args) == os.path.abspath(logdir):
                # HF's TensorBoardCallback writes train/loss here already: one series per tag.
                config = dict(kwargs_mon.pop("config", None) or {})
                config.setdefault("loss", False)
                kwargs_mon["config"] = config
            self.mon = make_monitor(logdir, args.process_index, args.world_size, **kwargs_mon)
        return self.mon

    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        self._open(args)
        if model is not None and not self._hooks:
            self._hooks.append(model.register_forward_hook(self._capture_loss, with_kwargs=True))

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        for handle in self._hooks + self._grad_hooks:
            handle.remove()
        self._hooks, self._grad_hooks = [], []
        if self.mon is not None:
            self.mon.close()
            self.mon = None

    # --- training -----------------------------------------------------------------------------

    def _capture_loss(self, module: Any, args: Any, kwargs: dict[str, Any], output: Any) -> None:
        if not module.training or not torch.is_grad_enabled():
            return
        loss = output.get("loss") if isinstance(output, Mapping) else getattr(output, "loss", None)
        if isinstance(loss, torch.Tensor) and loss.ndim == 0:
            # Given num_items_in_batch (the window's token count), a model divides its summed loss by
            # the whole window's count: the micro-batch losses then add up to the step's loss.
            self._summed = kwargs.get("num_items_in_batch") is not None
            self._losses.append(loss.detach())

    def on_step_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        self._losses = []
        mon = self.mon
        if mon is None or model is None or args.max_grad_norm <= 0 or not mon.is_due(state.global_step + 1):
            return
        # The Trainer clips before on_pre_optimizer_step: on due steps, keep each parameter's
        # gradient norm as backward leaves it (the last micro-batch's call sees the full sum).
        self._param_norms = {}
        for p in model.parameters():
            if p.requires_grad:
                self._grad_hooks.append(p.register_post_accumulate_grad_hook(self._record_norm))

    def _record_norm(self, p: Any) -> None:
        if p.grad is not None:
            self._param_norms[id(p)] = torch.linalg.vector_norm(p.grad.detach())

    def on_pre_optimizer_step(
        self, args: Any, state: Any, control: Any, model: Any = None, optimizer: Any = None, **kwargs: Any
    ) -> None:
        mon = self.mon
        if mon is None:
            return
        step = state.global_step + 1  # HF writes this update's values at the incremented global_step
        inputs: dict[str, Any] = {"model": model}
        if optimizer is not None:
            inputs["optimizer"] = ParamGroups.of(optimizer) or optimizer
        if self._losses:
            losses = torch.stack(self._losses) if len(self._losses) > 1 else self._losses[0]
            inputs["loss"] = losses.sum() if self._summed else losses.mean()
        if args.max_grad_norm > 0:
            inputs["max_norm"] = float(args.max_grad_norm)
        if self._grad_hooks:
            for handle in self._grad_hooks:
                handle.remove()
            self._grad_hooks = []
            if self._param_norms:
                inputs["grad_norm"] = adapters.global_norm(list(self._param_norms.values()))
            self._param_norms = {}
        if self.probe is not None and model is not None:
            inputs["embeddings"] = lambda: _embeddings(model, self.probe)
        due = mon.is_due(step)
        mon.step(step, **inputs)
        if due and optimizer is not None:
            extra = hyperparameters(optimizer)
            if extra:
                mon.log(extra, step=step)

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        due = self.mon is not None and state.global_step % self.stop_check_every == 0
        if due and share_stop(self.mon.should_stop):  # type: ignore[union-attr]
            control.should_training_stop = True

    # --- evaluation ---------------------------------------------------------------------------

    def on_evaluate(self, args: Any, state: Any, control: Any, metrics: Mapping[str, Any] | None = None, **kwargs):
        mon = self._open(args)  # trainer.evaluate() before or after train() too (closed at exit)
        by_split: dict[str, dict[str, Any]] = {}
        for key, value in (metrics or {}).items():
            parsed = split_key(str(key), EVAL_PREFIXES)
            if parsed is None or parsed[1].endswith(_SKIP_EVAL) or not isinstance(value, (int, float)):
                continue
            by_split.setdefault(parsed[0], {})[parsed[1]] = value
        for split, values in by_split.items():
            mon.eval(state.global_step, split=split, **values)


def _embeddings(model: Any, probe: Mapping[str, Any]) -> Any:
    """Mean-pooled last hidden state of the probe batch, computed without gradients in eval mode."""
    was_training = model.training
    device = next(model.parameters()).device
    batch = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in probe.items()}
    batch.pop("labels", None)
    model.eval()
    try:
        with torch.no_grad():
            out = model(**batch, output_hidden_states=True)
    finally:
        model.train(was_training)
    hidden = out.hidden_states[-1]
    mask = batch.get("attention_mask")
    if mask is None:
        return hidden.mean(dim=1)
    weights = mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1.0)


def _hf_tensorboard_dir(args: Any) -> str | None:
    """The directory HF's TensorBoardCallback writes to when it is fixed ahead (TENSORBOARD_LOGGING_DIR)."""
    report_to = getattr(args, "report_to", None) or []
    if isinstance(report_to, str):
        report_to = [report_to]
    if "tensorboard" not in report_to and "all" not in report_to:
        return None
    env = os.environ.get("TENSORBOARD_LOGGING_DIR")
    return os.path.abspath(os.path.expanduser(env)) if env else None
