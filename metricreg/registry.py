"""Collect what plugins declare, validate it, and compile the schedule table.

Runs once when a Monitor starts. Every error names the plugin and the metric
so a bad registration is fixed in seconds, not debugged.
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import inspect
import linecache
import traceback
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import pluggy

from metricreg.config import Config, ConfigError
from metricreg.inputs import Derived
from metricreg.plugins import plugin_name
from metricreg.spec import CONTEXT_PARAMS, Health, Metric, SpecError, check_name

# Inputs the core itself understands, before any plugin declares more.
CORE_INPUTS: dict[str, str] = {"loss": "the training loss of this step (scalar)"}


class RegistrationError(ValueError):
    """An invalid registration; the message names the plugin and the metric."""


@dataclasses.dataclass
class Registered:
    metric: Metric
    plugin: str


@dataclasses.dataclass
class Registry:
    metrics: list[Registered]
    derived: dict[str, Derived]
    step_inputs: dict[str, str]  # declared step input name -> description (and its plugin)

    def describe(self) -> list[dict[str, Any]]:
        """One dict per metric, as the manifest and `metricreg plugins` show it."""
        rows = []
        for reg in self.metrics:
            m = reg.metric
            health: dict[str, Any] = {}
            if isinstance(m.health, Health):
                health[""] = m.health.to_dict()
            elif m.health:
                health = {k: h.to_dict() for k, h in m.health.items()}
            rows.append(
                {
                    "name": m.name,
                    "plugin": reg.plugin,
                    "kind": m.kind,
                    "schedule": m.schedule.describe(),
                    "event": m.schedule.event,
                    "inputs": list(m.inputs),
                    "optional_inputs": list(m.optional_inputs),
                    "reduce": m.reduce,
                    "fan_out": m.fan_out,
                    "split": m.split,
                    "description": m.description or _first_doc_line(m.compute),
                    "health": health,
                }
            )
        return rows


def _first_doc_line(fn: Callable[..., Any]) -> str:
    doc = inspect.getdoc(fn) or ""
    return doc.strip().split("\n\n")[0].replace("\n", " ")


def collect(pm: pluggy.PluginManager, config: Config, extra_inputs: Iterable[str] = ()) -> Registry:
    """Call the registration hooks once and validate everything they declared."""
    metrics: dict[str, Registered] = {}
    derived: dict[str, Derived] = {}
    step_inputs: dict[str, str] = dict(CORE_INPUTS)
    for name in extra_inputs:
        step_inputs[check_name(name, "input")] = "declared by the user"

    for impl in pm.hook.metricreg_register_inputs.get_hookimpls():
        owner = plugin_name(pm, impl.plugin)

        def register_input(
            name: str, fn: Callable[..., Any] | None = None, description: str = "", _owner: str = owner
        ) -> None:
            try:
                check_name(name, "input")
            except SpecError as exc:
                raise RegistrationError(f"plugin {_owner!r}: {exc}") from None
            if fn is None:
                step_inputs.setdefault(name, description or f"declared by {_owner}")
                return
            if not callable(fn):
                raise RegistrationError(f"plugin {_owner!r}: derived input {name!r} needs a callable, got {fn!r}")
            if name in derived:
                raise RegistrationError(
                    f"derived input {name!r} is registered twice: by {derived[name].plugin!r} and by {_owner!r}"
                )
            params, optional = _input_params(fn, name, _owner)
            derived[name] = Derived(name, fn, _owner, params, optional)

        _call(impl, register_input, owner)

    for impl in pm.hook.metricreg_register_metrics.get_hookimpls():
        owner = plugin_name(pm, impl.plugin)

        def register_metric(metric: Metric, _owner: str = owner) -> None:
            if not isinstance(metric, Metric):
                raise RegistrationError(f"plugin {_owner!r} registered {metric!r}; expected a metricreg.Metric")
            if metric.name in metrics:
                raise RegistrationError(
                    f"metric {metric.name!r} is registered twice: by plugin {metrics[metric.name].plugin!r} "
                    f"and by plugin {_owner!r}. A name is a metric's identity in the run, so rename one; or do not "
                    f"load one of the plugins (an installed one: METRICREG_PLUGINS=<the plugins to keep> or "
                    f"METRICREG_DISABLE_PLUGIN_AUTOLOAD=1; the built-ins: Monitor(builtins=False))"
                )
            metrics[metric.name] = Registered(metric, _owner)

        _call(impl, register_metric, owner)

    _check_inputs(metrics.values(), derived, step_inputs)
    selected = [_apply_config(reg, config) for reg in metrics.values()]
    _check_patterns(config, metrics)
    return Registry([r for r in selected if r is not None], derived, step_inputs)


def _call(impl: pluggy.HookImpl, register: Callable[..., None], owner: str) -> None:
    try:
        impl.function(register)
    except (RegistrationError, KeyboardInterrupt, SystemExit):
        raise
    except SpecError as exc:
        metric = _metric_being_built(exc, impl.function)
        where = (
            f"plugin {owner!r}, metric {metric!r}" if metric and repr(metric) not in str(exc) else f"plugin {owner!r}"
        )
        raise RegistrationError(f"{where}: {exc}") from None
    except Exception as exc:
        raise RegistrationError(f"plugin {owner!r} failed while registering: {exc!r}") from exc


def _metric_being_built(exc: BaseException, hook: Callable[..., Any]) -> str | None:
    """The name of the ``Metric(...)`` call inside ``hook`` whose arguments raised ``exc``.

    A ``Health(...)`` is built (and validated) before the ``Metric(...)`` that holds it, so its
    error cannot know the metric; the failing call's position in the source does:
    ``register(Metric("x", ..., health=Health(...)))``. None when it cannot be told.
    """
    code = getattr(hook, "__code__", None)
    if code is None:
        return None
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == code.co_filename and f.lineno]
    if not frames:
        return None
    frame = frames[-1]
    where = (frame.lineno, getattr(frame, "colno", None) or 0)
    try:
        tree = ast.parse("".join(linecache.getlines(frame.filename)))
    except (SyntaxError, ValueError):
        return None
    found: tuple[tuple[int, int], str] | None = None
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and _callee(node.func) == "Metric"):
            continue
        start, end = (node.lineno, node.col_offset), (node.end_lineno or node.lineno, node.end_col_offset or 0)
        if not start <= where <= end:
            continue
        name = _literal_name(node)
        if name is not None and (found is None or start > found[0]):
            found = (start, name)  # the innermost call holds the failing argument
    return found[1] if found else None


def _callee(func: ast.expr) -> str | None:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return None


def _literal_name(call: ast.Call) -> str | None:
    candidates = [*call.args[:1], *(k.value for k in call.keywords if k.arg == "name")]
    for arg in candidates:
        if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
            return arg.value
    return None


def _input_params(fn: Callable[..., Any], name: str, owner: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    try:
        probe = Metric(f"_input/{name}", fn)
    except SpecError as exc:
        raise RegistrationError(f"plugin {owner!r}: derived input {name!r}: {exc}") from None
    return probe.inputs, probe.optional_inputs


def _check_inputs(metrics: Iterable[Registered], derived: dict[str, Derived], step_inputs: dict[str, str]) -> None:
    known = set(step_inputs) | set(derived) | CONTEXT_PARAMS
    for d in derived.values():
        for p in d.params:
            if p not in known:
                raise RegistrationError(_unknown_input(f"derived input {d.name!r}", d.plugin, p, known))
    _check_cycles(derived)
    for reg in metrics:
        for p in reg.metric.inputs:
            if p not in known:
                raise RegistrationError(_unknown_input(f"metric {reg.metric.name!r}", reg.plugin, p, known))


def _unknown_input(what: str, plugin: str, param: str, known: set[str]) -> str:
    close = difflib.get_close_matches(param, sorted(known), n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return (
        f"{what} (plugin {plugin!r}) asks for input {param!r}, which no plugin provides and which is not a "
        f"declared step input.{hint} Declare it with Monitor(inputs=[{param!r}]) or from a plugin's "
        f"metricreg_register_inputs hook: register({param!r})."
    )


def _check_cycles(derived: dict[str, Derived]) -> None:
    state: dict[str, int] = {}

    def visit(name: str, path: list[str]) -> None:
        if state.get(name) == 2 or name not in derived:
            return
        if state.get(name) == 1:
            cycle = " -> ".join([*path[path.index(name) :], name])
            raise RegistrationError(f"derived inputs form a cycle: {cycle} (plugin {derived[name].plugin!r})")
        state[name] = 1
        for p in derived[name].params + derived[name].optional:
            visit(p, [*path, name])
        state[name] = 2

    for name in derived:
        visit(name, [])


def _apply_config(reg: Registered, config: Config) -> Registered | None:
    metric = reg.metric
    for override in config.for_metric(metric.name):
        if override.enabled is False:
            return None
        if override.every is not None or override.health is not None:
            metric = _with_overrides(metric, override, reg.plugin)
    return Registered(metric, reg.plugin) if metric is not reg.metric else reg


def _with_overrides(metric: Metric, override: Any, plugin: str) -> Metric:
    changes: dict[str, Any] = {}
    if override.every is not None:
        changes["every"] = override.every
    if override.health is not None:
        try:
            if isinstance(metric.health, Health) or metric.health is None:
                base = metric.health or Health()
                changes["health"] = dataclasses.replace(base, **override.health)
            elif override.health and all(isinstance(v, Mapping) for v in override.health.values()):
                # {"member": {field: value}}: retune single family members.
                table = dict(metric.health)
                unknown = sorted(set(override.health) - set(table))
                if unknown:
                    raise SpecError(f"no family member named {unknown} (members with rules: {sorted(table)})")
                for member, fields in override.health.items():
                    table[member] = dataclasses.replace(table[member], **fields)
                changes["health"] = table
            else:
                changes["health"] = {k: dataclasses.replace(h, **override.health) for k, h in metric.health.items()}
        except (TypeError, SpecError) as exc:
            raise ConfigError(
                f"config[{override.pattern!r}] for metric {metric.name!r} (plugin {plugin!r}): {exc}"
            ) from None
    fields = {f.name: getattr(metric, f.name) for f in dataclasses.fields(metric) if f.init}
    fields.update(changes)
    return Metric(**fields)


def _check_patterns(config: Config, metrics: dict[str, Registered]) -> None:
    import fnmatch

    for override in config.overrides:
        if not any(fnmatch.fnmatchcase(name, override.pattern) for name in metrics):
            raise ConfigError(
                f"config pattern {override.pattern!r} matches no registered metric "
                f"(see `metricreg plugins` for the names)"
            )
