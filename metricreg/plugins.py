"""Plugin discovery: built-ins, installed entry points, and the user's own plugins.

Order: built-in plugins first, then entry points in the ``metricreg`` group,
then plugins passed to ``Monitor(plugins=...)``. Environment switches, in the
spirit of pytest's PYTEST_DISABLE_PLUGIN_AUTOLOAD:

* ``METRICREG_DISABLE_PLUGIN_AUTOLOAD=1``: load no entry-point plugins.
* ``METRICREG_PLUGINS=name1,name2``: load only these entry points.
* ``METRICREG_DISABLE_BUILTINS=1``: skip the built-in metrics too.
"""

from __future__ import annotations

import importlib
import inspect
import os
import warnings
from collections.abc import Iterable
from importlib.metadata import entry_points
from typing import Any

import pluggy

from metricreg import hookspecs
from metricreg.hookspecs import PROJECT

BUILTIN_PLUGINS: tuple[str, ...] = (
    "metricreg.builtins.loss",
    "metricreg.builtins.collapse",
    "metricreg.builtins.ema",
    "metricreg.builtins.generalization",
    "metricreg.builtins.optimization",
    "metricreg.builtins.stability",
    "metricreg.builtins.performance",
    "metricreg.builtins.system",
    "metricreg.builtins.prediction",
    "metricreg.builtins.representation",
    "metricreg.builtins.distillation",
    "metricreg.builtins.reconstruction",
    "metricreg.builtins.loss_parts",
    "metricreg.builtins.heads",
    "metricreg.builtins.init_distance",
    "metricreg.builtins.levels",
    "metricreg.builtins.lidar",
    "metricreg.builtins.gradient_noise",
    "metricreg.builtins.probe",
    "metricreg.builtins.masking",
    "metricreg.builtins.projector",
    "metricreg.builtins.visuals",
)


class PluginError(RuntimeError):
    """A plugin could not be loaded or declares something invalid."""


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def plugin_name(pm: pluggy.PluginManager, plugin: Any) -> str:
    return pm.get_name(plugin) or default_name(plugin)


def default_name(plugin: Any) -> str:
    """A readable name: the module's name, the class's, or the instance's class."""
    if isinstance(plugin, type) or inspect.ismodule(plugin):
        module = getattr(plugin, "__module__", None)
        qualname = getattr(plugin, "__qualname__", plugin.__name__)
        return plugin.__name__ if inspect.ismodule(plugin) or not module else f"{module}.{qualname}"
    cls = type(plugin)
    return f"{cls.__module__}.{cls.__qualname__}"


def load_builtins(pm: pluggy.PluginManager) -> None:
    for module_name in BUILTIN_PLUGINS:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                continue  # a built-in family not shipped in this build
            raise
        if not pm.is_registered(module):
            pm.register(module, name=module_name)


def load_entry_points(pm: pluggy.PluginManager) -> None:
    if _truthy(os.environ.get("METRICREG_DISABLE_PLUGIN_AUTOLOAD")):
        return
    only = {n.strip() for n in os.environ.get("METRICREG_PLUGINS", "").split(",") if n.strip()}
    installed = list(entry_points().select(group=PROJECT))
    unknown = sorted(only - {ep.name for ep in installed})
    if unknown:
        warnings.warn(
            f"METRICREG_PLUGINS names {', '.join(map(repr, unknown))}, which no installed package provides "
            f"(installed metricreg plugins: {', '.join(sorted(ep.name for ep in installed)) or 'none'})",
            stacklevel=4,
        )
    for ep in installed:
        if only and ep.name not in only:
            continue
        if pm.get_plugin(ep.name) is not None or pm.is_blocked(ep.name):
            continue
        try:
            plugin = ep.load()
        except Exception as exc:
            raise PluginError(f"metricreg plugin {ep.name!r} ({ep.value}) failed to import: {exc!r}") from exc
        pm.register(plugin, name=ep.name)


def get_plugin_manager(plugins: Iterable[Any] = (), builtins: bool | None = None) -> pluggy.PluginManager:
    """A plugin manager with built-ins, entry points and ``plugins`` registered.

    Raises PluginError naming the plugin when a hook implementation is unknown
    (for example a typo in the hook name) or has a wrong signature.
    """
    pm = pluggy.PluginManager(PROJECT)
    pm.add_hookspecs(hookspecs)
    if builtins is None:
        builtins = not _truthy(os.environ.get("METRICREG_DISABLE_BUILTINS"))
    if builtins:
        load_builtins(pm)
    load_entry_points(pm)
    if isinstance(plugins, (str, bytes)) or not isinstance(plugins, Iterable):
        plugins = [plugins]  # plugins="my_module" is one module, not a sequence of letters
    for plugin in plugins:
        if isinstance(plugin, str):
            try:
                plugin = importlib.import_module(plugin)
            except ImportError as exc:
                raise PluginError(
                    f"metricreg plugin module {plugin!r} (from plugins=) cannot be imported: {exc}"
                ) from exc
        if pm.is_registered(plugin):
            continue
        name = default_name(plugin)
        if pm.get_plugin(name) is not None:
            name = f"{name}#{id(plugin):x}"
        try:
            pm.register(plugin, name=name)
        except pluggy.PluginValidationError as exc:
            raise PluginError(f"metricreg plugin {plugin_name(pm, plugin)!r} is invalid: {exc}") from exc
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise PluginError(
            f"metricreg plugin {plugin_name(pm, exc.plugin)!r} implements an unknown hook: {exc} "
            f"(known hooks: {', '.join(sorted(n for n in dir(pm.hook) if n.startswith('metricreg_')))})"
        ) from exc
    return pm
