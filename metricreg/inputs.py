"""Lazy per-step inputs: values, deferred callables and derived inputs.

Built only on steps where some metric is due. A deferred input (a function,
lambda, bound method or functools.partial) is called at most once per step and
only if a due metric needs it; derived inputs registered by plugins are
computed the same way and shared by every metric of the step. Objects that
merely happen to be callable (an ``nn.Module``, a jitted model) are values.
"""

from __future__ import annotations

import functools
import types
from collections.abc import Callable, Mapping
from typing import Any

_DEFERRED_TYPES = (types.FunctionType, types.MethodType, types.BuiltinFunctionType, functools.partial)

_MISSING = object()


def is_deferred(value: object) -> bool:
    return isinstance(value, _DEFERRED_TYPES)


class Derived:
    """A derived input: a function of other inputs, cached per step."""

    __slots__ = ("fn", "name", "optional", "params", "plugin")

    def __init__(
        self, name: str, fn: Callable[..., Any], plugin: str, params: tuple[str, ...], optional: tuple[str, ...]
    ):
        self.name = name
        self.fn = fn
        self.plugin = plugin
        self.params = params
        self.optional = optional


class InputError(RuntimeError):
    """A derived input failed; carries the input's name and plugin."""


class Inputs:
    """The inputs of one step, evaluated on demand and cached."""

    __slots__ = ("_active", "_cache", "_context", "_derived", "_raw")

    def __init__(self, raw: Mapping[str, Any], derived: Mapping[str, Derived], context: Mapping[str, Any]) -> None:
        self._raw = raw
        self._derived = derived
        self._cache: dict[str, Any] = {}
        self._context = context
        self._active: set[str] = set()

    def provided(self) -> list[str]:
        """Names passed directly to this step (not derived)."""
        return list(self._raw)

    def peek(self, name: str) -> Any:
        """The raw value of a directly passed input, or None if it is deferred or absent."""
        value = self._raw.get(name)
        return None if is_deferred(value) else value

    def __contains__(self, name: object) -> bool:
        if name in self._raw or name in self._context:
            return True
        derived = self._derived.get(name)  # type: ignore[arg-type]
        if derived is None or name in self._active:
            return False
        self._active.add(name)  # type: ignore[arg-type]
        try:
            return all(p in self for p in derived.params)
        finally:
            self._active.discard(name)  # type: ignore[arg-type]

    def __getitem__(self, name: str) -> Any:
        cached = self._cache.get(name, _MISSING)
        if cached is not _MISSING:
            return cached
        if name in self._context:
            return self._context[name]
        if name in self._raw:
            value = self._raw[name]
            if is_deferred(value):
                value = value()
        elif name in self._derived:
            derived = self._derived[name]
            kwargs = {p: self[p] for p in derived.params}
            kwargs.update({p: self[p] for p in derived.optional if p in self})
            try:
                value = derived.fn(**kwargs)
            except (KeyboardInterrupt, SystemExit):
                raise
            except Exception as exc:
                raise InputError(f"derived input {name!r} (plugin {derived.plugin!r}) failed: {exc!r}") from exc
        else:
            raise KeyError(name)
        self._cache[name] = value
        return value

    def get(self, name: str, default: Any = None) -> Any:
        if name in self:
            return self[name]
        return default
