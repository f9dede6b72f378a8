"""Judging a whole run: the verdict the Health tab and ``metricreg report`` show.

Pure functions over plain data (no TensorBoard imports): a run's manifest, its
scalar series ``{tag: (steps, values, wall_times)}`` and its metric errors go
in; a :class:`RunVerdict` comes out, with the run's status, a status per health
category, one MetricSeries dict per tag, the alerts and the errors, shaped as
the JSON contract in docs/ARCHITECTURE.md ("Health tab routes").

Every threshold decision goes through :mod:`metricreg.health` (the same rules
the live Monitor applies), so the tab, the CLI and the alerts always agree.

Runs without a manifest (a plain ``SummaryWriter``) get a generalization-gap
section derived from conventional tag pairs ``train/X`` + ``<eval split>/X``:

* ``gap/X``: eval value minus the mean of the training points since the
  previous eval point, signed so that positive means worse on held-out data
  (``train - eval`` for higher-is-better metrics such as accuracy);
* ``gap/X_relative``: that gap divided by ``|train mean|``;
* ``gap/X_gl``: Prechelt's generalization loss ``100 * (E / min E so far - 1)``
  of the eval series, for lower-is-better metrics (losses, errors), in runs without a
  classification score (see metricreg.builtins.generalization for why);

each judged by :func:`metricreg.manifest.conventional_health`. A second eval
split ``test`` next to ``val`` gets ``gap/test/X`` and so on.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from metricreg.directions import direction_of, is_fraction_score, is_loss_like
from metricreg.health import _RANK, CRITICAL, OK, Alert, evaluate_series, level_of, worst
from metricreg.manifest import Manifest, SeriesInfo, category_order, category_title, conventional_health
from metricreg.mapping import TagMapping
from metricreg.spec import Health

INTERNAL_PREFIX = "_metricreg/"
DROPPED_TAG = "_metricreg/dropped"
NONE = "none"
UNREADABLE = "unreadable"  # a run whose manifest, errors record or series could not be judged
MAX_REASON = 500  # characters of an unreadable run's reason (inputs may hold huge strings)

SeriesData = tuple[Sequence[int], Sequence[float], Sequence[float]]

# Eval splits, in order of preference for the unprefixed ``gap/X`` tags.
EVAL_SPLITS = ("val", "validation", "valid", "eval", "evaluation", "dev", "holdout", "heldout", "test")
_EVAL_PREFIXES = ("val", "eval", "test", "dev", "holdout", "heldout")


# --- series helpers ----------------------------------------------------------------------------


def as_arrays(data: SeriesData) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(steps int64, values float64, wall_times float64); wall times may be missing (NaN)."""
    steps = np.asarray(data[0], dtype=np.int64).reshape(-1)
    values = np.asarray(data[1], dtype=np.float64).reshape(-1)
    walls = np.asarray(data[2], dtype=np.float64).reshape(-1) if len(data) > 2 and data[2] is not None else None
    if walls is None or walls.shape != steps.shape:
        walls = np.full(steps.shape, np.nan)
    if values.shape != steps.shape:
        raise ValueError(f"steps and values differ in length ({steps.size} vs {values.size})")
    return steps, values, walls


