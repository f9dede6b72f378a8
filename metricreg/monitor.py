"""The Monitor: one call per training step runs whatever metrics are due.

The hot path is ``step()``: on a step with nothing due it does one integer
comparison and returns. Plugins are discovered and compiled into a schedule
table once, here in ``__init__``; pluggy is never called per step.
"""

from __future__ import annotations

import atexit
import logging
import operator
import os
import threading
import time
import weakref
from collections.abc import Iterable, Mapping
from functools import partial
from time import perf_counter
from typing import Any

from metricreg import distributed, signals
from metricreg.config import ConfigError, load_config
from metricreg.cost import CostMeter
from metricreg.due import DueTable
from metricreg.health import Alert
from metricreg.host import CaptureError, capture, close_step_scalars, is_scalar_like, open_step_scalars
from metricreg.inputs import InputError, Inputs, is_deferred, is_iterator, iterator_message
from metricreg.integrations.metrics import expand_eval_inputs
from metricreg.plugins import get_plugin_manager
from metricreg.recordfile import live_writers
from metricreg.registry import Registered, collect
from metricreg.rule_jobs import NOT_HOST, host_inputs, host_value, materialize, snapshot_tensors, writer_inputs
from metricreg.schedules import Predicate
from metricreg.spec import PartialResult
from metricreg.writer import (
    DEFAULT_QUEUE_BYTES,
    PLAIN_TYPES,
    BadValue,
    EventWriter,
    SeriesKey,
)

log = logging.getLogger("metricreg")

_open_monitors: weakref.WeakSet[Monitor] = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    for monitor in list(_open_monitors):
        monitor.close()


def _flush_all() -> None:
    for monitor in list(_open_monitors):
        monitor.flush()


def _warn_if_shared(logdir: str) -> None:
    """Two Monitors on one run directory each write their own manifest; the tab shows only the last one's."""
    here = os.path.realpath(logdir)
    others = ["this process" for m in list(_open_monitors) if os.path.realpath(m.logdir) == here and m._writer]
    others += [f"process {pid}" for pid in live_writers(logdir)]
    if others:
        log.warning(
            "metricreg: another Monitor (%s) is already writing to %r. Each Monitor writes its own manifest and "
            "the Health tab reads the latest, so one Monitor's metrics lose their descriptions and rules there. "
            "Give each Monitor its own run directory (for example %r).",
            ", ".join(sorted(set(others))),
            logdir,
            os.path.join(logdir, "part2"),
        )


def _after_fork_in_child() -> None:
    """A forked child (a DataLoader worker, a user's fork) inherits every Monitor: make each inert.

    The child must never write the parent's buffered records or file: it drops its copy
    of the writer (no flush, no close) and does nothing, warning once if it is used.
    """
    for monitor in list(_open_monitors):
        monitor._become_inert(os.getpid())


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


STEP_LIMIT = 1 << 63  # event files store the step as int64


def check_step(step: Any, where: str) -> int:
    """A valid step as a plain int (numpy and torch integer scalars accepted), or a clear error."""
    if isinstance(step, bool):
        raise TypeError(f"{where}(step={step!r}): a step must be an integer, not a bool")
    try:
        value = operator.index(step)
    except TypeError:
        raise TypeError(
            f"{where}(step={step!r}): a step must be an integer (int, or a numpy/torch integer scalar), "
            f"not {type(step).__name__}"
        ) from None
    if not 0 <= value < STEP_LIMIT:
        raise ValueError(f"{where}(step={value}): a step must be in [0, 2**63) (event files store int64 steps)")
    return value


def _captured(value: Any) -> Any:
    """The value at its step (a device-side copy); a BadValue that costs only itself if it cannot be copied."""
    try:
        return capture(value)
    except CaptureError as exc:
        return BadValue(str(exc))


_SPECIAL = ("state", "split", "inputs")  # arguments the Monitor fills itself, never inputs
_CONTEXT = ("step", "event", "shared")  # the per-step context of Inputs: found there before the raw inputs
_NO_INPUTS: Mapping[str, Any] = {}
_MISSING = object()

# type -> whether its values are iterators (a property of the type alone; cached: checked per due step)
_ITERATOR_TYPES: dict[type, bool] = {}
_NO_ITERATORS: set[tuple[type, ...]] = set()  # the value types, in order, of inputs that held no iterator


