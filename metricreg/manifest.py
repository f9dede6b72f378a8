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
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from metricreg.directions import is_fraction_score
from metricreg.spec import Health, member_entry

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
    """A section title: the known one, else the name made readable (never blank: ``__proto__`` stays)."""
    known = KNOWN_CATEGORIES.get(name)
    if known:
        return known
    words = name.replace("_", " ").replace("-", " ")
    if words != words.strip() or not words.strip():
        return name  # leading/trailing separators carry meaning ("__proto__"): show the name as written
    return words.capitalize()


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
# A PSNR gap is in dB whatever the data (10·log10 of the MSE ratio), so one threshold fits every
# reconstruction, in runs metricreg wrote and in plain logdirs: healthy benchmark autoencoders
# stay below 1.7 dB (held out, 3,000 steps with a wider bottleneck: 2.4-2.8 dB), 64-image
# overfits pass 6.6 dB at their best-validation eval
# (docs/metrics.md, "Detection benchmark"). The raw gap grows slowly in healthy high-capacity
# models too, so persistence 3 and a 5 dB margin, not a tighter threshold.
PSNR_GAP = Health(
    category="generalization",
    critical_above=5.0,
    persistence=3,
    direction="lower_is_better",
    nonfinite=None,
    title="PSNR gap (dB)",
    description="Training PSNR (mean since the previous eval) minus eval PSNR, in dB: a ratio of MSEs, so "
    "comparable across data. Critical above 5 dB (the held-out MSE over 3× the training MSE) for 3 evals.",
    remedy=_REMEDY_GAP,
)


CONVENTIONAL: dict[str, Health] = {
    "gap/psnr": PSNR_GAP,
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
    "eval minus the eval value), counted while the eval loss is above its best (0 while held-out loss "
    "still improves): comparable across tasks. Critical above 0.08 for 3 evals (healthy calibration "
    "runs stay below 0.065, including classifiers that interpolate their training set).",
    remedy=_REMEDY_GAP,
)


def conventional_health(tag: str) -> Health | None:
    if tag.startswith("gap/") and tag.endswith("_overfit") and is_fraction_score(tag.rsplit("/", 1)[-1][:-8]):
        return SCORE_GAP
    for pattern, health in CONVENTIONAL.items():
        if fnmatch.fnmatchcase(tag, pattern):
            return health
    return None


class ManifestError(ValueError):
    """A manifest or errors record that cannot be judged; the message names the culprit."""


_TEXT_FIELDS = ("description", "remedy", "title", "direction", "nonfinite")
_MAX_NAME = 1000  # longer metric/tag names are not a real run's; refuse rather than render them


def _text(value: Any, what: str, optional: bool = True) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise ManifestError(f"{what} must be a string, got {_short(value)}")
    return value


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def parse_health(raw: Any, where: str) -> Health:
    """A manifest's health table entry as a :class:`Health`, or a ManifestError naming ``where``."""
    if not isinstance(raw, Mapping):
        raise ManifestError(f"{where}: health must be an object, got {_short(raw)}")
    for key in _TEXT_FIELDS:
        if raw.get(key) is not None and not isinstance(raw.get(key), str):
            raise ManifestError(f"{where}: health {key} must be a string, got {_short(raw[key])}")
    if not isinstance(raw.get("category", "other"), str):
        raise ManifestError(f"{where}: health category must be a string, got {_short(raw['category'])}")
    try:
        return Health.from_dict(raw)
    except (ValueError, TypeError) as exc:
        raise ManifestError(f"{where}: {exc}") from None


