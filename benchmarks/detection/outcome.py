"""Is an injected fault broken *by outcome*? The third ground-truth kind, "stressed".

Some injections are faults by construction but not by outcome: BYOL's cosine loss
cannot see the weights' scale, so after Adam's learning rate ×10 the weights grow, the
effective step shrinks again and the k-NN probe ends inside the healthy seeds' range.
Demanding a critical alert there would train the rules to cry wolf. So a scenario may
carry an :class:`OutcomeCheck`: each of its runs is **broken** (a detection is
required) only when its recorded evidence is worse than its healthy twin's seeds by
more than a stated margin, and **stressed** otherwise (no detection required, a
critical alert counts as a false alarm, warns after the onset are reported apart).
The decision is made here, from the ``truth.json`` evidence, never by hand.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

STRESSED = "stressed"


@dataclass(frozen=True)
class OutcomeCheck:
    """Broken by outcome iff ``evidence[key]`` < (worst value over ``reference``'s seeds) − ``margin``.

    ``reference`` is the healthy scenario the run is a twin of (same loop and seeds up to
    the injection). The default, k-NN accuracy more than 0.05 below the lowest healthy
    seed, is 2.5× the spread of the healthy BYOL seeds (0.920–0.938).
    """

    reference: str
    key: str = "knn_accuracy"
    margin: float = 0.05

    def __post_init__(self) -> None:
        if not self.reference:
            raise ValueError("OutcomeCheck.reference: name the healthy twin scenario")
        if not self.margin >= 0:
            raise ValueError(f"OutcomeCheck.margin must be >= 0, got {self.margin!r}")

    def floor(self, healthy: Iterable[float]) -> float:
        """The evidence value below which a run is broken by outcome."""
        values = [float(v) for v in healthy]
        if not values:
            raise ValueError(f"no {self.key!r} evidence from healthy {self.reference!r} runs")
        return min(values) - self.margin

    def describe(self) -> str:
        return f"{self.key} < min over healthy {self.reference!r} seeds − {self.margin:g}"


class _Scored(Protocol):
    scenario: str
    category: str | None
    evidence: dict[str, Any]
    error: str | None
    stressed: bool
    outcome: dict[str, Any]


def resolve_outcomes(scores: Sequence[_Scored], checks: dict[str, OutcomeCheck]) -> None:
    """Mark each run whose scenario has a check as stressed (or not), in place, from the judged runs' evidence.

    The healthy twin's runs must be among ``scores`` (judge both log directories at
    once); without them the run cannot be decided and is marked as an error.
    """
    for s in scores:
        check = checks.get(s.scenario)
        if check is None or s.category is None or s.error:
            continue
        healthy = [
            r.evidence[check.key]
            for r in scores
            if r.scenario == check.reference
            and r.category is None
            and not r.error
            and _number(r.evidence.get(check.key))
        ]
        value = s.evidence.get(check.key)
        if not healthy:
            s.error = (
                f"outcome undecided: no healthy {check.reference!r} runs judged alongside (pass their --logdir too)"
            )
            continue
        if not _number(value):
            s.error = f"outcome undecided: the run recorded no {check.key!r} evidence"
            continue
        floor = check.floor(healthy)
        broken = float(value) < floor
        s.stressed = not broken
        s.outcome = {
            "rule": check.describe(),
            "value": float(value),
            "healthy_min": min(float(v) for v in healthy),
            "floor": floor,
            "kind": "broken" if broken else STRESSED,
        }


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v == v