def _fill(name: str, params: tuple[str, ...]) -> int:
    """How the Monitor fills argument ``name`` of a metric (see _Compiled.plan)."""
    if name == "split":
        return 0
    if name == "inputs":
        return 1
    if name not in params:
        return 3
    return 2 if name in _CONTEXT else 4


class KeyFailure(Exception):
    """A fan-out metric failed for one key of its dict input; names the input and the key."""

    def __init__(self, input_name: str, key: object, cause: BaseException) -> None:
        what = str(cause) if isinstance(cause, PartialResult) else f"{type(cause).__name__}: {cause}"
        super().__init__(f"input {input_name!r}, key {key!r}: {what}")
        self.partial = False  # True when other keys (or members) of the same step succeeded
        self.__cause__ = cause


class _Compiled:
    """A registered metric plus its runtime state (schedule position, failures)."""

    __slots__ = (
        "consecutive",
        "cost",
        "disabled",
        "failures",
        "fan_out",
        "first_failure",
        "last_failure",
        "last_message",
        "metric",
        "name",
        "optional",
        "params",
        "plan",
        "plugin",
        "predicate",
        "reported_missing",
        "required",
        "route",
        "schedule",
        "series",
        "state",
        "wants_state",
        "writer",
    )

    def __init__(self, reg: Registered) -> None:
        self.metric = reg.metric
        self.plugin = reg.plugin
        self.name = reg.metric.name
        self.schedule = reg.metric.schedule
        self.params = reg.metric.inputs
        self.optional = reg.metric.optional_inputs
        self.fan_out = reg.metric.fan_out
        self.predicate = isinstance(self.schedule, Predicate)
        # Precomputed once, so a due step does not re-derive them per call: the inputs that must be
        # present, and how each argument is filled (0: split, 1: inputs, 2: required, 3: optional;
        # 4: required and not a context name, so a value passed as it is can be taken from the raw dict).
        self.wants_state = "state" in self.params or "state" in self.optional
        self.required = tuple(n for n in self.params if n not in _SPECIAL)
        self.plan = tuple((n, _fill(n, self.params)) for n in self.params + self.optional if n != "state")
        self.failures = 0
        self.consecutive = 0
        self.disabled = False
        self.state: dict[Any, dict[str, Any]] = {}
        self.series: dict[tuple[str, str | None, str | None], SeriesKey] = {}
        self.reported_missing = False
        self.first_failure: int | None = None
        self.last_failure: int | None = None
        self.last_message = ""
        self.cost: list[float] = [0, 0.0, 0.0]  # replaced by the Monitor's CostMeter slot
        # A scalar rule that may run in the writer-thread job (metricreg.rule_jobs): None until its
        # first due step decides (True: its inputs were host numbers), False for every other metric.
        # Once True it stays there, so its state is only ever touched by the writer thread.
        self.writer = writer_inputs(reg.metric.compute)  # see rule_jobs.writer_rule
        self.route: bool | None = (
            None
            if self.writer is not None
            and self.schedule.event != "epoch_end"
            and not self.fan_out
            and not self.predicate
            and all(how != 1 or self.writer.inputs is not None for _, how in self.plan)
            else False
        )

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
            series = SeriesKey(tag, self.metric.kind, self.name, member, key, split, self.plugin)
            self.series[cache_key] = series
        return series