def _check_manifest(data: Mapping[str, Any]) -> None:
    """Raise ManifestError for anything :class:`Manifest` could trip over later."""
    metrics = data.get("metrics", [])
    if not isinstance(metrics, list):
        raise ManifestError(f"manifest 'metrics' must be a list, got {_short(metrics)}")
    for i, entry in enumerate(metrics):
        if not isinstance(entry, Mapping):
            raise ManifestError(f"manifest metrics[{i}] must be an object, got {_short(entry)}")
        name = entry.get("name")
        if not isinstance(name, str) or not name or len(name) > _MAX_NAME:
            raise ManifestError(f"manifest metrics[{i}] needs a string 'name', got {_short(name)}")
        for key in ("plugin", "description"):
            _text(entry.get(key), f"metric {name!r}: {key}")
        table = entry.get("health") or {}
        if not isinstance(table, Mapping):
            raise ManifestError(f"metric {name!r}: health must be an object, got {_short(table)}")
        for member, raw in table.items():
            if raw:
                parse_health(raw, f"metric {name!r}" + (f" member {member!r}" if member else ""))
    series = data.get("series", {})
    if not isinstance(series, Mapping):
        raise ManifestError(f"manifest 'series' must be an object, got {_short(series)}")
    for tag, entry in series.items():
        if not isinstance(entry, Mapping):
            raise ManifestError(f"manifest series {_short(tag)} must be an object, got {_short(entry)}")
        for key in ("metric", "member", "key", "split"):
            _text(entry.get(key), f"series {_short(tag)}: {key}")


def describe_error(exc: BaseException) -> str:
    """An exception as a reason: our own messages as they are, others with their type."""
    return str(exc) if isinstance(exc, ManifestError) else f"{type(exc).__name__}: {exc}"


def parse_errors(data: Any) -> dict[str, dict[str, Any]]:
    """A metric-errors record (``{metric: {count, consecutive, ...}}``), checked; ManifestError otherwise."""
    if not isinstance(data, Mapping):
        raise ManifestError(f"metric errors record must be a JSON object, got {_short(data)}")
    out: dict[str, dict[str, Any]] = {}
    for metric, info in data.items():
        if not isinstance(info, Mapping):
            info = {"last_message": str(info)}
        for key in ("count", "consecutive", "first_step", "last_step"):
            value = info.get(key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
                raise ManifestError(f"metric errors of {_short(metric)}: {key} must be a number, got {_short(value)}")
            if isinstance(value, float) and not math.isfinite(value):
                raise ManifestError(f"metric errors of {_short(metric)}: {key} must be finite, got {value!r}")
        for key in ("plugin", "last_message"):
            if info.get(key) is not None and not isinstance(info.get(key), str):
                raise ManifestError(
                    f"metric errors of {_short(metric)}: {key} must be a string, got {_short(info.get(key))}"
                )
        out[str(metric)] = dict(info)
    return out


class Manifest:
    """Parsed manifest with tag lookup; an empty one for runs that have none."""

    def __init__(self, data: Mapping[str, Any] | None = None) -> None:
        data = dict(data or {})
        _check_manifest(data)
        self.data = data
        self.present = bool(data)
        self.metrics: dict[str, dict[str, Any]] = {m["name"]: m for m in data.get("metrics", [])}
        self.series: dict[str, dict[str, Any]] = dict(data.get("series", {}))
        self._health_cache: dict[tuple[str, str], Health | None] = {}

    @classmethod
    def from_json(cls, raw: bytes | str) -> Manifest:
        """Parse a manifest; ValueError (ManifestError or JSONDecodeError) says what is wrong."""
        if isinstance(raw, bytes):
            raw = raw.decode("utf-8")
        data = json.loads(raw)
        if not isinstance(data, dict):
            raise ManifestError(f"manifest must be a JSON object, got {_short(data)}")
        version = data.get("version", 0)
        if isinstance(version, bool) or not isinstance(version, (int, float)):
            raise ManifestError(f"manifest version must be a number, got {_short(version)}")
        if version > SCHEMA_VERSION:
            raise ManifestError(f"manifest version {version} is newer than this metricreg reads ({SCHEMA_VERSION})")
        return cls(data)

    def to_json(self) -> str:
        return json.dumps(self.data, sort_keys=True, allow_nan=False)

    def _health(self, metric: str, member: str | None) -> Health | None:
        key = (metric, member or "")
        if key not in self._health_cache:
            entry = self.metrics.get(metric) or {}
            table = entry.get("health") or {}
            raw = member_entry(table, member)
            self._health_cache[key] = parse_health(raw, f"metric {metric!r}") if raw else None
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
