"""Scalar rules run as one writer-thread job per due step.

Why: on a small CPU step, a dozen scalar rules due every 10 steps each cost a few microseconds of
the training thread, mostly cold code after a training step, not arithmetic. Their inputs are one
number each (the loss, the gradient norm), read once per step anyway. So the training thread
reads those numbers, queues them with the rules in ONE record, and the writer thread runs the
rules in step order. A rule's state is only ever touched by the writer thread, which handles
records in order, so it sees exactly the sequence of values it would have seen inline, and
writes the same values at the same steps.

A rule opts in with :func:`writer_rule` (its compute must work on Python floats, which is how
the host routes of the built-ins already run). The Monitor routes it only in a single-process
run (under torch.distributed scalars are reduced across ranks on the training thread) and only
while its inputs are host numbers; a rule that raises in the job is counted and reported under
its own name, exactly as inline (see Monitor._run_rules).

A rule that reads every passed input (``inputs``: the gap's training windows, filled every 10
steps and read at each eval) gets :func:`host_inputs`' snapshot of them instead, and rules that
share state outside their own ``state`` name one ``group``: they take the same route, so the
state is only ever touched by one thread (one rule going back inline takes the group with it,
after the writer has finished their queued jobs).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple, TypeVar

import numpy as np

from metricreg.arrays import host_scalar, is_array, is_scalar_like
from metricreg.inputs import is_deferred

F = TypeVar("F", bound=Callable[..., Any])

_MARK = "_metricreg_writer_rule"
_PLAIN = frozenset({float, int, bool, str, type(None)})
NOT_HOST = object()  # host_value's answer for a value that is not one host number


class WriterSpec(NamedTuple):
    """How a :func:`writer_rule` gets its arguments on the writer thread."""

    copies: tuple[str, ...]
    passes: tuple[str, ...]
    inputs: frozenset[str] | None  # None: no ``inputs`` argument; else the input names it never reads
    group: str | None
    frozen: bool  # the copy of ``model`` holds its frozen parameters too


def writer_rule(
    compute: F | None = None,
    *,
    copies: tuple[str, ...] = (),
    passes: tuple[str, ...] = (),
    inputs: frozenset[str] | None = None,
    group: str | None = None,
    frozen: bool = False,
) -> Any:
    """Mark a rule that may run on the writer thread (returns it; usable as ``@writer_rule(...)`` too).

    Its inputs must be host numbers, except the names in ``copies`` (a torch module or a
    {name: tensor} dict of plain CPU tensors: the writer gets :func:`snapshot_tensors`' copy
    taken at the step) and in ``passes`` (objects handed over as they are because the rule only
    reads their structure or its own keys of them: a module's layer types, ``shared``).
    ``inputs`` (a set of input names the rule never reads) gives its ``inputs`` argument as
    :func:`host_inputs`' snapshot; ``group`` names rules that must share one route. A copy of
    ``model`` holds its trainable parameters, and all of them with ``frozen``.
    """

    def mark(fn: F) -> F:
        spec = WriterSpec(
            tuple(copies), tuple(passes), frozenset(inputs) if inputs is not None else None, group, frozen
        )
        setattr(fn, _MARK, spec)
        return fn

    return mark(compute) if compute is not None else mark


def writer_inputs(compute: Callable[..., Any]) -> WriterSpec | None:
    """The :class:`WriterSpec` of a :func:`writer_rule`, None for any other compute function."""
    mark = getattr(compute, _MARK, None)
    return mark if isinstance(mark, WriterSpec) else None


# The largest parameter (or gradient) set copied for a writer pass: the copy is one memcpy of every
# entry (~0.1 ms a megabyte), the inline passes sample at most 16,384 entries a tensor. Beyond this
# the copy would cost the training thread more than the passes it moves, so they stay inline.
MAX_COPY_ENTRIES = 1 << 18


def snapshot_tensors(value: Any, trainable_only: bool) -> Any:
    """A :class:`TensorCopy` of a torch module's (trainable) parameters or a {name: grad} dict, or NOT_HOST.

    The copy is one ``torch.cat`` into a new buffer (the writer views it per tensor: same
    shapes and values), taken now: the optimizer's next in-place update cannot move it. Only for plain,
    contiguous-or-not CPU tensors of one floating dtype (no shards, no DTensors) whose entries
    number at most MAX_COPY_ENTRIES; anything else is NOT_HOST and the rule stays inline.
    """
    torch = sys.modules.get("torch")
    if torch is None:
        return NOT_HOST
    from metricreg import adapters

    if adapters.is_torch_module(value):
        named = adapters.named_parameters(value, trainable_only=trainable_only)
    elif isinstance(value, dict):
        named = adapters.named_grads(value) or []
    else:
        return NOT_HOST
    if not named:
        return NOT_HOST
    first = named[0][1]
    total = 0
    for _, t in named:
        if type(t) is not torch.Tensor or t.__dict__ or not t.is_cpu or t.dtype != first.dtype or not t.is_contiguous():
            return NOT_HOST
        total += t.numel()
    if total > MAX_COPY_ENTRIES or not first.is_floating_point():
        return NOT_HOST
    return TensorCopy(torch.cat([t.detach().reshape(-1) for _, t in named]), [(n, t.shape) for n, t in named])


class TensorCopy:
    """One flat copy of a set of tensors; :meth:`tensors` gives {name: view} (built on the writer thread).

    Slicing and viewing costs ~4 us a tensor on a cold training thread, more than the copy
    itself for a small model, so only the copy is taken there.
    """

    __slots__ = ("_tensors", "flat", "layout")

    def __init__(self, flat: Any, layout: list[tuple[str, Any]]) -> None:
        self.flat = flat
        self.layout = layout
        self._tensors: dict[str, Any] | None = None

    def tensors(self) -> dict[str, Any]:
        if self._tensors is None:
            out: dict[str, Any] = {}
            start = 0
            for name, shape in self.layout:
                n = math.prod(shape)
                out[name] = self.flat[start : start + n].view(shape)
                start += n
            self._tensors = out
        return self._tensors


def materialize(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The rule's arguments with each TensorCopy as its {name: tensor} dict (writer thread)."""
    for name, value in kwargs.items():
        if type(value) is TensorCopy:
            kwargs[name] = value.tensors()
    return kwargs


def host_value(value: Any) -> Any:
    """The value as an immutable host number, or NOT_HOST when it is anything else.

    A one-element CPU torch tensor without metricreg's shard marks (a plain ``loss``, the norm
    ``clip_grad_norm_`` returns) and one-element numpy arrays become Python floats through
    ``arrays.host_scalar`` (the per-step memo: the same read the inline rules make); plain Python
    values pass through. Device tensors, DTensors, JAX arrays and bigger arrays are NOT_HOST.
    """
    kind = type(value)
    if kind in _PLAIN:
        return value
    torch = sys.modules.get("torch")
    if torch is not None and kind is torch.Tensor:
        if value.__dict__:
            return NOT_HOST
        number = host_scalar(value)  # a float for a one-element real CPU tensor, else the tensor itself
        return number if type(number) is float else NOT_HOST
    if isinstance(value, (np.ndarray, np.generic)) and value.size == 1 and value.dtype.kind in "biuf":
        return host_scalar(value)
    return NOT_HOST


class _NotScalar:
    """Stands in a snapshot for an input that is no scalar (a model, a vector, None): read as such by every rule."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<not a scalar>"


NOT_SCALAR = _NotScalar()
# Types whose values are never one number (a module, an optimizer, None): skipped by type alone. Bounded.
_NEVER_SCALAR: set[type] = set()


def host_inputs(
    raw: Mapping[str, Any], numbers: dict[str, Any], skip: frozenset[str], lazy: bool
) -> dict[str, Any] | None:
    """The passed inputs (but ``skip``) as the writer may read them, or None when one cannot be.

    Host numbers as :func:`host_value` reads them (``numbers``: those already read this step,
    by name), inputs that are no scalar as NOT_SCALAR (not scalar-like, so skipped by any rule
    that looks for scalars), and a lazy input (a callable) as None when ``lazy``: rules that
    only ``peek`` see it as None inline too. None (stay inline) for a lazy input otherwise (the
    inline rule would call it) and for a scalar that is not a host number (a CUDA loss).
    """
    out: dict[str, Any] = {}
    for name, value in raw.items():
        if name in skip:
            continue
        number = numbers.get(name, NOT_HOST)
        if number is not NOT_HOST:
            out[name] = number
            continue
        kind = type(value)
        if kind in _NEVER_SCALAR:
            out[name] = NOT_SCALAR
            continue
        if is_deferred(value):
            if not lazy:
                return None
            out[name] = None
            continue
        number = host_value(value)
        if number is NOT_HOST:
            if is_scalar_like(value):
                return None
            if not is_array(value) and len(_NEVER_SCALAR) < 64:
                _NEVER_SCALAR.add(kind)
            number = NOT_SCALAR
        else:
            numbers[name] = number
        out[name] = number
    return out
