"""When a metric runs: pure functions of the step (or of an event).

Due-ness never depends on data or time, so every rank of a distributed job
agrees on which metrics run and collectives cannot hang. Each step schedule
knows its next due step, which lets the Monitor skip a non-due step with a
single integer comparison.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from dataclasses import dataclass

NEVER = 1 << 62  # "no further due step"; larger than any real step counter

EVENTS = ("step", "eval", "epoch_end")


class Schedule:
    """Base class: a schedule belongs to one event and answers next_due()."""

    event: str = "step"

    def next_due(self, step: int) -> int:
        """The smallest due step >= ``step`` (NEVER if none)."""
        raise NotImplementedError

    def is_due(self, step: int) -> bool:
        return self.next_due(step) == step

    def describe(self) -> str:
        raise NotImplementedError


@dataclass(frozen=True)
class Every(Schedule):
    """Due at start, start + n, start + 2n, ..."""

    n: int
    start: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.n, bool) or not isinstance(self.n, int) or self.n <= 0:
            raise ValueError(f"every(n) needs a positive integer n, got {self.n!r}")
        if isinstance(self.start, bool) or not isinstance(self.start, int) or self.start < 0:
            raise ValueError(f"every(start=) needs a non-negative integer, got {self.start!r}")

    def next_due(self, step: int) -> int:
        if step <= self.start:
            return self.start
        return self.start + -(-(step - self.start) // self.n) * self.n

    def describe(self) -> str:
        return f"every {self.n} steps" + (f" from {self.start}" if self.start else "")


@dataclass(frozen=True)
class LogSpaced(Schedule):
    """Dense early, sparse later: ``per_decade`` points per factor of 10, then every ``max_every``.

    Early training changes fastest; this spends the logging budget there.
    Points (relative to ``start``) are 0 and round(10 ** (k / per_decade)) for
    k = 0, 1, ... until their spacing exceeds ``max_every``; from there on, a
    fixed stride of ``max_every``.
    """

    per_decade: int = 10
    max_every: int = 1000
    start: int = 0

    def __post_init__(self) -> None:
        for key in ("per_decade", "max_every"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"log_spaced({key}=) must be a positive integer, got {value!r}")
        if isinstance(self.start, bool) or not isinstance(self.start, int) or self.start < 0:
            raise ValueError(f"log_spaced(start=) must be a non-negative integer, got {self.start!r}")
        points = [0]
        k = 0
        while True:
            point = round(10 ** (k / self.per_decade))
            if point > points[-1]:
                if point - points[-1] > self.max_every:
                    break
                points.append(point)
            k += 1
        object.__setattr__(self, "_points", tuple(points))

    def next_due(self, step: int) -> int:
        rel = step - self.start
        if rel <= 0:
            return self.start
        points: tuple[int, ...] = self._points  # type: ignore[attr-defined]
        last = points[-1]
        if rel <= last:
            return self.start + points[bisect.bisect_left(points, rel)]
        return self.start + last + -(-(rel - last) // self.max_every) * self.max_every

    def describe(self) -> str:
        return f"log-spaced, {self.per_decade} per decade, at most every {self.max_every} steps"


@dataclass(frozen=True)
class On(Schedule):
    """Due at every ``n``-th occurrence of an event: 'eval' or 'epoch_end'."""

    event: str = "eval"
    n: int = 1

    def __post_init__(self) -> None:
        if self.event not in EVENTS or self.event == "step":
            raise ValueError(f"on(event) takes 'eval' or 'epoch_end', got {self.event!r}")
        if not isinstance(self.n, int) or self.n <= 0:
            raise ValueError(f"on(n=) must be a positive integer, got {self.n!r}")

    def next_due(self, step: int) -> int:  # step = occurrence count of the event
        return -(-step // self.n) * self.n

    def describe(self) -> str:
        return f"on {self.event}" + (f" (every {self.n})" if self.n > 1 else "")


@dataclass(frozen=True)
class Predicate(Schedule):
    """Any ``step -> bool``. Checked on every step, so it costs a call per step."""

    fn: Callable[[int], bool]

    def next_due(self, step: int) -> int:
        return step  # unknown in advance: look again at every step

    def is_due(self, step: int) -> bool:
        return bool(self.fn(step))

    def describe(self) -> str:
        return f"when {getattr(self.fn, '__name__', 'predicate')}(step)"


def every(n: int, start: int = 0) -> Every:
    return Every(n, start)


def log_spaced(per_decade: int = 10, max_every: int = 1000, start: int = 0) -> LogSpaced:
    return LogSpaced(per_decade, max_every, start)


def on(event: str, n: int = 1) -> On:
    return On(event, n)


def as_schedule(spec: object) -> Schedule:
    """Normalise the ``every=`` argument of a Metric."""
    if isinstance(spec, Schedule):
        return spec
    if isinstance(spec, bool):
        raise TypeError("a schedule cannot be a bool")
    if isinstance(spec, int):
        return Every(spec)
    if isinstance(spec, str):
        if spec in ("eval", "epoch_end"):
            return On(spec)
        raise ValueError("a string schedule must be 'eval' or 'epoch_end'")
    if callable(spec):
        return Predicate(spec)
    raise TypeError("expected an int, a Schedule, 'eval', 'epoch_end' or a callable step -> bool")
