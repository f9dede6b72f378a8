"""What a plugin declares: a metric, its schedule and its health metadata.

These are plain, validated value objects. Validation happens here, at
construction, so a bad declaration fails at start-up with the metric's name in
the message (the registry adds the plugin's name).
"""

from __future__ import annotations

import inspect
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from metricreg.schedules import Schedule, as_schedule

KINDS = ("scalar", "histogram", "image", "text", "embedding")  # embedding: metricreg.projector files
REDUCTIONS = (None, "mean", "sum", "max", "min")
DIRECTIONS = (None, "higher_is_better", "lower_is_better")
LEVELS = ("warn", "critical")
BASELINES = (None, "best", "initial", "best_after_warmup", "previous")
RELATIVE_KEYS = ("warn_below_frac", "critical_below_frac", "warn_above_frac", "critical_above_frac")
#: ``Health.clear_after`` for an alert that stays open for the rest of the run: a fault that does
#: not heal when the next interval changes less (weights that blew up, embeddings that collapsed).
NEVER_CLEARS = 1_000_000

# Names look like tags: path components of letters, digits, '_', '-', '.'.
_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*(/[A-Za-z0-9_][A-Za-z0-9_.\-]*)*$")

# Parameters a compute function may ask for that are not user inputs.
CONTEXT_PARAMS = frozenset({"step", "split", "event", "state", "shared", "inputs"})


class SpecError(ValueError):
    """An invalid metric, health or schedule declaration."""


class PartialResult(Exception):
    """Raised by a compute function when one part of its input failed but the other members are good.

    The Monitor writes ``values`` and counts the failure (``cause``, named in the message) without
    letting it disable the metric: a bad optional input must not silence the members (and health
    rules) that do not need it.
    """

    partial = True

    def __init__(self, values: Mapping[str, Any], cause: BaseException) -> None:
        super().__init__(f"{type(cause).__name__}: {cause}")
        self.values = values
        self.__cause__ = cause


def check_name(name: object, what: str = "metric") -> str:
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise SpecError(
            f"{what} name {name!r} is malformed: use path components of letters, "
            "digits, '_', '-' or '.', separated by '/' (e.g. 'collapse/effective_rank')"
        )
    return name