class Monitor:
    """Runs registered metrics from a training loop and writes them for TensorBoard.

    ``logdir`` is the run directory (``tensorboard --logdir`` its parent).
    ``plugins`` adds plugin objects or module names to the built-ins and the
    installed entry points. ``config`` is a dict or a TOML/YAML path with
    per-pattern overrides (see metricreg.config). ``inputs`` declares extra
    step-input names that metrics may ask for. ``max_queue_bytes`` bounds what
    queued results hold. ``handle_sigterm`` chains a SIGTERM handler that writes
    everything logged so far before the previous handler runs (metricreg.signals).
    ``cost_budget`` (s per call) and ``hang_after`` (s) drive metricreg.cost's reports.
    ``rank``/``world_size`` override
    torch.distributed's view (for launchers that see the job differently);
    ``dist_timeout`` bounds how long metricreg's own collectives wait (seconds).
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
        max_queue_bytes: int | None = None,
        max_failures: int | None = None,
        builtins: bool | None = None,
        handle_sigterm: bool = True,
        cost_budget: float | None = None,
        hang_after: float | None = None,
        rank: int | None = None,
        world_size: int | None = None,
        dist_timeout: float | None = None,
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
            ("max_queue_bytes", max_queue_bytes),
            ("cost_budget", cost_budget),
            ("hang_after", hang_after),
            ("max_failures", max_failures),
        ):
            if value is not None:
                options[key] = value
        self.max_failures = int(options.get("max_failures", 3))
        if self.max_failures < 1:
            raise ConfigError(f"max_failures must be >= 1, got {self.max_failures}")
        self._cost = CostMeter(float(options.get("cost_budget", 1.0)), float(options.get("hang_after", 60.0)))
        self.plugin_manager = get_plugin_manager(plugins, builtins=builtins)
        self.registry = collect(self.plugin_manager, cfg, [*inputs, *options.get("inputs", ())])
        self._table = [_Compiled(reg) for reg in self.registry.metrics]
        for compiled in self._table:
            compiled.cost = self._cost.slot(compiled.name)
        self._by_event: dict[str, list[_Compiled]] = {"step": [], "eval": [], "epoch_end": []}
        for compiled in self._table:
            self._by_event[compiled.schedule.event].append(compiled)
        # which step metrics are due, by schedule, and can run with the step's input names (metricreg.due)
        self._due = DueTable(self._by_event["step"], self._runnable)
        self._has_predicates = self._due.predicates
        self.rank, self.world_size = distributed.rank_and_world(rank, world_size)
        self._exchange: distributed.Exchange | None = None
        self._stop_request: str | None = None
        if self.world_size > 1:
            timeout = dist_timeout if dist_timeout is not None else options.get("dist_timeout")
            self._exchange = distributed.start_exchange([c.metric for c in self._table], self.world_size, timeout)
        self._shared: dict[str, Any] = {}
        self._event_counts = {"eval": 0, "epoch_end": 0}
        self._step = 0  # the next step number when step() is called without one
        self._next_due = self._compute_next_due()
        self.should_stop = False
        self.stop_reason: str | None = None
        self._closed = False
        self._inert_pid: int | None = None  # set in a forked child, where the Monitor does nothing
        self._inert_warned = False
        self._input_errors: dict[str, dict[str, Any]] = {}  # "input:<name>" -> failures of a lazy input
        self._failure_lock = threading.Lock()  # failures are counted on both threads (bad values: writer)
        self._by_name = {c.name: c for c in self._table}
        self._copies: dict[tuple[int, bool], Any] = {}  # the due step's parameter/gradient copies (rule_jobs)
        self._groups: dict[str, list[_Compiled]] = {}  # writer rules that share one route (rule_jobs.writer_rule)
        for compiled in self._table:
            if compiled.writer is not None and compiled.writer.group is not None:
                self._groups.setdefault(compiled.writer.group, []).append(compiled)
        self._writer: EventWriter | None = None
        if self.rank == 0:
            _warn_if_shared(self.logdir)
            self._writer = EventWriter(
                self.logdir,
                self.registry.describe(),
                flush_secs=float(options.get("flush_secs", 2.0)),
                queue_size=int(options.get("queue_size", 2048)),
                on_full=str(options.get("on_full", "block")),
                max_queue_bytes=int(options.get("max_queue_bytes", DEFAULT_QUEUE_BYTES)),
                on_alert=self._dispatch_alert,
                on_bad_value=self._value_failed,
                cost=self._cost,
            )
        _open_monitors.add(self)
        if handle_sigterm and self._writer is not None:
            signals.install(_close_all, _flush_all)

    # --- the hot path -------------------------------------------------------------------------

    def step(self, step: int | None = None, **inputs: Any) -> None:
        """Call once per training step. Costs a type check and one comparison when nothing is due.

        ``step`` must be an integer in [0, 2**63) (numpy/torch integer scalars too); anything
        else raises here, before it can reach the writer.
        """
        if step is None:
            step = self._step
        elif type(step) is not int or step < 0:
            step = check_step(step, "Monitor.step")
        if step < self._next_due:
            self._step = step + 1
            return
        if step >= STEP_LIMIT:  # always "due" (past NEVER), so checked here at no cost to other steps
            check_step(step, "Monitor.step")
        self._step = step + 1
        self._run(self._due.due(step, tuple(inputs)), "step", step, step, inputs, "train")
        self._next_due = self._compute_next_due()

    # --- rarer entry points -------------------------------------------------------------------

    def eval(self, step: int | None = None, split: str = "val", **inputs: Any) -> None:
        """A validation/evaluation point: logs scalar inputs as ``<split>/<name>`` and runs eval metrics.

        torchmetrics ``Metric`` values are computed; a ``MetricCollection`` gives one input per member.
        """
        if not isinstance(split, str) or not split or "/" in split:
            raise ValueError(f"Monitor.eval(split=...) must be a non-empty name without '/', got {split!r}")
        step = self.current_step if step is None else check_step(step, "Monitor.eval")
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
            self._warn_if_inert()
            return
        if step is None:
            step = self.current_step
        elif type(step) is not int or not 0 <= step < STEP_LIMIT:
            step = check_step(step, "Monitor.log")
        captured = dict(values)
        if set(map(type, captured.values())) <= PLAIN_TYPES:  # plain numbers: immutable, no payload
            writer.put(("log", step, time.time(), split, captured), 64 + 32 * len(captured))  # = record_bytes
            return
        for name, value in captured.items():  # arrays/tensors: copied at this step
            captured[name] = _captured(value)
        writer.put(("log", step, time.time(), split, captured))

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
        """Per failing metric (and ``input:<name>`` per failing input): plugin, count, last message, disabled."""
        errors = {c.name: self._error_info(c) for c in self._table if c.failures}
        with self._failure_lock:
            errors.update((key, dict(entry)) for key, entry in self._input_errors.items())
        return errors

    def request_stop(self, reason: str) -> None:
        """Ask the training loop to stop (it checks ``monitor.should_stop``).

        Across ranks the request travels with the next exchange, and ``should_stop``
        turns True on every rank at that same step.
        """
        if self._exchange is not None and self._exchange.active:
            self._stop_request = reason
            return
        self.should_stop = True
        self.stop_reason = reason

    def flush(self) -> None:
        if self._writer is not None:
            self._writer.flush()

    def close(self, timeout: float = 60.0) -> None:
        """Write everything still queued and close the event file within ``timeout`` s. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        _open_monitors.discard(self)
        if self._exchange is not None:
            self._exchange.close()
        writer = self._writer
        if writer is None:
            return
        try:
            writer.close(timeout)
        except Exception as exc:  # close() runs at exit and in finally blocks: report, never raise
            log.error("metricreg: closing the writer for %r failed: %r", self.logdir, exc)
        if writer.stats.dropped:
            log.warning(
                "metricreg: %d records were dropped because the writer fell behind "
                "(queue_size=%d records, max_queue_bytes=%d); the count is in the run as _metricreg/dropped",
                writer.stats.dropped,
                writer.queue_size,
                writer.max_queue_bytes,
            )
        if writer.unwritten:
            log.warning(
                "metricreg: %d records could not be written to %r because of I/O errors; "
                "the count is in the run as _metricreg/unwritten where it could be written",
                writer.unwritten,
                self.logdir,
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
        due = self._due.next  # computed by the last DueTable.due (or a disabling)
        exchange = self._exchange
        return min(due, exchange.next_due) if exchange is not None and exchange.active else due

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
            self._warn_if_inert()
            return
        kinds = tuple(map(type, raw.values()))
        if kinds not in _NO_ITERATORS:  # checked once per combination of value types (a loop repeats one)
            for name, value in raw.items():
                kind = type(value)
                iterator = _ITERATOR_TYPES.get(kind)
                if iterator is None:
                    iterator = is_iterator(value)
                    if len(_ITERATOR_TYPES) < 256:
                        _ITERATOR_TYPES[kind] = iterator
                if iterator:
                    raise TypeError(f"Monitor.{event}({name}=...): {iterator_message(name, value)}")
            if len(_NO_ITERATORS) < 256:
                _NO_ITERATORS.add(kinds)
        inputs = Inputs(raw, self.registry.derived, {"step": step, "event": event, "shared": self._shared})
        results: list[tuple[SeriesKey, Any]] = []
        shared: list[tuple[SeriesKey, Any]] = []
        writes = self.rank == 0
        exchange = self._exchange if self._exchange is not None and self._exchange.active else None
        memo = open_step_scalars()  # one host read per CPU scalar input, whichever metrics ask
        jobs = writes and self._exchange is None and self._writer is not None
        rules: list[tuple[_Compiled, dict[str, Any], str, str]] | None = None
        numbers: dict[str, Any] | None = None  # the step's host numbers by input name, for the writer rules
        try:
            for compiled in table:
                if compiled.disabled:
                    continue
                if event == "step":  # the table holds the due metrics (DueTable.due) and the predicates
                    if compiled.predicate and not self._predicate_due(compiled, position):
                        continue
                elif not compiled.schedule.is_due(position):
                    continue
                is_shared = exchange is not None and compiled.name in exchange.shared
                if not writes and not is_shared:
                    continue  # only metrics shared across ranks run beyond rank 0
                if jobs and compiled.route is not False:
                    if numbers is None:
                        numbers = {}
                    kwargs = self._rule_inputs(compiled, inputs, raw, step, numbers, split, event)
                    if kwargs is None:
                        continue
                    if compiled.route:
                        if rules is None:
                            rules = []
                        rules.append((compiled, kwargs, split, compiled.metric.split or split))
                        continue
                self._run_one(
                    compiled, inputs, split, compiled.metric.split or split, step, shared if is_shared else results, raw
                )
        finally:
            close_step_scalars(memo)
            if self._copies:
                self._copies.clear()
        if exchange is not None and (event != "step" or position >= exchange.next_due):
            if event == "step":
                exchange.advance(position)
            if exchange.layout[event] or event == "step":
                shared = self._share(exchange, event, step, split, shared)
        if writes:
            results.extend(shared)
        if direct:
            self.log(direct, step=step, split=split)
        if rules is not None and self._writer is not None:  # one record: the values and the rules' job
            self._writer.put(("values", step, time.time(), results, partial(self._run_rules, step, rules)))
        elif results and self._writer is not None:
            self._writer.put(("values", step, time.time(), results))

    def _share(
        self, exchange: distributed.Exchange, event: str, step: int, split: str, local: list[tuple[SeriesKey, Any]]
    ) -> list[tuple[SeriesKey, Any]]:
        """Exchange shared results with the other ranks; rank 0 gets them reduced (else its own values)."""
        by_slot = {(series.metric, series.member): value for series, value in local}
        try:
            reduced, stops = exchange.exchange(event, step, by_slot, self._stop_request is not None)
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as exc:
            exchange.close()
            log.error(
                "metricreg: cross-rank exchange stopped at step %d on rank %d (%s: %s); from now on metricreg "
                "makes no cross-rank traffic: reduced metrics are rank 0's own values and request_stop acts on "
                "the rank that calls it. Training is not affected.",
                step,
                self.rank,
                type(exc).__name__,
                exc,
            )
            if self._stop_request is not None:
                self.should_stop, self.stop_reason = True, self._stop_request
            return local
        if stops and not self.should_stop:
            self.should_stop = True
            self.stop_reason = self._stop_request or f"stop requested on rank {stops[0]}"
        known = set(exchange.index[event])
        out = [(series, value) for series, value in local if (series.metric, series.member) not in known]
        for series, _ in out if self.rank == 0 else ():
            distributed.warn_undeclared(series.metric, series.member)
        by_name = {c.name: c for c in self._table}
        for slot, value in reduced:
            compiled = by_name[slot.metric]
            out.append((compiled.series_key(compiled.metric.split or split, None, slot.member), value))
        return out

    def _runnable(self, compiled: _Compiled, names: tuple[str, ...], step: int) -> bool:
        """Whether the step inputs ``names`` (given or derivable) hold every required input of ``compiled``.

        Asked by the DueTable once per combination of input names; a metric left out is reported
        as _run_one reports a missing input (once, at debug level).
        """
        probe = Inputs(dict.fromkeys(names), self.registry.derived, {"step": step, "event": "step", "shared": None})
        for name in compiled.required:
            if name not in probe:
                if not compiled.reported_missing:
                    compiled.reported_missing = True
                    log.debug("metricreg: %s skipped at step %d: input %r not given", compiled.name, step, name)
                return False
        return True

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
        raw: Mapping[str, Any] = _NO_INPUTS,
    ) -> None:
        """Run one due metric; ``split`` is the data split it sees, ``tag_split`` where it is written.

        ``raw`` (the inputs as passed) answers "is it given?" with a dict lookup before asking
        ``inputs``, which also knows the derived ones. The timing is the CostMeter's, inlined
        (see CostMeter): a due metric costs no method call beyond its own compute.
        """
        for name in compiled.required:
            if name not in raw and name not in inputs:
                if not compiled.reported_missing:
                    compiled.reported_missing = True
                    log.debug("metricreg: %s skipped at step %d: input %r not given", compiled.name, step, name)
                return
        cost = self._cost
        running = cost.running = (compiled.name, compiled.plugin, step, perf_counter())
        try:
            kwargs: dict[str, Any] = {}
            for name, how in compiled.plan:
                if how == 4:  # required (present: checked above); passed as a value, it is that value
                    value = raw.get(name, _MISSING)
                    kwargs[name] = inputs[name] if value is _MISSING or is_deferred(value) else value
                elif how == 2:
                    kwargs[name] = inputs[name]
                elif how == 3:
                    if name in inputs:
                        kwargs[name] = inputs[name]
                elif how == 0:
                    kwargs[name] = split
                else:
                    kwargs[name] = inputs
            fan = kwargs.get(compiled.fan_out) if compiled.fan_out else None
            wants_state = compiled.wants_state
            if fan is not None and isinstance(fan, Mapping):  # (an ABC check: skipped for the usual None)
                failed: KeyFailure | None = None
                succeeded = False
                for key, value in fan.items():
                    kwargs[compiled.fan_out] = value  # type: ignore[index]
                    if wants_state:
                        kwargs["state"] = compiled.state.setdefault((split, str(key)), {})
                    try:  # one bad key costs only itself: the others are still computed and written
                        self._collect(compiled, compiled.metric.compute(**kwargs), tag_split, str(key), out)
                    except InputError:
                        raise
                    except PartialResult as exc:  # the key's good members, and its failure
                        self._collect(compiled, exc.values, tag_split, str(key), out)
                        failed, succeeded = failed or KeyFailure(compiled.fan_out, key, exc), True  # type: ignore[arg-type]
                    except Exception as exc:
                        failed = failed or KeyFailure(compiled.fan_out, key, exc)  # type: ignore[arg-type]
                    else:
                        succeeded = True
                if failed is not None:
                    failed.partial = succeeded
                    raise failed
            else:
                if wants_state:
                    kwargs["state"] = compiled.state.setdefault((split, None), {})
                result = compiled.metric.compute(**kwargs)
                if type(result) is float:  # the commonest result on CPU (A.host_scalar): no call, no copy
                    series = compiled.series.get((tag_split, None, None))
                    out.append((series or compiled.series_key(tag_split, None, None), result))
                elif result is not None:
                    self._collect(compiled, result, tag_split, None, out)
        except (KeyboardInterrupt, SystemExit):
            raise
        except InputError as exc:  # the input's failure, not the metric's: skipped this step, never disabled
            self._input_failed(exc, step)
        except PartialResult as exc:  # the good members are written; the failure is counted, never disables
            self._collect(compiled, exc.values, tag_split, None, out)
            self._failed(compiled, step, exc)
        except Exception as exc:
            self._failed(compiled, step, exc)
        else:
            compiled.consecutive = 0
        finally:
            elapsed = perf_counter() - running[3]
            cost.running = None
            acc = compiled.cost
            acc[1] += elapsed
            acc[0] += 1
            if elapsed > acc[2]:
                acc[2] = elapsed
            if elapsed > cost.alarm:
                cost.finish(running, elapsed)

    def _rule_inputs(
        self,
        compiled: _Compiled,
        inputs: Inputs,
        raw: Mapping[str, Any],
        step: int,
        numbers: dict[str, Any],
        split: str = "train",
        event: str = "step",
    ) -> dict[str, Any] | None:
        """A writer rule's arguments as host numbers, read now; None when it does not run this step.

        Missing and failing inputs are handled as in _run_one. On its first due step a rule whose
        inputs are not all host numbers is sent back to the inline route for good (route False:
        the kwargs are returned for _run_one to ignore); later, a value that is not one host
        number is captured at its step and the writer runs the rule on the copy, and a parameter
        set that can no longer be copied (rule_jobs.snapshot_tensors) sends the rule back inline
        once the writer has finished its queued jobs. ``numbers`` keeps the host numbers read
        this step by input name (the loss serves five rules): each is read and checked once.
        A rule that reads ``inputs`` gets rule_jobs.host_inputs' snapshot of them; when one cannot
        be taken, it goes back inline (with its group, see _inline).
        """
        for name in compiled.required:
            if name not in raw and name not in inputs:
                if not compiled.reported_missing:
                    compiled.reported_missing = True
                    log.debug("metricreg: %s skipped at step %d: input %r not given", compiled.name, step, name)
                return None
        kwargs: dict[str, Any] = {}
        copies, passes, skip, _, frozen = compiled.writer  # type: ignore[misc]
        try:
            for name, how in compiled.plan:
                if how == 0:
                    kwargs[name] = split
                    continue
                if how == 1:
                    # a lazy input reads as None to a step rule (it only peeks); an eval rule would call it
                    snapshot = host_inputs(raw, numbers, skip, lazy=event == "step")  # type: ignore[arg-type]
                    if snapshot is None:
                        self._inline(compiled)
                        return kwargs
                    kwargs[name] = Inputs(snapshot, _NO_INPUTS, {"step": step, "event": event, "shared": self._shared})
                    continue
                number = numbers.get(name, _MISSING)
                if number is not _MISSING:
                    kwargs[name] = number
                    continue
                if how == 3 and name not in inputs:
                    continue
                value = raw.get(name, _MISSING) if how == 4 else _MISSING
                if value is _MISSING or is_deferred(value):
                    value = inputs[name]
                if name in passes:
                    kwargs[name] = value
                    continue
                number = self._copy(value, name == "model" and not frozen) if name in copies else host_value(value)
                if number is NOT_HOST:
                    if compiled.route is None or name in copies:
                        # not host numbers at the first due step, or no longer a small CPU parameter set:
                        # inline (after the writer has run its queued jobs: their state is shared)
                        self._inline(compiled)
                        return kwargs
                    number = _captured(value)
                elif name not in copies:
                    numbers[name] = number
                kwargs[name] = number
        except (KeyboardInterrupt, SystemExit):
            raise
        except InputError as exc:
            self._input_failed(exc, step)
            return None
        except Exception as exc:
            self._failed(compiled, step, exc)
            return None
        if compiled.route is None:
            group = self._groups.get(compiled.writer.group, ()) if compiled.writer.group else ()  # type: ignore[union-attr]
            if any(member.route is False for member in group):  # the group's state is on the training thread
                self._inline(compiled)
                return kwargs
            compiled.route = True
        return kwargs

    def _inline(self, compiled: _Compiled) -> None:
        """Send a writer rule, and the rules of its group, inline for good; first the writer finishes their jobs."""
        group = compiled.writer.group if compiled.writer is not None else None
        members = self._groups.get(group, [compiled]) if group is not None else [compiled]
        queued = any(member.route for member in members)
        for member in members:
            member.route = False
        if queued and self._writer is not None:
            self._writer.flush()

    def _copy(self, value: Any, trainable_only: bool) -> Any:
        """snapshot_tensors of ``value``, taken once per due step whichever rules ask."""
        key = (id(value), trainable_only)
        hit = self._copies.get(key)
        if hit is None or hit[0] is not value:
            hit = self._copies[key] = (value, snapshot_tensors(value, trainable_only))
        return hit[1]

    def _run_rules(
        self, step: int, rules: list[tuple[_Compiled, dict[str, Any], str, str]]
    ) -> tuple[list[tuple[SeriesKey, Any]], list[tuple[str, dict[str, Any]]]]:
        """The writer-thread job of one due step: each rule in table order, each failure its own.

        Returns the values to write and, per failed rule, its error account (counted here, as
        _failed counts an inline failure: same message, same count, same disabling after
        ``max_failures`` in a row); the other rules of the job still run.
        """
        out: list[tuple[SeriesKey, Any]] = []
        failures: list[tuple[str, dict[str, Any]]] = []
        for compiled, kwargs, split, tag_split in rules:
            if compiled.disabled:
                continue
            try:  # (not timed into the CostMeter: that is training-thread time)
                if compiled.wants_state:
                    kwargs["state"] = compiled.state.setdefault((split, None), {})
                self._collect(compiled, compiled.metric.compute(**materialize(kwargs)), tag_split, None, out)
            except Exception as exc:
                with self._failure_lock:
                    message = f"{type(exc).__name__}: {exc}"
                    failures.append(
                        (compiled.name, self._count_failure(compiled, step, message, compiled.consecutive + 1))
                    )
            else:
                compiled.consecutive = 0
        return out, failures

    def _collect(
        self, compiled: _Compiled, result: Any, split: str, key: str | None, out: list[tuple[SeriesKey, Any]]
    ) -> None:
        if result is None:
            return
        if type(result) is float:  # the commonest result on CPU (A.host_scalar): immutable, no copy, no ABC check
            out.append((compiled.series_key(split, key, None), result))
            return
        if type(result) is dict or isinstance(result, Mapping):
            for member, value in result.items():
                if value is not None:
                    series = compiled.series_key(split, key, member if type(member) is str else str(member))
                    out.append((series, value if type(value) is float else _captured(value)))
        else:  # a Python float is immutable: no copy to take
            out.append((compiled.series_key(split, key, None), result if type(result) is float else _captured(result)))

    def _failed(self, compiled: _Compiled, step: int, exc: BaseException) -> None:
        # a fan-out that failed for some keys only is reported, but its good keys keep it enabled
        consecutive = 0 if getattr(exc, "partial", False) else compiled.consecutive + 1
        message = str(exc) if isinstance(exc, (KeyFailure, PartialResult)) else f"{type(exc).__name__}: {exc}"
        with self._failure_lock:
            info = self._count_failure(compiled, step, message, consecutive)
        if self._writer is not None:
            self._writer.put(("error", step, compiled.name, info))

    def _input_failed(self, exc: InputError, step: int) -> None:
        """Count a failing input once per step, under its own name; report its first failure."""
        key = f"input:{exc.name}"
        with self._failure_lock:
            entry = self._input_errors.get(key)
            if entry is None:
                entry = self._input_errors[key] = {
                    "plugin": exc.plugin,
                    "count": 0,
                    "consecutive": 0,
                    "first_step": step,
                    "last_step": None,
                    "last_message": "",
                    "disabled": False,
                }
            if entry["last_step"] == step:
                return  # already counted: every metric that needs it sees the same failure
            entry.update(count=entry["count"] + 1, consecutive=entry["count"] + 1, last_step=step)
            entry["last_message"] = str(exc)
            info = dict(entry)
        if info["count"] == 1:
            log.warning(
                "metricreg: %s at step %d; the metrics that need it are skipped for that step, training continues",
                exc,
                step,
            )
        if self._writer is not None:
            self._writer.put(("error", step, key, info))

    def _value_failed(self, metric: str, step: int, message: str, streak: int) -> dict[str, Any]:
        """A value of ``metric`` could not be written (writer thread): counted like a failed compute."""
        compiled = self._by_name[metric]
        with self._failure_lock:
            return self._count_failure(compiled, step, f"unwritable value: {message}", streak)

    def _count_failure(self, compiled: _Compiled, step: int, message: str, consecutive: int) -> dict[str, Any]:
        """Count one failure; report the first; disable after ``max_failures`` in a row."""
        compiled.failures += 1
        compiled.consecutive = consecutive
        if compiled.first_failure is None:
            compiled.first_failure = step
        compiled.last_failure = step
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
            self._due.disabled(compiled)
            log.warning(
                "metricreg: metric %r (plugin %r) disabled after %d consecutive failures",
                compiled.name,
                compiled.plugin,
                compiled.consecutive,
            )
        return self._error_info(compiled)

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

    def _become_inert(self, pid: int) -> None:
        """In a forked child: forget the parent's writer without flushing it; every call returns at once."""
        self._inert_pid = pid
        self._closed = True
        self._writer = None  # unbuffered file: dropping it writes nothing; its thread did not survive the fork
        self._next_due = 0  # every step reaches _run, which warns once and returns
        _open_monitors.discard(self)

    def _warn_if_inert(self) -> None:
        if self._inert_pid is not None and not self._inert_warned:
            self._inert_warned = True
            log.warning(
                "metricreg: a Monitor for %r was used in a forked child process (pid %d, for example a "
                "DataLoader worker); it does nothing there. Call it from the training process.",
                self.logdir,
                self._inert_pid,
            )

    def _dispatch_alert(self, alert: Alert) -> None:
        """Call every metricreg_on_alert implementation, each isolated from the others."""
        for impl in self.plugin_manager.hook.metricreg_on_alert.get_hookimpls():
            args = {"alert": alert, "monitor": self}
            try:
                impl.function(*[args[name] for name in impl.argnames])
            except Exception as exc:
                log.error("metricreg: on_alert hook of plugin %r failed: %r", impl.plugin_name, exc)
