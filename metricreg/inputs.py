"""Lazy per-step inputs: values, deferred callables and derived inputs.

Built only on steps where some metric is due. A deferred input (a function,
lambda, bound method or functools.partial) is called at most once per step and
only if a due metric needs it; derived inputs registered by plugins are
computed the same way and shared by every metric of the step. An input that
fails is remembered as failed for the rest of the step (never run twice) and
blamed on itself, not on the metrics that asked for it. Objects that
merely happen to be callable (an ``nn.Module``, a jitted model) are values.
"""

from __future__ import annotations

import functools
import types
from collections.abc import Callable, Mapping
from typing import Any, NoReturn

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
    """An input failed (a deferred callable or a derived input); carries the input's name and plugin.

    Blamed on the input, not on the metrics that asked for it: they are skipped for the step.
    """

    def __init__(self, message: str, name: str, plugin: str) -> None:
        super().__init__(message)
        self.name = name
        self.plugin = plugin


STEP_CALLER = "Monitor.step"  # the "plugin" of an input the training loop passed itself


def is_iterator(value: object) -> bool:
    """Generators and iterators: consumed by the first metric that reads them, so refused."""
    return isinstance(value, types.GeneratorType) or (
        hasattr(type(value), "__next__") and hasattr(type(value), "__iter__")
    )


def iterator_message(name: str, value: object) -> str:
    return (
        f"input {name!r} is a {type(value).__name__} (an iterator): the first metric to read it would consume "
        f"it and the next would see nothing. Pass a list or an array, or a function that builds one "
        f"(lambda: list(...))"
    )


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
            if isinstance(cached, InputError):
                raise cached  # a failed input runs at most once per step
            return cached
        if name in self._context:
            return self._context[name]
        if name in self._raw:
            value = self._raw[name]
            if is_deferred(value):
                value = self._call(name, STEP_CALLER, "the function passed for it", value, {})
                if is_iterator(value):
                    self._fail(name, STEP_CALLER, iterator_message(name, value), None)
        elif name in self._derived:
            derived = self._derived[name]
            kwargs = {p: self[p] for p in derived.params}  # a failing upstream input raises its own error
            kwargs.update({p: self[p] for p in derived.optional if p in self})
            value = self._call(name, derived.plugin, f"derived input (plugin {derived.plugin!r})", derived.fn, kwargs)
        else:
            raise KeyError(name)
        self._cache[name] = value
        return value

    def _call(self, name: str, plugin: str, what: str, fn: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
        try:
            return fn(**kwargs)
        except (KeyboardInterrupt, SystemExit):
            raise
        except InputError:
            raise
        except Exception as exc:
            self._fail(name, plugin, f"input {name!r} ({what}) failed: {type(exc).__name__}: {exc}", exc)

    def _fail(self, name: str, plugin: str, message: str, cause: BaseException | None) -> NoReturn:
        error = InputError(message, name, plugin)
        self._cache[name] = error
        raise error from cause

    def get(self, name: str, default: Any = None) -> Any:
        if name in self:
            return self[name]
        return default
