"""Hugging Face accelerate: a Monitor on accelerate's ranks, and a tracker for ``accelerator.log``.

* :func:`monitor` builds the Monitor with the rank and world size accelerate uses
  (``process_index``/``num_processes``), which need not be torch.distributed's view (for
  example a launcher that set up no process group);
* :class:`HealthTracker` is an accelerate tracker:
  ``Accelerator(log_with=["tensorboard", HealthTracker("runs/exp1/metricreg")])`` sends every
  ``accelerator.log(values, step=...)`` to a Monitor too (``accelerator.get_tracker("metricreg",
  unwrap=True)`` is that Monitor). Evaluation keys (``val_*``, ``val/*``, ``eval_*``, ``test_*``)
  go to ``mon.eval``; a training value that names a Monitor input (``loss``, ``train_loss``,
  ``train/accuracy``, ...) feeds ``mon.step`` unless the loop already called ``mon.step`` for
  that step; anything else is written as a plain ``train/<key>`` scalar.

accelerate calls trackers on the main process only. A Monitor step or eval can make a
collective (metrics with ``reduce=``), which must happen on every rank; so with more than one
process the tracker only *writes* the values (no metric runs from them), and the loop calls
``mon.step``/``mon.eval`` on every rank for the metrics.
"""

from __future__ import annotations

import os
from typing import Any

try:
    from accelerate.tracking import GeneralTracker
except ImportError as exc:  # pragma: no cover - depends on what is installed
    raise ImportError("metricreg.integrations.accelerate needs `accelerate`: pip install accelerate") from exc

from metricreg.integrations._common import make_monitor, split_key
from metricreg.monitor import Monitor

__all__ = ["HealthTracker", "monitor"]

EVAL_PREFIXES = {"val": "val", "validation": "val", "eval": "val", "test": "test"}


def monitor(accelerator: Any, logdir: str | os.PathLike[str], **monitor_kwargs: Any) -> Monitor:
    """A :class:`metricreg.Monitor` whose rank and world size are accelerate's."""
    return make_monitor(logdir, accelerator.process_index, accelerator.num_processes, **monitor_kwargs)


class HealthTracker(GeneralTracker):
    """An accelerate tracker that forwards ``accelerator.log`` values to a Monitor.

    Give it a run directory (the Monitor is created on accelerate's ranks when the trackers
    start) or a Monitor you built yourself.
    """

    name = "metricreg"
    requires_logging_directory = False
    main_process_only = False

    def __init__(self, logdir_or_monitor: str | os.PathLike[str] | Monitor, **monitor_kwargs: Any) -> None:
        if isinstance(logdir_or_monitor, Monitor):
            self._mon: Monitor | None = logdir_or_monitor
            self.logdir = logdir_or_monitor.logdir
        elif isinstance(logdir_or_monitor, (str, os.PathLike)) and os.fspath(logdir_or_monitor):
            self._mon = None
            self.logdir = os.fspath(logdir_or_monitor)
        else:
            raise TypeError(
                f"HealthTracker(...) needs a run directory or a metricreg.Monitor, got {logdir_or_monitor!r}"
            )
        self.monitor_kwargs = monitor_kwargs
        super().__init__()

    def start(self) -> None:
        _ = self.mon

    @property
    def mon(self) -> Monitor:
        if self._mon is None:
            from accelerate.state import PartialState

            state = PartialState()
            self._mon = make_monitor(self.logdir, state.process_index, state.num_processes, **self.monitor_kwargs)
        return self._mon

    @property
    def tracker(self) -> Monitor:
        return self.mon

    def store_init_configuration(self, values: dict) -> None:
        """Hyperparameters are the other trackers' business; the Monitor records metrics."""

    def log(self, values: dict, step: int | None = None, **kwargs: Any) -> None:
        mon = self.mon
        step = mon.current_step if step is None else int(step)
        single = mon.world_size == 1  # see the module docstring: no collectives from one rank
        stepped = mon._step > step  # the loop has called mon.step for this step (or a later one)
        evals: dict[str, dict[str, Any]] = {}
        inputs: dict[str, Any] = {}
        plain: dict[str, Any] = {}
        known = mon.registry.step_inputs
        for key, value in values.items():
            parsed = split_key(str(key), EVAL_PREFIXES)
            if parsed is not None:
                evals.setdefault(parsed[0], {})[parsed[1]] = value
                continue
            name = str(key).removeprefix("train/").removeprefix("train_")
            if name in known:
                if stepped:
                    continue  # the loop fed the Monitor this step itself: no second point
                if single:
                    inputs[name] = value
                    continue
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                plain[name] = value
        if inputs:
            mon.step(step, **inputs)
        if plain:
            mon.log(plain, step=step)
        for split, vals in evals.items():
            if single:
                mon.eval(step, split=split, **vals)
            else:
                mon.log(vals, step=step, split=split)

    def finish(self) -> None:
        if self._mon is not None:
            self._mon.close()
