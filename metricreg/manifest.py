"""The run manifest: what metrics a run has and how to judge them.

Written by the Monitor as a JSON string tensor under the plugin name
``metricreg_health`` (its presence turns the Health tab on), read back by the
TensorBoard plugin and the CLI. Only the first summary metadata per tag
survives in TensorBoard, so everything that can change lives in the tensor
value and readers take the latest one.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from metricreg.spec import Health

PLUGIN_NAME = "metricreg_health"
MANIFEST_TAG = "_metricreg/manifest"
ERRORS_TAG = "_metricreg/errors"
SCHEMA_VERSION = 1
PLUGIN_CONTENT = json.dumps({"schema": SCHEMA_VERSION}).encode()

# Section order and titles in the Health tab; any other category follows, sorted.
KNOWN_CATEGORIES: dict[str, str] = {
    "collapse": "Representation collapse",
    "ema": "EMA teacher / student",
    "generalization": "Generalization gap",
    "stability": "Stability",
    "optimization": "Optimization",
    "prediction": "Prediction quality",
    "performance": "Performance",
    "system": "System",
    "metricreg": "Metric errors",
    "other": "Other",
}


def category_title(name: str) -> str:
    return KNOWN_CATEGORIES.get(name) or name.replace("_", " ").replace("-", " ").capitalize()


def category_order(names: Iterable[str]) -> list[str]:
    known = list(KNOWN_CATEGORIES)
    names = set(names)
    first = [c for c in known if c in names and c not in ("other", "metricreg")]
    rest = sorted(n for n in names if n not in KNOWN_CATEGORIES)
    tail = [c for c in ("other",) if c in names]
    return first + rest + tail


@dataclass(frozen=True)
class SeriesInfo:
    """How one written tag relates to the metric that produced it."""

    tag: str
    metric: str | None
    member: str | None
    key: str | None
    split: str | None
    health: Health | None
    plugin: str | None = None
    description: str = ""

    @property
    def category(self) -> str:
        return self.health.category if self.health else "other"


# Conventional tags that earn health rules even without a manifest (plain SummaryWriter runs).
# Calibration (docs/metrics.md): on healthy classifiers that interpolate their training set the
# eval loss still rises 15-40% above its best from over-confidence while accuracy holds, and
# the relative gap divides by a training loss near 0; neither is judged for classifiers. The
# judged signals are the absolute gap of a [0, 1] score (every healthy run <= 0.05, 100-sample
# overfits 0.09-0.16) and, for runs without such a score (regression, reconstruction), GL.
_REMEDY_GAP = (
    "The model fits the training data much better than held-out data: add regularization "
    "(weight decay, dropout, augmentation), get more data, or stop earlier (keep the best checkpoint)."
)
CONVENTIONAL: dict[str, Health] = {
    "gap/*_relative": Health(
        category="generalization",
        description="Relative generalization gap: (eval - train) / |train| for losses, "
        "(train - eval) / |train| for higher-is-better metrics. Informational: it explodes when "
        "the training loss approaches 0, as it does for any classifier that fits its training set.",
        remedy=_REMEDY_GAP,
    ),
    "gap/*_gl": Health(
        category="generalization",
        warn_above=5.0,
        critical_above=10.0,
        persistence=3,
        direction="lower_is_better",
        nonfinite=None,  # undefined for a best loss <= 0; a NaN loss is a stability alert
        description="Prechelt's generalization loss GL = 100 * (E_val / min E_val so far - 1): how far "
        "the eval loss has risen above its best. Written for runs without a classification score "
        "(classifiers' eval loss rises from over-confidence alone); critical above 10% for 3 evals.",
        remedy="Validation loss keeps rising above its best value while training continues: the model "
        "overfits. Stop early at the best checkpoint, or add regularization or data.",
    ),
    "gap/*": Health(
        category="generalization",
        description="Generalization gap: eval metric minus the training mean since the previous eval "
        "(signed so that positive means worse on held-out data).",
    ),
}
SCORE_GAP = Health(
    category="generalization",
    critical_above=0.08,
    persistence=3,
    direction="lower_is_better",
    description="Generalization gap of a classification score in [0, 1] (training mean since the previous "
    "eval minus the eval value): comparable across tasks. Critical above 0.08 for 3 evals (healthy "
    "calibration runs stay below 0.05, including classifiers that interpolate their training set).",
    remedy=_REMEDY_GAP,
)


def conventional_health(tag: str) -> Health | None:
    from metricreg.directions import is_fraction_score

    if tag.startswith("gap/") and not tag.endswith(("_relative", "_gl")) and is_fraction_score(tag.rsplit("/", 1)[-1]):
        return SCORE_GAP
    for pattern, health in CONVENTIONAL.items():
        if fnmatch.fnmatchcase(tag, pattern):
            return health
    return None


class Manifest:
    """Parsed manifest with tag lookup; an empty one for runs that have none."""

    def __init__(self, data: Mapping[str, Any] | None = None) -> None:
        data = dict(data or {})
        self.data = data
        self.present = bool(data)
        self.metrics: dict[str, dict[str, Any]] = {m["name"]: m for m in data.get("metrics", [])}
        self.series: dict[str, dict[str, Any]] = dict(data.get("series", {}))
        self._health_cache: dict[tuple[str, str], Health | None] = {}

    @classmethod
    def from_json(cls, raw: bytes | str) -> Manifest:
        if isinstance(raw, bytes):
            raw = raw.decode("utf-8")
        data = json.loads(raw)
        if not isinstance(data, dict) or int(data.get("version", 0)) > SCHEMA_VERSION:
            raise ValueError("unsupported metricreg manifest (written by a newer metricreg?)")
        return cls(data)

    def to_json(self) -> str:
        return json.dumps(self.data, sort_keys=True, allow_nan=False)

    def _health(self, metric: str, member: str | None) -> Health | None:
        key = (metric, member or "")
        if key not in self._health_cache:
            entry = self.metrics.get(metric) or {}
            table = entry.get("health") or {}
            raw = table.get(member or "") or table.get("")
            if raw is None and member and len(table) == 1 and "" in table:
                raw = table[""]
            self._health_cache[key] = Health.from_dict(raw) if raw else None
        return self._health_cache[key]

    def lookup(self, tag: str) -> SeriesInfo:
        """Metric, member and health rule for a tag (falls back to conventions)."""
        known = self.series.get(tag)
        if known is not None and known.get("metric"):
            metric = known["metric"]
            entry = self.metrics.get(metric, {})
            return SeriesInfo(
                tag=tag,
                metric=metric,
                member=known.get("member"),
                key=known.get("key"),
                split=known.get("split"),
                health=self._health(metric, known.get("member")) or conventional_health(tag),
                plugin=entry.get("plugin"),
                description=entry.get("description", ""),
            )
        split, _, rest = tag.partition("/")
        for name in sorted(self.metrics, key=len, reverse=True):
            if rest == name or rest.startswith(name + "/"):
                member = rest[len(name) + 1 :] or None
                entry = self.metrics[name]
                return SeriesInfo(
                    tag,
                    name,
                    member,
                    None,
                    split,
                    self._health(name, member),
                    entry.get("plugin"),
                    entry.get("description", ""),
                )
        return SeriesInfo(tag, None, None, None, split or None, conventional_health(tag))


def build_manifest(metrics: Iterable[Mapping[str, Any]], series: Mapping[str, Mapping[str, Any]], **extra: Any) -> dict:
    from metricreg import __version__

    return {
        "version": SCHEMA_VERSION,
        "metricreg_version": __version__,
        "metrics": list(metrics),
        "series": dict(series),
        **extra,
    }
