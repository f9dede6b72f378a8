"""The Monitor: one call per training step runs whatever metrics are due.

The hot path is ``step()``: on a step with nothing due it does one integer
comparison and returns. Plugins are discovered and compiled into a schedule
table once, here in ``__init__``; pluggy is never called per step.
"""

from __future__ import annotations

import atexit
import logging
import os
import time
import weakref
from collections.abc import Iterable, Mapping
from typing import Any

from metricreg import distributed
from metricreg.config import ConfigError, load_config
from metricreg.health import Alert
from metricreg.host import is_scalar_like
from metricreg.inputs import Inputs, is_deferred
from metricreg.integrations.metrics import expand_eval_inputs
from metricreg.plugins import get_plugin_manager
from metricreg.registry import Registered, collect
from metricreg.schedules import NEVER, Predicate
from metricreg.writer import EventWriter, SeriesKey

log = logging.getLogger("metricreg")

_open_monitors: weakref.WeakSet[Monitor] = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    for monitor in list(_open_monitors):
        monitor.close()


class _Compiled:
    """A registered metric plus its runtime state (schedule position, failures)."""

    __slots__ = (
        "consecutive",
        "disabled",
        "failures",
        "fan_out",
        "first_failure",
        "last_failure",
        "last_message",
        "metric",
        "name",
        "next_due",
        "optional",
        "params",
        "plugin",
        "reported_missing",
        "schedule",
        "series",
        "state",
    )

    def __init__(self, reg: Registered) -> None:
        self.metric = reg.metric
        self.plugin = reg.plugin
        self.name = reg.metric.name
        self.schedule = reg.metric.schedule
        self.next_due = self.schedule.next_due(0) if self.schedule.event == "step" else NEVER
        self.params = reg.metric.inputs
        self.optional = reg.metric.optional_inputs
        self.fan_out = reg.metric.fan_out
        self.failures = 0
        self.consecutive = 0
        self.disabled = False
        self.state: dict[Any, dict[str, Any]] = {}
        self.series: dict[tuple[str, str | None, str | None], SeriesKey] = {}
        self.reported_missing = False
        self.first_failure: int | None = None
        self.last_failure: int | None = None
        self.last_message = ""

    def series_key(self, split: str, key: str | None, member: str | None) -> SeriesKey:
        cache_key = (split, key, member)
        series = self.series.get(cache_key)
        if series is None:
            name = self.name
            if key is not None:
                family, _, rest = name.partition("/")
                name = f"{family}/{key}" + (f"/{rest}" if rest else "")
            if name == split or name.startswith(split + "/"):
                name = name[len(split) + 1 :]  # Metric("gap", split="gap") writes gap/<member>, not gap/gap/...
            tag = "/".join(part for part in (split, name, member) if part)
            series = SeriesKey(tag, self.metric.kind, self.name, member, key, split)
            self.series[cache_key] = series
        return series