@dataclass(frozen=True)
class Health:
    """How to judge a metric's values: thresholds, direction and what to do.

    A value is judged after TensorBoard's debiased EMA smoothing with weight
    ``smoothing`` (0 = raw values), and must stay beyond a threshold for
    ``persistence`` consecutive points before an alert fires. Non-finite values
    raise an alert at level ``nonfinite`` (None to ignore them).

    Absolute thresholds (``warn_below`` ...) suit unambiguous states (a rank of
    1, a NaN). Quantities whose healthy level depends on the architecture are
    judged against the run itself: ``baseline="best"`` (the best judged value so
    far, in ``direction``) or ``"initial"`` (the median of the first
    ``baseline_points`` judged values) or ``"best_after_warmup"`` (the best
    judged value from point ``baseline_points`` on: a quantity every healthy run
    loses from its random-init level, judged only once that fall is over) or
    ``"previous"`` (the judged point before, from point ``baseline_points + 1`` on:
    a jump within one interval, for a positive quantity whose healthy level drifts
    without bound, such as the distance from initialisation), with
    ``warn_below_frac=0.3`` meaning "below 0.3 × the baseline". An episode closes after ``clear_after``
    (default ``max(2, persistence)``) consecutive points back inside the
    thresholds by a margin of ``hysteresis`` × the threshold, so a noisy series
    near a threshold makes one alert, not hundreds.
    """

    category: str = "other"
    warn_above: float | None = None
    warn_below: float | None = None
    critical_above: float | None = None
    critical_below: float | None = None
    direction: str | None = None
    description: str = ""
    remedy: str = ""
    smoothing: float = 0.0
    persistence: int = 1
    nonfinite: str | None = "critical"
    title: str | None = None
    baseline: str | None = None
    warn_below_frac: float | None = None
    critical_below_frac: float | None = None
    warn_above_frac: float | None = None
    critical_above_frac: float | None = None
    baseline_points: int = 3
    hysteresis: float = 0.05
    clear_after: int | None = None

    def __post_init__(self) -> None:
        check_name(self.category, "health category")
        for key in ("warn_above", "warn_below", "critical_above", "critical_below", *RELATIVE_KEYS):
            value = getattr(self, key)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise SpecError(f"Health.{key} must be a number, got {value!r}")
            if not math.isfinite(value):
                raise SpecError(f"Health.{key} must be finite, got {value!r}")
        _check_order(self.warn_above, self.critical_above, "warn_above", "critical_above", up=True)
        _check_order(self.critical_below, self.warn_below, "critical_below", "warn_below", up=True)
        lows = [v for v in (self.warn_below, self.critical_below) if v is not None]
        highs = [v for v in (self.warn_above, self.critical_above) if v is not None]
        if lows and highs and max(lows) >= min(highs):
            raise SpecError(
                f"Health thresholds contradict each other: a value below {max(lows)} "
                f"and above {min(highs)} cannot both be healthy bounds"
            )
        if self.direction not in DIRECTIONS:
            raise SpecError(f"Health.direction must be one of {DIRECTIONS}, got {self.direction!r}")
        if not 0.0 <= self.smoothing < 1.0:
            raise SpecError(f"Health.smoothing must be in [0, 1), got {self.smoothing!r}")
        if not isinstance(self.persistence, int) or self.persistence < 1:
            raise SpecError(f"Health.persistence must be an int >= 1, got {self.persistence!r}")
        if self.nonfinite not in (None, *LEVELS):
            raise SpecError(f"Health.nonfinite must be None, 'warn' or 'critical', got {self.nonfinite!r}")
        self._check_relative()
        if not (isinstance(self.hysteresis, (int, float)) and 0.0 <= self.hysteresis < 1.0):
            raise SpecError(f"Health.hysteresis must be in [0, 1), got {self.hysteresis!r}")
        if self.clear_after is not None and (not isinstance(self.clear_after, int) or self.clear_after < 1):
            raise SpecError(f"Health.clear_after must be None or an int >= 1, got {self.clear_after!r}")

    def _check_relative(self) -> None:
        """Relative thresholds judge a value against the run's own baseline (see metricreg.health)."""
        has_relative = any(getattr(self, k) is not None for k in RELATIVE_KEYS)
        if self.baseline not in BASELINES:
            raise SpecError(f"Health.baseline must be one of {BASELINES}, got {self.baseline!r}")
        if has_relative and self.baseline is None:
            raise SpecError(
                "Health: the *_frac thresholds need a baseline ('best', 'initial', 'best_after_warmup' or 'previous')"
            )
        if self.baseline in ("best", "best_after_warmup") and self.direction is None:
            raise SpecError(f"Health: baseline={self.baseline!r} needs a direction (which way is better?)")
        for key in RELATIVE_KEYS:
            value = getattr(self, key)
            if value is not None and value <= 0:
                raise SpecError(f"Health.{key} is a fraction of the baseline and must be > 0, got {value!r}")
        _check_order(self.warn_above_frac, self.critical_above_frac, "warn_above_frac", "critical_above_frac", up=True)
        _check_order(self.critical_below_frac, self.warn_below_frac, "critical_below_frac", "warn_below_frac", up=True)
        if not isinstance(self.baseline_points, int) or self.baseline_points < 1:
            raise SpecError(f"Health.baseline_points must be an int >= 1, got {self.baseline_points!r}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "category": self.category,
            "warn_above": self.warn_above,
            "warn_below": self.warn_below,
            "critical_above": self.critical_above,
            "critical_below": self.critical_below,
            "direction": self.direction,
            "description": self.description,
            "remedy": self.remedy,
            "smoothing": self.smoothing,
            "persistence": self.persistence,
            "nonfinite": self.nonfinite,
            "title": self.title,
            "baseline": self.baseline,
            **{key: getattr(self, key) for key in RELATIVE_KEYS},
            "baseline_points": self.baseline_points,
            "hysteresis": self.hysteresis,
            "clear_after": self.clear_after,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Health:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})

    @property
    def has_thresholds(self) -> bool:
        absolute = (self.warn_above, self.warn_below, self.critical_above, self.critical_below)
        return any(v is not None for v in absolute) or self.has_relative

    @property
    def has_relative(self) -> bool:
        return self.baseline is not None and any(getattr(self, k) is not None for k in RELATIVE_KEYS)


def _check_order(low: float | None, high: float | None, low_name: str, high_name: str, up: bool) -> None:
    if low is not None and high is not None and low > high:
        raise SpecError(f"Health thresholds contradict each other: {low_name}={low} must not exceed {high_name}={high}")


HealthSpec = Health | Mapping[str, Health] | None