def downsample_indices(values: np.ndarray, n: int) -> np.ndarray:
    """Indices of at most ``n`` points that keep a chart's shape.

    The first and last points are always kept; the rest is cut into buckets and
    each bucket keeps its minimum, its maximum and its first non-finite point,
    so spikes and NaN/Inf never vanish from a downsampled chart.
    """
    size = int(values.size)
    if n <= 0 or size <= n:
        return np.arange(size)
    if n < 5:
        return np.unique(np.linspace(0, size - 1, max(n, 2)).round().astype(np.int64))
    buckets = max(1, (n - 2) // 3)
    interior = values[1 : size - 1]
    width = -(-interior.size // buckets)
    padded = np.full(buckets * width, np.nan)
    padded[: interior.size] = interior
    grid = padded.reshape(buckets, width)
    finite = np.isfinite(grid)
    valid = np.zeros(buckets * width, dtype=bool)
    valid[: interior.size] = True
    valid = valid.reshape(buckets, width)
    lows = np.where(finite, grid, np.inf).argmin(axis=1)
    highs = np.where(finite, grid, -np.inf).argmax(axis=1)
    bad = ~finite & valid
    has_bad = bad.any(axis=1)
    first_bad = bad.argmax(axis=1)
    base = 1 + np.arange(buckets) * width
    picks = [np.array([0, size - 1]), base + lows, base + highs, (base + first_bad)[has_bad]]
    idx = np.unique(np.concatenate(picks))
    return idx[idx < size]


def _direction_of(name: str) -> str:
    return direction_of(name.rsplit("/", 1)[-1])


def _is_eval_split(split: str) -> bool:
    return split in EVAL_SPLITS or split.startswith(_EVAL_PREFIXES)


@dataclass(frozen=True)
class GapPair:
    """A conventional train/eval pair and the gap tags derived from it."""

    name: str  # "loss", "collapse/effective_rank"
    train_tag: str
    eval_tag: str
    split: str
    prefix: str  # "gap/loss" or "gap/test/loss"
    direction: str


# Plain layouts of other loggers, as (train tag, eval tag) name patterns around the metric name.
# PyTorch Lightning's TensorBoardLogger: ``train_loss``/``val_loss`` (``train_loss_step`` and
# ``train_loss_epoch`` when a metric is logged both ways); Keras' TensorBoard callback with
# everything in one run: ``epoch_loss``/``epoch_val_loss``. Hugging Face Trainer writes
# ``train/loss``/``eval/loss``, the slash layout ``train/X`` + ``<eval split>/X``.
_UNDERSCORE_TRAIN = ("train_{}", "train_{}_step", "train_{}_epoch")
_UNDERSCORE_EVAL = ("val", "valid", "validation", "eval", "test", "dev")


def _slash_pairs(tags: set[str]) -> list[tuple[str, str, str, str]]:
    by_name: dict[str, list[str]] = {}
    for tag in tags:
        split, sep, name = tag.partition("/")
        if not sep or not name or split == "train" or split == "gap" or split.startswith("_"):
            continue
        if name.startswith("_") or not _is_eval_split(split) or f"train/{name}" not in tags:
            continue
        by_name.setdefault(name, []).append(split)
    out = []
    for name in sorted(by_name):
        splits = sorted(by_name[name], key=lambda s: (EVAL_SPLITS.index(s) if s in EVAL_SPLITS else 99, s))
        out.extend((name, f"train/{name}", f"{split}/{name}", split) for split in splits)
    return out


def _plain_pairs(tags: set[str]) -> list[tuple[str, str, str, str]]:
    """(name, train tag, eval tag, split) of Lightning- and Keras-style tags (no '/' in them)."""
    out = []
    for tag in sorted(tags):
        if "/" in tag:
            continue
        if tag.startswith("epoch_val_") and len(tag) > 10:  # Keras
            name = tag[len("epoch_val_") :]
            if f"epoch_{name}" in tags:
                out.append((name, f"epoch_{name}", tag, "val"))
            continue
        split, sep, name = tag.partition("_")
        if not sep or not name or split not in _UNDERSCORE_EVAL:
            continue
        for pattern in _UNDERSCORE_TRAIN:  # Lightning
            if pattern.format(name) in tags:
                out.append((name, pattern.format(name), tag, split))
                break
    return out


def gap_pairs(tags: Iterable[str], mapping: TagMapping | None = None) -> list[GapPair]:
    """Train/eval pairs among some tags: ``train/X`` + ``<eval split>/X``, the Lightning and
    Keras layouts (``train_X``/``val_X``, ``epoch_X``/``epoch_val_X``) and a mapping's ``[[gap]]``."""
    tags = set(tags)
    found: list[tuple[str, str, str, str]] = []
    if mapping is not None:
        found.extend((g.name, g.train, g.eval, "val") for g in mapping.gaps if g.train in tags and g.eval in tags)
    found.extend(_slash_pairs(tags))
    found.extend(_plain_pairs(tags))
    pairs: list[GapPair] = []
    prefixes: set[str] = set()
    seen: set[tuple[str, str]] = set()
    for name, train_tag, eval_tag, split in found:
        if (train_tag, eval_tag) in seen:
            continue
        prefix = f"gap/{name}"
        if prefix in prefixes:
            prefix = f"gap/{split}/{name}"
        if prefix in prefixes:
            continue  # the same metric in two layouts: the first one judged is enough
        seen.add((train_tag, eval_tag))
        prefixes.add(prefix)
        pairs.append(GapPair(name, train_tag, eval_tag, split, prefix, _direction_of(name)))
    return pairs


def keras_siblings(runs: Iterable[str]) -> dict[str, str]:
    """``{train run: validation run}`` for Keras' default layout: ``<dir>/train`` + ``<dir>/validation``.

    The Keras TensorBoard callback writes ``epoch_loss`` into both run directories; the train
    run then borrows the validation series as ``epoch_val_X`` (see :func:`keras_eval_tag`), which
    is the one-run Keras layout the gap rules already pair.
    """
    runs = set(runs)
    out = {}
    for run in runs:
        if run == "train" or run.endswith("/train"):
            sibling = run[: -len("train")] + "validation"
            if sibling in runs:
                out[run] = sibling
    return out


def keras_eval_tag(tag: str) -> str | None:
    """The name a Keras validation-run tag takes in its train run: ``epoch_loss`` -> ``epoch_val_loss``."""
    if tag.startswith("epoch_") and not tag.startswith("epoch_val_") and len(tag) > len("epoch_"):
        return "epoch_val_" + tag[len("epoch_") :]
    return None


def plain_tags(tags: Iterable[str], mapping: TagMapping | None = None) -> set[str]:
    """The tags a run without a manifest is judged on: conventional, mapped and paired ones."""
    tags = list(tags)
    keep = {t for t in tags if conventional_health(t) is not None}
    if mapping:
        keep.update(t for t in tags if mapping.lookup(t) is not None)
    for pair in gap_pairs(tags, mapping):
        keep.update((pair.train_tag, pair.eval_tag))
    return keep


def has_conventional_tags(tags: Iterable[str], mapping: TagMapping | None = None) -> bool:
    """Whether a run without a manifest still has something for the Health tab."""
    return bool(plain_tags(tags, mapping))


def _rising_at(steps: Sequence[int], loss: tuple[np.ndarray, np.ndarray, np.ndarray]) -> np.ndarray:
    """1.0 where the eval loss (its latest point at or before each step) is above its best before that point."""
    l_steps, l_values = loss[0], loss[1]
    order = np.argsort(l_steps, kind="stable")
    l_steps, l_values = l_steps[order], l_values[order]
    out = np.zeros(len(steps))
    for i, step in enumerate(steps):
        j = int(np.searchsorted(l_steps, step, side="right")) - 1
        prior = l_values[:j][np.isfinite(l_values[:j])] if j > 0 else l_values[:0]
        if j >= 0 and prior.size and l_values[j] > prior.min():
            out[i] = 1.0
    return out


def generalization_gaps(
    pair: GapPair,
    train: tuple[np.ndarray, np.ndarray, np.ndarray],
    evals: tuple[np.ndarray, np.ndarray, np.ndarray],
    with_gl: bool = True,
    eval_loss: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The gap series of one pair: ``{tag: (steps, values, wall_times)}``.

    ``with_gl=False`` (a run with a classification score) leaves GL out, as the live gap
    metric does: a classifier's eval loss rises from over-confidence alone. For a
    classification score, ``_overfit`` is its gap while ``eval_loss`` (the same split's eval
    loss) is above its best, else 0; the gap itself without an eval loss.
    """
    t_steps, t_values, _ = train
    e_steps, e_values, e_walls = evals
    order = np.argsort(t_steps, kind="stable")
    t_steps, t_values = t_steps[order], t_values[order]
    order = np.argsort(e_steps, kind="stable")
    e_steps, e_values, e_walls = e_steps[order], e_values[order], e_walls[order]
    higher = pair.direction == "higher_is_better"
    steps: list[int] = []
    walls: list[float] = []
    gaps: list[float] = []
    rel_steps: list[int] = []
    rel_walls: list[float] = []
    rels: list[float] = []
    previous: float = -math.inf
    for step, value, wall in zip(e_steps.tolist(), e_values.tolist(), e_walls.tolist(), strict=True):
        lo = int(np.searchsorted(t_steps, previous, side="right")) if previous > -math.inf else 0
        hi = int(np.searchsorted(t_steps, step, side="right"))
        previous = step
        if hi > lo:
            mean = float(np.mean(t_values[lo:hi]))
        elif hi > 0:
            mean = float(t_values[hi - 1])
        else:
            continue  # no training point yet: no gap
        gap = (mean - value) if higher else (value - mean)
        steps.append(step)
        walls.append(wall)
        gaps.append(gap)
        if not (math.isfinite(mean) and math.isfinite(value)):
            rel_steps.append(step)
            rel_walls.append(wall)
            rels.append(math.nan)
        elif abs(mean) > 1e-12:
            rel_steps.append(step)
            rel_walls.append(wall)
            rels.append(gap / abs(mean))
    out = {
        pair.prefix: (np.array(steps, dtype=np.int64), np.array(gaps), np.array(walls)),
        pair.prefix + "_relative": (np.array(rel_steps, dtype=np.int64), np.array(rels), np.array(rel_walls)),
    }
    if higher and is_fraction_score(pair.name.rsplit("/", 1)[-1]):
        rising = _rising_at(steps, eval_loss) if eval_loss is not None else np.ones(len(steps))
        out[pair.prefix + "_overfit"] = (np.array(steps, dtype=np.int64), np.array(gaps) * rising, np.array(walls))
    if not higher and with_gl:
        gl: list[float] = []
        gl_steps: list[int] = []
        gl_walls: list[float] = []
        best = math.inf
        for step, value, wall in zip(e_steps.tolist(), e_values.tolist(), e_walls.tolist(), strict=True):
            if math.isfinite(value):
                best = min(best, value)
                if best <= 0:
                    continue
                gl.append(100.0 * (value / best - 1.0))
            elif best <= 0:
                continue
            else:
                gl.append(math.nan)
            gl_steps.append(step)
            gl_walls.append(wall)
        if gl and best > 0:
            out[pair.prefix + "_gl"] = (np.array(gl_steps, dtype=np.int64), np.array(gl), np.array(gl_walls))
    return {tag: data for tag, data in out.items() if data[0].size}


# --- judging -----------------------------------------------------------------------------------


def judge_series(
    tag: str,
    steps: np.ndarray,
    values: np.ndarray,
    health: Health,
    smoothing: float | None = None,
    **alert_fields: Any,
) -> tuple[str, list[Alert]]:
    """(status, alerts) of one series: :func:`metricreg.health.evaluate_series`, with a shortcut.

    The shortcut is exact: TensorBoard's debiased EMA is a convex combination of
    the finite raw values, so a smoothed point never leaves [min, max] of the
    raw ones. When every value is finite and both ends of that range are OK,
    every smoothed point is OK and no alert can fire. A small margin keeps
    rounding at a threshold on the slow, exact path.
    """
    if values.size == 0:
        return NONE, []
    if not health.has_relative and np.isfinite(values).all():
        lo, hi = float(values.min()), float(values.max())
        margin = 1e-9 * (abs(lo) + abs(hi) + 1.0)
        if level_of(lo - margin, health)[0] == OK and level_of(hi + margin, health)[0] == OK:
            return OK, []
    verdict = evaluate_series(tag, steps.tolist(), values.tolist(), health, smoothing, **alert_fields)
    return verdict.status, verdict.alerts


def _title(info: SeriesInfo, health: Health | None) -> str:
    if health is not None and health.title:
        base = health.title
    elif info.metric:
        base = info.metric.rsplit("/", 1)[-1]
        if info.member:
            base += "/" + info.member
    else:
        base = info.tag.partition("/")[2] or info.tag
    extras = [x for x in (info.key, info.split if info.split not in (None, "train", "gap") else None) if x]
    return f"{base} ({', '.join(extras)})" if extras else base


def _thresholds(health: Health | None) -> dict[str, float | None]:
    keys = ("warn_above", "warn_below", "critical_above", "critical_below")
    return {k: (getattr(health, k) if health is not None else None) for k in keys}


def _clean(value: float | None) -> float | None:
    return None if value is None else float(value)


@dataclass
class MetricVerdict:
    """One series in the tab: its description, rule, status and full-resolution data."""

    tag: str
    info: SeriesInfo
    health: Health | None
    category: str
    status: str
    steps: np.ndarray
    values: np.ndarray
    wall_times: np.ndarray
    smoothing: float | None
    alerts: list[Alert]
    derived_from: tuple[str, ...] = ()
    order: tuple = ()
    title: str | None = None

    @property
    def last_step(self) -> int | None:
        return int(self.steps[-1]) if self.steps.size else None

    @property
    def last_value(self) -> float | None:
        return float(self.values[-1]) if self.values.size else None

    def to_dict(self, downsample: int | None = None) -> dict[str, Any]:
        health, info = self.health, self.info
        steps, values, walls = self.steps, self.values, self.wall_times
        if downsample and steps.size > downsample:
            idx = downsample_indices(values, downsample)
            steps, values, walls = steps[idx], values[idx], walls[idx]
        out: dict[str, Any] = {
            "tag": self.tag,
            "metric": info.metric,
            "member": info.member,
            "key": info.key,
            "split": info.split,
            "title": self.title or _title(info, health),
            "description": (health.description if health is not None and health.description else "")
            or info.description,
            "remedy": health.remedy if health is not None else "",
            "direction": health.direction if health is not None else None,
            "smoothing": self.smoothing,
            "persistence": health.persistence if health is not None else None,
            "thresholds": _thresholds(health),
            "nonfinite": health.nonfinite if health is not None else None,
            "category": self.category,
            "status": self.status,
            "last_step": self.last_step,
            "last_value": self.last_value,
            "points": int(self.steps.size),
            "steps": steps.tolist(),
            "values": values.tolist(),
            "wall_times": [None if math.isnan(w) else w for w in walls.tolist()],
        }
        if self.derived_from:
            out["derived"] = True
            out["derived_from"] = list(self.derived_from)
        return out


@dataclass
class RunVerdict:
    """The judgement of one run (see docs/ARCHITECTURE.md for the JSON shapes)."""

    run: str
    status: str
    has_manifest: bool
    smoothing: float | None
    categories: list[tuple[str, str, list[MetricVerdict]]]  # (name, status, metrics)
    alerts: list[Alert]
    errors: list[dict[str, Any]]
    last_step: int | None
    dropped: int = 0
    derived_gaps: bool = False
    metrics: list[MetricVerdict] = field(default_factory=list)
    reason: str | None = None  # why the run is UNREADABLE

    @property
    def category_status(self) -> dict[str, str]:
        return {name: status for name, status, _ in self.categories}

    @property
    def active_alerts(self) -> list[Alert]:
        return [a for a in self.alerts if a.active]

    @property
    def worst_alert(self) -> Alert | None:
        pool = self.active_alerts
        if not pool:
            return None
        return min(pool, key=_alert_sort_key)

    def to_dict(self, downsample: int | None = None) -> dict[str, Any]:
        """The ``/run`` payload; ``downsample`` bounds the points per series."""
        return {
            "run": self.run,
            "status": self.status,
            "has_manifest": self.has_manifest,
            "smoothing": self.smoothing,
            "last_step": self.last_step,
            "dropped": self.dropped,
            "derived_gaps": self.derived_gaps,
            "categories": [
                {
                    "name": name,
                    "title": category_title(name),
                    "status": status,
                    "metrics": [m.to_dict(downsample) for m in metrics],
                }
                for name, status, metrics in self.categories
            ],
            "alerts": [a.to_dict() for a in self.alerts],
            "errors": list(self.errors),
            **({"reason": self.reason} if self.reason is not None else {}),
        }

    def summary(self) -> dict[str, Any]:
        """The ``/runs`` row of this run."""
        worst_alert = self.worst_alert
        return {
            "run": self.run,
            "status": self.status,
            "has_manifest": self.has_manifest,
            "last_step": self.last_step,
            "categories": self.category_status,
            "worst_alert": worst_alert.to_dict() if worst_alert is not None else None,
            "alert_count": len(self.active_alerts),
            "alert_total": len(self.alerts),
            "error_count": len(self.errors),
            "dropped": self.dropped,
            **({"reason": self.reason} if self.reason is not None else {}),
        }


def _alert_sort_key(alert: Alert) -> tuple:
    return (not alert.active, -_RANK.get(alert.level, 0), alert.first_step, alert.tag)


def _errors_list(run: str, errors: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    from metricreg.manifest import parse_errors

    out = []
    for metric, info in sorted(parse_errors(errors or {}).items()):
        out.append(
            {
                "run": run,
                "metric": metric,
                "plugin": info.get("plugin"),
                "count": int(info.get("count") or 0),
                "consecutive": int(info.get("consecutive") or 0),
                "last_message": str(info.get("last_message") or ""),
                "disabled": bool(info.get("disabled", False)),
                "first_step": info.get("first_step"),
                "last_step": info.get("last_step"),
            }
        )
    return out


def check_smoothing(smoothing: float | None) -> float | None:
    if smoothing is None:
        return None
    if isinstance(smoothing, bool):
        raise ValueError(f"smoothing must be a number in [0, 1), got {smoothing!r}")
    smoothing = float(smoothing)
    if not (math.isfinite(smoothing) and 0.0 <= smoothing < 1.0):
        raise ValueError(f"smoothing must be in [0, 1), got {smoothing!r}")
    return smoothing


def evaluate_run(
    run: str,
    manifest: Manifest | None,
    series: Mapping[str, SeriesData],
    errors: Mapping[str, Any] | None = None,
    smoothing: float | None = None,
    *,
    derive_gaps: bool | None = None,
    mapping: TagMapping | None = None,
) -> RunVerdict:
    """Judge every series of a run with the manifest's rules (or the conventional ones).

    Each rule is judged with its own ``Health.smoothing`` and persistence, the
    same as the live alerts; ``smoothing`` is only the display smoothing the
    caller asked for, validated and echoed back (it never changes the verdict).
    ``derive_gaps=None`` derives the
    generalization gaps only for runs without a manifest. ``mapping`` (a user's
    ``metricreg.toml``) gives rules to tags the manifest does not describe.
    """
    manifest = manifest if manifest is not None else Manifest()
    smoothing = check_smoothing(smoothing)
    if derive_gaps is None:
        derive_gaps = not manifest.present
    metric_index = {name: i for i, name in enumerate(manifest.metrics)}

    arrays: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    dropped = 0
    for tag, data in series.items():
        if tag.startswith(INTERNAL_PREFIX):
            if tag == DROPPED_TAG:
                values = np.asarray(data[1], dtype=np.float64)
                if values.size and np.isfinite(values[-1]):
                    dropped = int(values[-1])
            continue
        arrays[tag] = as_arrays(data)

    entries: list[tuple[str, SeriesInfo, str, tuple, tuple[str, ...], tuple, str | None]] = []
    pair_tags: set[str] = set()
    derived: dict[str, tuple[GapPair, tuple]] = {}
    if derive_gaps:
        pairs = gap_pairs(arrays, mapping)
        classifier = any(is_fraction_score(p.name.rsplit("/", 1)[-1]) for p in pairs) or any(
            _is_eval_split(t.partition("/")[0]) and is_fraction_score(t.rsplit("/", 1)[-1]) for t in arrays
        )
        losses = {p.split: arrays[p.eval_tag] for p in reversed(pairs) if is_loss_like(p.name.rsplit("/", 1)[-1])}
        for pair in pairs:
            pair_tags.update((pair.train_tag, pair.eval_tag))
            gaps = generalization_gaps(
                pair, arrays[pair.train_tag], arrays[pair.eval_tag], not classifier, losses.get(pair.split)
            )
            for tag, data in gaps.items():
                if tag not in arrays:  # a gap the run wrote itself wins
                    derived[tag] = (pair, data)

    for tag in sorted(arrays):
        info = manifest.lookup(tag)
        if mapping and info.metric is None:
            mapped = mapping.lookup(tag)
            if mapped is not None:
                info = replace(info, health=mapped)
        if manifest.present:
            category = info.category
        elif info.health is not None:
            category = info.health.category
        elif tag in pair_tags:
            category = "generalization"
        else:
            continue  # no manifest: only conventional tags belong to the tab
        order = (0, metric_index.get(info.metric or "", len(metric_index)), tag)
        entries.append((tag, info, category, arrays[tag], (), order, None))
    for i, (tag, (pair, data)) in enumerate(derived.items()):
        health = conventional_health(tag)
        info = SeriesInfo(tag, tag, None, None, "gap", health)
        suffix = tag[len(pair.prefix) :]
        kind = {
            "": "gap",
            "_relative": "relative gap",
            "_gl": "generalization loss (GL)",
            "_overfit": "gap while the eval loss rises",
        }[suffix]
        where = "" if pair.prefix == f"gap/{pair.name}" else f" ({pair.split})"
        title = f"{pair.name} {kind}{where}"
        entries.append((tag, info, info.category, data, (pair.train_tag, pair.eval_tag), (1, i, tag), title))

    metrics: list[MetricVerdict] = []
    alerts: list[Alert] = []
    for tag, info, category, (steps, values, walls), sources, order, title in entries:
        health = info.health
        if health is not None:
            # Each rule's own smoothing and persistence: display smoothing never changes the verdict.
            status, found = judge_series(tag, steps, values, health, None, metric=info.metric, run=run)
            if found:
                for alert in found:
                    alert.category = category
                alerts.extend(found)
        else:
            status, found = NONE, []
        effective = health.smoothing if health is not None else None
        metrics.append(
            MetricVerdict(
                tag, info, health, category, status, steps, values, walls, effective, found, sources, order, title
            )
        )

    by_category: dict[str, list[MetricVerdict]] = {}
    for m in metrics:
        by_category.setdefault(m.category, []).append(m)
    names = category_order(by_category)
    names += sorted(set(by_category) - set(names))
    categories = []
    for name in names:
        members = sorted(by_category[name], key=lambda m: m.order)
        status = worst(m.status for m in members if m.status != NONE) or NONE
        categories.append((name, status, members))
    status = worst(s for _, s, _ in categories if s != NONE) or NONE
    alerts.sort(key=_alert_sort_key)
    last_steps = [int(steps[-1]) for steps, _, _ in arrays.values() if steps.size]
    return RunVerdict(
        run=run,
        status=status,
        has_manifest=manifest.present,
        smoothing=smoothing,
        categories=categories,
        alerts=alerts,
        errors=_errors_list(run, errors),
        last_step=max(last_steps) if last_steps else None,
        dropped=dropped,
        derived_gaps=bool(derived),
        metrics=metrics,
    )


def unreadable_run(run: str, reason: str, has_manifest: bool = False) -> RunVerdict:
    """The verdict of a run that cannot be judged: no categories, no alerts, and why."""
    reason = reason if len(reason) <= MAX_REASON else reason[: MAX_REASON - 3] + "..."
    return RunVerdict(
        run=run,
        status=UNREADABLE,
        has_manifest=has_manifest,
        smoothing=None,
        categories=[],
        alerts=[],
        errors=[],
        last_step=None,
        reason=reason,
    )


def judge_run(
    run: str,
    manifest: Manifest | None,
    series: Mapping[str, SeriesData],
    errors: Mapping[str, Any] | None = None,
    problems: Sequence[str] = (),
    smoothing: float | None = None,
    *,
    has_manifest: bool | None = None,
    **kwargs: Any,
) -> RunVerdict:
    """:func:`evaluate_run` in isolation: any problem makes this one run UNREADABLE, never an exception.

    ``problems`` are reasons found while reading (an unparsable manifest or errors record); the
    first one is the run's reason. A series or record that breaks the evaluation is reported the
    same way, so one malformed run never takes the other runs (or the whole tab) down.
    ``has_manifest`` says whether the run wrote a manifest (also an unreadable one).
    """
    if has_manifest is None:
        has_manifest = manifest is not None and manifest.present
    if problems:
        return unreadable_run(run, "; ".join(problems), has_manifest)
    try:
        verdict = evaluate_run(run, manifest, series, errors, smoothing, **kwargs)
        verdict.summary()  # everything a listing shows must render too (alert messages, errors)
        return verdict
    except Exception as exc:  # isolation is the point: the reason names the culprit
        return unreadable_run(run, f"{type(exc).__name__}: {exc}", has_manifest)


def summarize_run(
    run: str,
    manifest: Manifest | None,
    series: Mapping[str, SeriesData],
    errors: Mapping[str, Any] | None = None,
    smoothing: float | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """The overview row of a run: status, category statuses, worst active alert, counts."""
    return evaluate_run(run, manifest, series, errors, smoothing, **kwargs).summary()


def categories_of(summaries: Iterable[Mapping[str, Any]]) -> list[dict[str, str]]:
    """The ``/runs`` category list: every category any run has, in tab order."""
    names: set[str] = set()
    for summary in summaries:
        names.update(summary.get("categories", {}))
    ordered = category_order(names)
    ordered += sorted(names - set(ordered))
    return [{"name": n, "title": category_title(n)} for n in ordered]


def is_failing(verdict: RunVerdict, fail_on: str = CRITICAL) -> bool:
    """Whether a run's status reaches ``fail_on`` ("warn" or "critical"), for CI gates."""
    return _RANK.get(verdict.status, -1) >= _RANK[fail_on]