class Monitor:
    """Runs registered metrics from a training loop and writes them for TensorBoard.

    ``logdir`` is the run directory (``tensorboard --logdir`` its parent).
    ``plugins`` adds plugin objects or module names to the built-ins and the
    installed entry points. ``config`` is a dict or a TOML/YAML path with
    per-pattern overrides (see metricreg.config). ``inputs`` declares extra
    step-input names that metrics may ask for.
    """

    def __init__(
        self,
        logdir: str | os.PathLike[str],
        plugins: Iterable[Any] = (),
        config: Mapping[str, Any] | str | os.PathLike[str] | None = None,
        *,
        inputs: Iterable[str] = (),
        flush_secs: float | None = None,
        queue_size: int | None = None,
        on_full: str | None = None,
        max_failures: int | None = None,
        builtins: bool | None = None,
    ) -> None:
        if not isinstance(logdir, (str, os.PathLike)) or not os.fspath(logdir):
            raise ValueError(f"Monitor(logdir=...) needs a directory path, got {logdir!r}")
        self.logdir = os.fspath(logdir)
        cfg = load_config(config)
        options = dict(cfg.monitor)
        for key, value in (
            ("flush_secs", flush_secs),
            ("queue_size", queue_size),
            ("on_full", on_full),
            ("max_failures", max_failures),
        ):
            if value is not None:
                options[key] = value
        self.max_failures = int(options.get("max_failures", 3))
        if self.max_failures < 1:
            raise ConfigError(f"max_failures must be >= 1, got {self.max_failures}")
        self.plugin_manager = get_plugin_manager(plugins, builtins=builtins)
        self.registry = collect(self.plugin_manager, cfg, [*inputs, *options.get("inputs", ())])
        self._table = [_Compiled(reg) for reg in self.registry.metrics]
        self._by_event: dict[str, list[_Compiled]] = {"step": [], "eval": [], "epoch_end": []}
        for compiled in self._table:
            self._by_event[compiled.schedule.event].append(compiled)
        self._has_predicates = any(isinstance(c.schedule, Predicate) for c in self._by_event["step"])
        self.rank, self.world_size = distributed.rank_and_world()
        self._shared: dict[str, Any] = {}
        self._event_counts = {"eval": 0, "epoch_end": 0}
        self._step = 0  # the next step number when step() is called without one
        self._next_due = self._compute_next_due()
        self.should_stop = False
        self.stop_reason: str | None = None
        self._closed = False
        self._writer: EventWriter | None = None
        if self.rank == 0:
            self._writer = EventWriter(
                self.logdir,
                self.registry.describe(),
                flush_secs=float(options.get("flush_secs", 2.0)),
                queue_size=int(options.get("queue_size", 2048)),
                on_full=str(options.get("on_full", "block")),
                on_alert=self._dispatch_alert,
            )
        _open_monitors.add(self)

    # --- the hot path -------------------------------------------------------------------------

    def step(self, step: int | None = None, **inputs: Any) -> None:
        """Call once per training step. Costs one comparison when nothing is due."""
        if step is None:
            step = self._step
        self._step = step + 1
        if step < self._next_due:
            return
        self._run(self._by_event["step"], "step", step, step, inputs, "train")
        self._next_due = self._compute_next_due()

    # --- rarer entry points -------------------------------------------------------------------

    def eval(self, step: int | None = None, split: str = "val", **inputs: Any) -> None:
        """A validation/evaluation point: logs scalar inputs as ``<split>/<name>`` and runs eval metrics.

        torchmetrics ``Metric`` values are computed; a ``MetricCollection`` gives one input per member.
        """
        if not isinstance(split, str) or not split or "/" in split:
            raise ValueError(f"Monitor.eval(split=...) must be a non-empty name without '/', got {split!r}")
        step = self.current_step if step is None else step
        inputs = expand_eval_inputs(inputs)  # torchmetrics Metric/MetricCollection objects -> their values
        count = self._event_counts["eval"]
        self._event_counts["eval"] = count + 1
        direct = {k: v for k, v in inputs.items() if not is_deferred(v) and is_scalar_like(v)}
        self._run(self._by_event["eval"], "eval", count, step, inputs, split, direct)

    def epoch_end(self, epoch: int | None = None, **inputs: Any) -> None:
        """End of an epoch: runs metrics scheduled with on('epoch_end')."""
        count = self._event_counts["epoch_end"]
        self._event_counts["epoch_end"] = count + 1
        direct = {"epoch": epoch} if epoch is not None else {}
        self._run(self._by_event["epoch_end"], "epoch_end", count, self.current_step, inputs, "train", direct)

    def log(self, values: Mapping[str, Any], step: int | None = None, split: str = "train") -> None:
        """Write ad-hoc values as ``<split>/<name>`` scalars through the same writer."""
        writer = self._writer
        if writer is None:
            return
        writer.put(("log", self.current_step if step is None else step, time.time(), split, dict(values)))

    def is_due(self, step: int) -> bool:
        """Whether ``step(step)`` would run any metric: lets a caller gather costly inputs only then."""
        return step >= self._next_due

    @property
    def current_step(self) -> int:
        """The step most recently passed to step() (0 before the first)."""
        return max(self._step - 1, 0)

    @property
    def alerts(self) -> list[Alert]:
        """Alerts active right now (as of what the writer thread has processed)."""
        return list(self._writer.alerts) if self._writer else []

    @property
    def errors(self) -> dict[str, dict[str, Any]]:
        """Per failing metric: plugin, failure count, last message, disabled."""
        return {c.name: self._error_info(c) for c in self._table if c.failures}

    def request_stop(self, reason: str) -> None:
        """Ask the training loop to stop (it checks ``monitor.should_stop``)."""
        self.should_stop = True
        self.stop_reason = reason

    def flush(self) -> None:
        if self._writer is not None:
            self._writer.flush()

    def close(self) -> None:
        """Write everything still queued and close the event file. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        _open_monitors.discard(self)
        if self._writer is not None:
            self._writer.close()
            if self._writer.stats.dropped:
                log.warning(
                    "metricreg: %d records were dropped because the writer fell behind "
                    "(queue_size=%d); the count is in the run as _metricreg/dropped",
                    self._writer.stats.dropped,
                    self._writer.queue_size,
                )

    def __enter__(self) -> Monitor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def event_file(self) -> str | None:
        return self._writer.path if self._writer else None

    # --- running due metrics ------------------------------------------------------------------

    def _compute_next_due(self) -> int:
        if self._has_predicates:
            return self._step
        return min((c.next_due for c in self._by_event["step"] if not c.disabled), default=NEVER)

    def _run(
        self,
        table: list[_Compiled],
        event: str,
        position: int,
        step: int,
        raw: Mapping[str, Any],
        split: str,
        direct: Mapping[str, Any] | None = None,
    ) -> None:
        if self._closed:
            return
        inputs = Inputs(raw, self.registry.derived, {"step": step, "event": event, "shared": self._shared})
        results: list[tuple[SeriesKey, Any]] = []
        reduced: dict[str, list[tuple[SeriesKey, Any]]] = {}
        writes = self.rank == 0
        for compiled in table:
            if compiled.disabled:
                continue
            if event == "step":
                if isinstance(compiled.schedule, Predicate):
                    if not self._predicate_due(compiled, position):
                        continue
                elif compiled.next_due > position:
                    continue
                else:
                    compiled.next_due = compiled.schedule.next_due(position + 1)
            elif not compiled.schedule.is_due(position):
                continue
            if not writes and compiled.metric.reduce is None:
                continue  # only reduced metrics need every rank
            target = reduced.setdefault(compiled.metric.reduce, []) if compiled.metric.reduce else results
            self._run_one(compiled, inputs, split, compiled.metric.split or split, step, target)
        if reduced and self.world_size > 1:
            for op, pairs in reduced.items():
                try:
                    values = distributed.reduce_values([v for _, v in pairs], op, self.world_size)
                except (KeyboardInterrupt, SystemExit):
                    raise
                except Exception as exc:
                    log.error("metricreg: all_reduce(%s) of %d values failed at step %d: %r", op, len(pairs), step, exc)
                    continue
                results.extend((series, value) for (series, _), value in zip(pairs, values, strict=True))
        else:
            for pairs in reduced.values():
                results.extend(pairs)
        if direct:
            self.log(direct, step=step, split=split)
        if results and self._writer is not None:
            self._writer.put(("values", step, time.time(), results))

    def _predicate_due(self, compiled: _Compiled, position: int) -> bool:
        try:
            return compiled.schedule.is_due(position)
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as exc:
            self._failed(compiled, position, exc)
            return False

    def _run_one(
        self,
        compiled: _Compiled,
        inputs: Inputs,
        split: str,
        tag_split: str,
        step: int,
        out: list[tuple[SeriesKey, Any]],
    ) -> None:
        """Run one due metric; ``split`` is the data split it sees, ``tag_split`` where it is written."""
        for name in compiled.params:
            if name not in inputs and name not in ("state", "split", "inputs"):
                if not compiled.reported_missing:
                    compiled.reported_missing = True
                    log.debug("metricreg: %s skipped at step %d: input %r not given", compiled.name, step, name)
                return
        try:
            kwargs: dict[str, Any] = {}
            for name in compiled.params + compiled.optional:
                if name == "split":
                    kwargs[name] = split
                elif name == "inputs":
                    kwargs[name] = inputs
                elif name == "state":
                    continue
                elif name in inputs:
                    kwargs[name] = inputs[name]
            fan = kwargs.get(compiled.fan_out) if compiled.fan_out else None
            wants_state = "state" in compiled.params or "state" in compiled.optional
            if isinstance(fan, Mapping):
                for key, value in fan.items():
                    kwargs[compiled.fan_out] = value  # type: ignore[index]
                    if wants_state:
                        kwargs["state"] = compiled.state.setdefault((split, str(key)), {})
                    self._collect(compiled, compiled.metric.compute(**kwargs), tag_split, str(key), out)
            else:
                if wants_state:
                    kwargs["state"] = compiled.state.setdefault((split, None), {})
                self._collect(compiled, compiled.metric.compute(**kwargs), tag_split, None, out)
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as exc:  # InputError included: a failing derived input fails its metrics
            self._failed(compiled, step, exc)
        else:
            compiled.consecutive = 0

    def _collect(
        self, compiled: _Compiled, result: Any, split: str, key: str | None, out: list[tuple[SeriesKey, Any]]
    ) -> None:
        if result is None:
            return
        if isinstance(result, Mapping):
            for member, value in result.items():
                if value is not None:
                    out.append((compiled.series_key(split, key, str(member)), value))
        else:
            out.append((compiled.series_key(split, key, None), result))

    def _failed(self, compiled: _Compiled, step: int, exc: BaseException) -> None:
        compiled.failures += 1
        compiled.consecutive += 1
        if compiled.first_failure is None:
            compiled.first_failure = step
        compiled.last_failure = step
        message = f"{type(exc).__name__}: {exc}"
        compiled.last_message = message
        if compiled.failures == 1:
            log.warning(
                "metricreg: metric %r (plugin %r) failed at step %d: %s; training continues",
                compiled.name,
                compiled.plugin,
                step,
                message,
            )
        if compiled.consecutive >= self.max_failures and not compiled.disabled:
            compiled.disabled = True
            log.warning(
                "metricreg: metric %r (plugin %r) disabled after %d consecutive failures",
                compiled.name,
                compiled.plugin,
                compiled.consecutive,
            )
        if self._writer is not None:
            self._writer.put(("error", step, compiled.name, self._error_info(compiled)))

    def _error_info(self, compiled: _Compiled) -> dict[str, Any]:
        return {
            "plugin": compiled.plugin,
            "count": compiled.failures,
            "consecutive": compiled.consecutive,
            "last_message": compiled.last_message,
            "disabled": compiled.disabled,
            "first_step": compiled.first_failure,
            "last_step": compiled.last_failure,
        }

    def _dispatch_alert(self, alert: Alert) -> None:
        """Call every metricreg_on_alert implementation, each isolated from the others."""
        for impl in self.plugin_manager.hook.metricreg_on_alert.get_hookimpls():
            args = {"alert": alert, "monitor": self}
            try:
                impl.function(*[args[name] for name in impl.argnames])
            except Exception as exc:
                log.error("metricreg: on_alert hook of plugin %r failed: %r", impl.plugin_name, exc)