@dataclass
class Metric:
    """A named computation, how often it runs, and how to judge its values.

    ``compute`` declares its inputs by parameter name, like a pytest fixture:
    ``def rankme(embeddings): ...`` runs on steps where ``embeddings`` was given
    to ``Monitor.step``. It returns one value or a dict of values (a family,
    written as ``<name>/<key>``). ``health`` is one ``Health`` for the metric or
    a dict of them keyed by family member. ``fan_out`` names an input that may
    be a dict (``{"context": z1, "target": z2}``): the metric then runs once per
    entry and the key joins the tag after the metric's first path component.
    ``members`` declares a family's member names; with ``reduce=`` they fix its
    slots in the cross-rank payload (default: the keys of a ``health`` table).
    """

    name: str
    compute: Callable[..., Any]
    every: Schedule | int | Callable[[int], bool] | str = 1
    kind: str = "scalar"
    health: HealthSpec = None
    reduce: str | None = None
    fan_out: str | None = None
    split: str | None = None
    description: str = ""
    members: tuple[str, ...] | None = None
    inputs: tuple[str, ...] = field(default=(), init=False)
    optional_inputs: tuple[str, ...] = field(default=(), init=False)
    schedule: Schedule = field(init=False)

    def __post_init__(self) -> None:
        check_name(self.name)
        if not callable(self.compute):
            raise SpecError(f"metric {self.name!r}: compute must be callable, got {self.compute!r}")
        try:
            self.schedule = as_schedule(self.every)
        except (TypeError, ValueError) as exc:
            raise SpecError(f"metric {self.name!r}: bad schedule {self.every!r}: {exc}") from None
        if self.kind not in KINDS:
            raise SpecError(f"metric {self.name!r}: kind must be one of {KINDS}, got {self.kind!r}")
        if self.reduce not in REDUCTIONS:
            raise SpecError(f"metric {self.name!r}: reduce must be one of {REDUCTIONS}, got {self.reduce!r}")
        if self.reduce is not None and self.kind != "scalar":
            raise SpecError(f"metric {self.name!r}: reduce= applies to scalar metrics only")
        if self.members is not None:
            if isinstance(self.members, str) or not all(isinstance(m, str) and m for m in self.members):
                raise SpecError(f"metric {self.name!r}: members= must be a tuple of names, got {self.members!r}")
            self.members = tuple(self.members)
        if not (self.health is None or isinstance(self.health, Health) or _is_health_table(self.health)):
            raise SpecError(f"metric {self.name!r}: health must be a Health or a dict of family member -> Health")
        required, optional = _parameters(self.compute, self.name)
        self.inputs = required
        self.optional_inputs = optional
        if self.fan_out is not None and self.fan_out not in required + optional:
            raise SpecError(
                f"metric {self.name!r}: fan_out={self.fan_out!r} is not a parameter of its compute function"
            )

    def health_for(self, member: str | None) -> Health | None:
        """The Health that judges one family member (or the single value)."""
        if self.health is None or isinstance(self.health, Health):
            return self.health
        return member_entry(self.health, member)

    @property
    def categories(self) -> tuple[str, ...]:
        if self.health is None:
            return ()
        if isinstance(self.health, Health):
            return (self.health.category,)
        return tuple(dict.fromkeys(h.category for h in self.health.values()))


def member_entry(table: Mapping[str, Any], member: str | None) -> Any:
    """A health table's entry for one family member: its own, else ``"*/<last part>"`` (members
    whose first part comes from the data, e.g. ``text_vs_audio/margin``), else the ``""`` entry.

    The one lookup for declared tables (:meth:`Metric.health_for`) and a run's recorded manifest.
    """
    found = table.get(member or "")
    if found is None and member and "/" in member:
        found = table.get("*/" + member.rsplit("/", 1)[1])
    return found or table.get("")


def _is_health_table(value: object) -> bool:
    return isinstance(value, Mapping) and all(isinstance(k, str) and isinstance(v, Health) for k, v in value.items())


def _parameters(fn: Callable[..., Any], name: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Split a compute function's parameters into required and optional inputs."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        raise SpecError(f"metric {name!r}: cannot read the signature of {fn!r}") from None
    required: list[str] = []
    optional: list[str] = []
    for p in sig.parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            raise SpecError(f"metric {name!r}: compute may not take *args or **kwargs; name its inputs")
        if p.kind is p.POSITIONAL_ONLY:
            raise SpecError(f"metric {name!r}: compute parameters must be nameable (no positional-only)")
        (optional if p.default is not p.empty else required).append(p.name)
    return tuple(required), tuple(optional)
