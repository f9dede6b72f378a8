"""The Health tab: a TensorBoard plugin that judges runs with metricreg's health rules.

This module is TensorBoard's entry point (``tensorboard_plugins`` group), so it
must import cheaply and never fail: everything heavier than ``base_plugin``
(numpy, metricreg's rules, werkzeug) is imported inside methods.

Data is read only through ``context.data_provider`` (never the multiplexer,
which is None under RustBoard), so the tab works the same with
``--load_fast=true`` and ``--load_fast=false``:

* the manifest and metric errors: ``list_tensors``/``read_tensors`` of plugin
  ``metricreg_health`` (latest datum wins);
* metric values: ``read_last_scalars`` (what changed) and ``read_scalars`` of
  plugin ``scalars`` (they are ordinary scalars, also shown by the Scalars tab).

Each run has a fingerprint (a digest of the step and wall time of the newest
point of each series, of its manifest/errors records and of the tag mapping).
Responses are cached per run under it, so a warm request costs two listing
calls; cold runs are read in batched calls. ``/run`` and ``/runs`` answer with
the fingerprint as ``ETag`` and with ``304 Not Modified`` to a matching
``If-None-Match``. The verdict uses each rule's own smoothing: a ``smoothing``
query parameter (old URLs) is accepted and ignored, because display never
changes a verdict.

Every run is judged in isolation: a malformed manifest, errors record or
series makes that run ``"unreadable"`` (with a reason), never the route a 500.

Runs without a manifest are listed when their tags allow a verdict (plain
``SummaryWriter``, Lightning, Hugging Face, Keras layouts, or a user's
``metricreg.toml`` mapping, see :mod:`metricreg.mapping`); ``is_active``
turns the tab on for such logdirs from a cached, background-refreshed check.

Routes (JSON contract in docs/ARCHITECTURE.md): ``/index.js``, ``/runs``,
``/run``, plus ``/static/<name>`` for an allow-list of frontend files.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from typing import Any, NamedTuple

from tensorboard.plugins import base_plugin

PLUGIN_NAME = "metricreg_health"
SCALARS_PLUGIN = "scalars"
MANIFEST_TAG = "_metricreg/manifest"
ERRORS_TAG = "_metricreg/errors"
COST_TAG = "_metricreg/cost"  # metricreg.cost.COST_TAG (not imported: this module must import cheaply)
COST_PREFIX = "_metricreg/cost/"

# "All points" for a data provider's downsample= (0 means zero points there).
UNLIMITED = (1 << 31) - 1
DEFAULT_DOWNSAMPLE = 1000
MIN_DOWNSAMPLE = 2
MAX_DOWNSAMPLE = 100_000
# Raw points kept between requests (so a new smoothing weight needs no re-read): 24 bytes each.
DATA_CACHE_POINTS = 4_000_000
# At most this many points per read_scalars call, and runs per batch of a cold /runs.
BATCH_POINTS = 1_000_000
BATCH_RUNS = 64
LOADER_DEFAULT_SCALARS = 1000  # both loaders keep this many points per scalar series by default

_STATIC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
# The only files ever served, with hard-coded types (never guessed, never joined from input).
_STATIC_FILES = {
    "index.js": "text/javascript",
    "index.js.map": "application/json",
    "index.css": "text/css",
}
_JSON = "application/json"
ACTIVE_TTL_S = 15.0  # how long is_active trusts its last look at the logdir
ACTIVE_WAIT_S = 0.5  # how long one is_active call may wait for a fresh look (TensorBoard times it)


class Borrowed(NamedTuple):
    """A series a run takes from a sibling run (Keras' validation run), in place of a ScalarDatum."""

    step: int
    wall_time: float
    run: str
    tag: str


def _with_siblings(scalars: dict) -> dict:
    """Keras writes ``<dir>/train`` and ``<dir>/validation``: the train run borrows the validation
    series as ``epoch_val_X`` so that its gap can be judged (the validation run stays as it is)."""
    from metricreg.verdict import keras_eval_tag, keras_siblings

    pairs = keras_siblings(scalars)
    if not pairs:
        return scalars
    out = dict(scalars)
    for train, validation in pairs.items():
        merged = dict(scalars[train])
        for tag, datum in scalars[validation].items():
            target = keras_eval_tag(tag)
            if target is not None and target not in merged:
                merged[target] = Borrowed(datum.step, datum.wall_time, validation, tag)
        out[train] = merged
    return out


def _digest(value: Any) -> str:
    import hashlib

    return hashlib.blake2b(repr(value).encode("utf-8", "surrogatepass"), digest_size=12).hexdigest()


def _not_modified(request: Any, etag: str) -> Any | None:
    """A 304 response when the client already holds this ETag."""
    if etag in request.if_none_match:
        from tensorboard.backend import http_util

        return http_util.Respond(request, b"", _JSON, code=304, headers=[("ETag", f'"{etag}"')])
    return None


def _raw_hint(hints: Any, plugin: str = "scalars") -> Any:
    try:
        return (hints or {}).get(plugin)
    except AttributeError:
        return None


def _hint(hints: Any, plugin: str) -> int:
    """A ``--samples_per_plugin`` value as a ``downsample=`` int (0 or absent: everything kept)."""
    value = _raw_hint(hints, plugin)
    if value is None:
        return UNLIMITED
    value = int(value)
    return UNLIMITED if value <= 0 else value


class _LRU:
    """A small thread-safe LRU of (fingerprint, value) entries."""

    def __init__(self, size: int, budget: int | None = None) -> None:
        self.size = size
        self.budget = budget  # optional bound on the summed weights of the entries
        self._data: OrderedDict[Any, tuple[Any, Any, int]] = OrderedDict()
        self._weight = 0
        self._lock = threading.Lock()

    def get(self, key: Any, fingerprint: Any) -> Any | None:
        with self._lock:
            entry = self._data.get(key)
            if entry is None or entry[0] != fingerprint:
                return None
            self._data.move_to_end(key)
            return entry[1]

    def put(self, key: Any, fingerprint: Any, value: Any, weight: int = 0) -> None:
        with self._lock:
            old = self._data.pop(key, None)
            if old is not None:
                self._weight -= old[2]
            if self.budget is not None and weight > self.budget:
                return  # too big to keep
            self._data[key] = (fingerprint, value, weight)
            self._weight += weight
            while len(self._data) > self.size or (self.budget is not None and self._weight > self.budget):
                _, (_, _, dropped) = self._data.popitem(last=False)
                self._weight -= dropped

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
            self._weight = 0


class HealthLoader(base_plugin.TBLoader):
    """TensorBoard's entry point: adds ``--metricreg_mapping`` and builds the plugin.

    ``tensorboard --logdir runs --metricreg_mapping tags.toml`` points rules at a user's own tag
    names (see :mod:`metricreg.mapping`); without it ``$METRICREG_MAPPING`` or
    ``<logdir>/metricreg.toml`` applies.
    """

    plugin_name = PLUGIN_NAME

    def define_flags(self, parser: Any) -> None:
        parser.add_argument(
            "--metricreg_mapping",
            metavar="FILE",
            type=str,
            default="",
            help="Health tab: a TOML file giving metricreg health rules to your own tag names "
            "(default: $METRICREG_MAPPING, else <logdir>/metricreg.toml).",
        )

    def fix_flags(self, flags: Any) -> None:
        path = getattr(flags, "metricreg_mapping", "")
        if path and not os.path.isfile(path):
            raise base_plugin.FlagsError(f"--metricreg_mapping: no such file: {path}")

    def load(self, context: base_plugin.TBContext) -> HealthPlugin:
        return HealthPlugin(context)


class HealthPlugin(base_plugin.TBPlugin):
    """TensorBoard plugin ``metricreg_health``: the Health tab."""

    plugin_name = PLUGIN_NAME

    def __init__(self, context: base_plugin.TBContext) -> None:
        self._data_provider = context.data_provider
        hints = getattr(context, "sampling_hints", None)
        self._scalar_downsample = _hint(hints, SCALARS_PLUGIN)
        # What the loader keeps per series (for batching reads): its default when no hint is given.
        self._scalar_estimate = (
            min(self._scalar_downsample, LOADER_DEFAULT_SCALARS)
            if _raw_hint(hints) is None
            else self._scalar_downsample
        )
        self._tensor_downsample = _hint(hints, PLUGIN_NAME)
        # Every cache entry carries the fingerprint of the run's data (step and wall time of the
        # newest point of each series) and is used only while it matches: new data is never hidden.
        self._summaries = _LRU(4096)  # (eid, run) -> /runs row
        self._details = _LRU(64)  # (eid, run, downsample) -> /run JSON text
        self._verdicts = _LRU(16)  # (eid, run) -> RunVerdict (full resolution)
        self._costs = _LRU(16)  # (eid, run) -> metricreg.cost.cost_view of the run
        self._data = _LRU(4096, budget=DATA_CACHE_POINTS)  # (eid, run) -> what the provider returned
        self._bodies = _LRU(16)  # eid -> /runs JSON text, under the digest of every run's fingerprint
        self._static_cache: dict[str, tuple[float, int, bytes]] = {}
        self._logdir = getattr(context, "logdir", None)
        flags = getattr(context, "flags", None)
        self._mapping_path = getattr(flags, "metricreg_mapping", None) or None
        self._mapping_state: tuple[Any, Any, str | None] = (None, None, None)  # (stat key, mapping, error)
        self._mapping_lock = threading.Lock()
        self._active = False
        self._active_checked = -1e18
        self._active_thread: threading.Thread | None = None
        self._active_lock = threading.Lock()

    # --- TBPlugin API ---------------------------------------------------------------------------

    def get_plugin_apps(self) -> dict[str, Any]:
        from werkzeug import wrappers

        app = wrappers.Request.application
        return {
            "/index.js": app(self._serve_index),
            "/static/*": app(self._serve_static),
            "/runs": app(self._serve_runs),
            "/run": app(self._serve_run),
        }

    def is_active(self) -> bool:
        """Whether a logdir without manifests still has runs the tab can judge.

        TensorBoard asks only when no run has this plugin's manifest, and waits for the answer
        while serving ``/data/plugins_listing``; so the answer is cached for ``ACTIVE_TTL_S`` and
        refreshed in a background thread, waiting at most ``ACTIVE_WAIT_S`` for it.
        """
        import time

        with self._active_lock:
            if self._active or time.monotonic() - self._active_checked < ACTIVE_TTL_S:
                return self._active
            thread = self._active_thread
            if thread is None or not thread.is_alive():
                thread = threading.Thread(target=self._check_active, name="metricreg-is-active", daemon=True)
                self._active_thread = thread
                thread.start()
        thread.join(ACTIVE_WAIT_S)
        return self._active

    def _check_active(self) -> None:
        import time

        active = False
        try:
            from tensorboard.context import RequestContext

            if self._data_provider is not None:
                mapping, _ = self._mapping()
                scalars, tensors = self._listing(RequestContext(), "")
                active = any(
                    self._listed(scalars.get(run, {}), tensors.get(run, {}), mapping)
                    for run in set(scalars) | set(tensors)
                )
        except Exception:  # a failed look is "not yet": the next listing asks again
            logger().debug("metricreg_health: is_active check failed", exc_info=True)
        with self._active_lock:
            self._active = self._active or active
            self._active_checked = time.monotonic()

    def frontend_metadata(self) -> base_plugin.FrontendMetadata:
        return base_plugin.FrontendMetadata(es_module_path="/index.js", tab_name="Health")

    # --- static files ---------------------------------------------------------------------------

    def _static_response(self, request: Any, name: str) -> Any:
        from tensorboard import errors
        from tensorboard.backend import http_util

        content_type = _STATIC_FILES.get(name)
        if content_type is None:
            raise errors.NotFoundError(f"no such file: {name[:100]}")
        path = os.path.join(_STATIC_DIR, name)  # name is one of the allow-listed constants
        try:
            stat = os.stat(path)
            cached = self._static_cache.get(name)
            if cached is not None and cached[:2] == (stat.st_mtime, stat.st_size):
                body = cached[2]
            else:
                with open(path, "rb") as handle:
                    body = handle.read()
                self._static_cache[name] = (stat.st_mtime, stat.st_size, body)
        except OSError:
            raise errors.NotFoundError(f"{name} is not built (run `npm run build` in frontend/)") from None
        return http_util.Respond(request, body, content_type)

    def _serve_index(self, request: Any) -> Any:
        return self._static_response(request, "index.js")

    def _serve_static(self, request: Any) -> Any:
        prefix = "/static/"
        path = request.path
        name = path[path.rindex(prefix) + len(prefix) :] if prefix in path else ""
        return self._static_response(request, name)

    # --- arguments ------------------------------------------------------------------------------

    @staticmethod
    def _downsample(request: Any) -> int:
        from tensorboard import errors

        raw = request.args.get("downsample")
        if raw is None or raw.strip() == "":
            return DEFAULT_DOWNSAMPLE
        try:
            value = int(raw)
        except ValueError:
            raise errors.InvalidArgumentError(f"downsample must be an integer, got {raw[:40]!r}") from None
        if not MIN_DOWNSAMPLE <= value <= MAX_DOWNSAMPLE:
            raise errors.InvalidArgumentError(
                f"downsample must be between {MIN_DOWNSAMPLE} and {MAX_DOWNSAMPLE}, got {value}"
            )
        return value

    # --- reading --------------------------------------------------------------------------------

    def _listing(self, ctx: Any, eid: str, runs: list[str] | None = None) -> tuple[dict, dict]:
        """({run: {tag: last ScalarDatum}}, {run: {tag: TensorTimeSeries}} of this plugin).

        The last datum of each scalar series (the loaders always keep the newest point)
        says whether a series changed. ``read_last_scalars`` is used instead of
        ``list_scalars`` because the Python loader's ``list_scalars`` walks every stored
        point to find the maximum step, while the last point is a lookup.
        """
        from tensorboard.data import provider

        dp = self._data_provider
        flt = provider.RunTagFilter(runs=runs) if runs is not None else None
        scalars = dp.read_last_scalars(ctx, experiment_id=eid, plugin_name=SCALARS_PLUGIN, run_tag_filter=flt) or {}
        tensors = dp.list_tensors(ctx, experiment_id=eid, plugin_name=PLUGIN_NAME, run_tag_filter=flt) or {}
        return _with_siblings(scalars), tensors

    @staticmethod
    def _fingerprint(scalar_tags: dict, tensor_tags: dict, mapping: Any) -> str:
        """A digest that changes whenever anything in this run's data (or the mapping) changes."""
        return _digest(
            (
                sorted((tag, d.step, d.wall_time) for tag, d in scalar_tags.items()),
                sorted((tag, ts.max_step, ts.max_wall_time) for tag, ts in tensor_tags.items()),
                getattr(mapping, "fingerprint", ""),
            )
        )

    @staticmethod
    def _listed(scalar_tags: dict, tensor_tags: dict, mapping: Any = None) -> bool:
        """A run belongs in the tab if it has a manifest or tags a verdict can use."""
        if MANIFEST_TAG in tensor_tags:
            return True
        from metricreg.verdict import has_conventional_tags

        return has_conventional_tags(scalar_tags, mapping)

    @staticmethod
    def _wanted_tags(scalar_tags: dict, has_manifest: bool, mapping: Any = None) -> list[str]:
        """The scalar tags a run's verdict needs (without a manifest: conventional and mapped ones)."""
        from metricreg.verdict import DROPPED_TAG, INTERNAL_PREFIX, plain_tags

        tags = [t for t in scalar_tags if not t.startswith(INTERNAL_PREFIX) or t == DROPPED_TAG]
        costs = [t for t in scalar_tags if t.startswith(COST_PREFIX)]  # for the tab's Cost section
        if has_manifest:
            return sorted(tags + costs)
        return sorted(plain_tags(tags, mapping)) + sorted(costs)

    def _mapping(self) -> tuple[Any, str | None]:
        """(the tag mapping in force, why it could not be read or None); re-read when the file changes."""
        from metricreg.mapping import MappingError, TagMapping, find_mapping, load_mapping

        path = find_mapping(self._logdir, self._mapping_path)
        try:
            stat = os.stat(path) if path is not None else None
            key = (path, stat.st_mtime_ns, stat.st_size) if stat is not None else None
        except OSError:
            key = (path, None, None)
        with self._mapping_lock:
            if key == self._mapping_state[0] and self._mapping_state[1] is not None:
                return self._mapping_state[1], self._mapping_state[2]
        try:
            mapping, error = load_mapping(path), None
        except MappingError as exc:
            mapping, error = TagMapping(fingerprint=f"error:{key}"), str(exc)
            logger().warning("metricreg_health: %s", exc)
        with self._mapping_lock:
            self._mapping_state = (key, mapping, error)
        return mapping, error

    @staticmethod
    def _isolated(call: Any, runs: list[str]) -> tuple[dict, dict[str, str]]:
        """``call(runs)`` for a batch of runs; if the provider fails, each run alone.

        Returns (the merged result, {run: why its read failed}): a provider error for one
        run's data costs only that run, never the whole route.
        """
        try:
            return call(runs) or {}, {}
        except Exception as exc:
            if len(runs) == 1:
                return {}, {runs[0]: f"the data provider failed: {type(exc).__name__}: {exc}"}
        merged: dict = {}
        failed: dict[str, str] = {}
        for run in runs:
            result, why = HealthPlugin._isolated(call, [run])
            merged.update(result)
            failed.update(why)
        return merged, failed

    def _read_meta(self, ctx: Any, eid: str, runs: list[str]) -> tuple[dict[str, tuple], dict[str, str]]:
        """({run: (manifest, errors, problems, cost record)}, {run: why its read failed}) from the
        latest manifest/errors/cost tensors, in one call.

        ``problems`` are readable reasons ("manifest at step 3: ..."); any of them makes the run
        unreadable. Parsing never raises: hostile JSON (wrong types, deep nesting) is a problem.
        """
        import json

        import numpy as np
        from tensorboard.data import provider

        from metricreg.cost import parse_record
        from metricreg.manifest import Manifest, describe_error, parse_errors

        out: dict[str, tuple] = {}
        result: dict = {}
        failed: dict[str, str] = {}
        if runs:
            result, failed = self._isolated(
                lambda batch: self._data_provider.read_tensors(
                    ctx,
                    experiment_id=eid,
                    plugin_name=PLUGIN_NAME,
                    downsample=self._tensor_downsample,
                    run_tag_filter=provider.RunTagFilter(runs=batch, tags=[MANIFEST_TAG, ERRORS_TAG, COST_TAG]),
                ),
                runs,
            )
        for run in runs:
            manifest, errors, problems, cost = Manifest(), {}, [], None
            if run in failed:
                problems.append(f"cannot read the manifest: {failed[run]}")
            for tag, data in ((result or {}).get(run) or {}).items():
                latest = None
                for datum in data:  # the one written last wins (a restarted run writes a newer one)
                    if latest is None or (datum.wall_time, datum.step) >= (latest.wall_time, latest.step):
                        latest = datum
                if latest is None:
                    continue
                what = {MANIFEST_TAG: "manifest", COST_TAG: "cost record"}.get(tag, "metric errors record")
                try:
                    raw = np.asarray(latest.numpy).reshape(-1)[0]
                    text = raw.decode("utf-8") if isinstance(raw, bytes) else str(raw)
                    if tag == MANIFEST_TAG:
                        manifest = Manifest.from_json(text)
                    elif tag == ERRORS_TAG:
                        errors = parse_errors(json.loads(text))
                    elif tag == COST_TAG:
                        cost = parse_record(json.loads(text))
                except Exception as exc:  # one run's bad record must not reach the route
                    if tag == COST_TAG:  # the verdict does not need it: the Cost section says why it is empty
                        cost = {"problem": f"unreadable {what} at step {int(latest.step)}: {describe_error(exc)}"}
                    else:
                        problems.append(f"unreadable {what} at step {int(latest.step)}: {describe_error(exc)}")
            out[run] = (manifest, errors, problems, cost)
        return out, failed

    def _read_series(
        self, ctx: Any, eid: str, wanted: dict[str, list[str]], sizes: dict[str, int]
    ) -> tuple[dict, dict[str, str]]:
        """({run: {tag: (steps, values, wall_times)}}, {run: why its read failed}) in as few
        read_scalars calls as memory allows."""
        from operator import attrgetter

        import numpy as np
        from tensorboard.data import provider

        get_step, get_value, get_wall = attrgetter("step"), attrgetter("value"), attrgetter("wall_time")
        out: dict[str, dict] = {run: {} for run in wanted}
        # Batch runs that need the same tags; cap the points one call returns.
        groups: dict[tuple, list[str]] = {}
        for run, tags in wanted.items():
            if tags:
                groups.setdefault(tuple(tags), []).append(run)
        batches: list[tuple[list[str], list[str]]] = []
        for tags, runs in groups.items():
            batch: list[str] = []
            points = 0
            for run in runs:
                if batch and points + sizes[run] > BATCH_POINTS:
                    batches.append((batch, list(tags)))
                    batch, points = [], 0
                batch.append(run)
                points += sizes[run]
            if batch:
                batches.append((batch, list(tags)))
        failed: dict[str, str] = {}
        for runs, tags in batches:
            result, why = self._isolated(
                lambda batch, tags=tags: self._data_provider.read_scalars(
                    ctx,
                    experiment_id=eid,
                    plugin_name=SCALARS_PLUGIN,
                    downsample=self._scalar_downsample,
                    run_tag_filter=provider.RunTagFilter(runs=batch, tags=tags),
                ),
                runs,
            )
            failed.update(why)
            for run in runs:
                for tag, data in ((result or {}).get(run) or {}).items():
                    n = len(data)
                    out[run][tag] = (
                        np.fromiter(map(get_step, data), dtype=np.int64, count=n),
                        np.fromiter(map(get_value, data), dtype=np.float64, count=n),
                        np.fromiter(map(get_wall, data), dtype=np.float64, count=n),
                    )
        return out, failed

    def _load(
        self, ctx: Any, eid: str, runs: dict[str, tuple[dict, dict, str]], mapping: Any = None
    ) -> dict[str, tuple]:
        """{run: (manifest, errors, series, problems, has_manifest, transient, cost record)}: cached, or read in
        batched provider calls. ``transient`` marks data a provider failure left incomplete (never cached)."""
        out: dict[str, tuple] = {}
        stale: dict[str, tuple[dict, dict, tuple]] = {}
        for run, entry in runs.items():
            data = self._data.get((eid, run), entry[2])
            if data is None:
                stale[run] = entry
            else:
                out[run] = data
        if not stale:
            return out
        metas, meta_failed = self._read_meta(ctx, eid, [r for r, (_, tensors, _) in stale.items() if tensors])
        wanted: dict[str, list[str]] = {}
        for run, (scalar_tags, _tensors, _) in stale.items():
            meta = metas.get(run)
            has_manifest = meta[0].present if meta else False
            wanted[run] = self._wanted_tags(scalar_tags, has_manifest, mapping)
        # Borrowed series (Keras' validation run) are read from their own run, then renamed.
        reads: dict[str, set[str]] = {}
        read_sizes: dict[str, int] = {}
        renames: list[tuple[str, str, str, str]] = []  # (run, tag, source run, source tag)
        for run, tags in wanted.items():
            scalar_tags = stale[run][0]
            for tag in tags:
                datum = scalar_tags[tag]
                source, source_tag = (datum.run, datum.tag) if isinstance(datum, Borrowed) else (run, tag)
                if source != run:
                    renames.append((run, tag, source, source_tag))
                reads.setdefault(source, set()).add(source_tag)
                points = min(self._scalar_estimate, max(datum.step, 0) + 1)
                read_sizes[source] = read_sizes.get(source, 0) + points
        read, failed = self._read_series(ctx, eid, {r: sorted(t) for r, t in reads.items()}, read_sizes)
        series: dict[str, dict] = {run: {} for run in stale}
        for run, tags in wanted.items():
            for tag in tags:
                if tag in read.get(run, {}) and not isinstance(stale[run][0][tag], Borrowed):
                    series[run][tag] = read[run][tag]
        for run, tag, source, source_tag in renames:
            if source_tag in read.get(source, {}):
                series[run][tag] = read[source][source_tag]
        from metricreg.manifest import Manifest

        sources: dict[str, set[str]] = {run: {run} for run in stale}
        for run, _tag, source, _source_tag in renames:
            sources[run].add(source)
        for run, (_, tensor_tags, fingerprint) in stale.items():
            manifest, errors, problems, cost = metas.get(run) or (Manifest(), {}, [], None)
            problems = list(problems) + [
                f"cannot read the series of {s!r}: {failed[s]}" for s in sources[run] if s in failed
            ]
            # A provider failure may pass: such data is not cached, so the next request reads again.
            transient = run in meta_failed or any(s in failed for s in sources[run])
            data = (manifest, errors, series[run], problems, MANIFEST_TAG in tensor_tags, transient, cost)
            if not transient:
                self._data.put((eid, run), fingerprint, data, weight=sum(v[0].size for v in series[run].values()))
            out[run] = data
        return out

    def _evaluate(self, eid: str, run: str, fingerprint: str, data: tuple, mapping: Any = None):
        """The run's verdict; anything wrong with its data makes it "unreadable", never an exception."""
        from metricreg.verdict import judge_run

        manifest, errors, series, problems, has_manifest, transient = data[:6]
        verdict = judge_run(run, manifest, series, errors, problems, has_manifest=has_manifest, mapping=mapping)
        if not transient:
            self._verdicts.put((eid, run), fingerprint, verdict)
        return verdict

    def _cost(self, eid: str, run: str, fingerprint: str, data: tuple) -> dict:
        """The run's Cost section (``metricreg.cost.cost_view``); a problem with it never fails the route."""
        from metricreg.cost import cost_view

        record = data[6]
        try:
            cost = cost_view(data[2], record if record is not None and "problem" not in record else None)
        except Exception as exc:
            cost = {"cost": [], "cost_ms_total": 0.0, "cost_problem": f"{type(exc).__name__}: {exc}"}
        if record is not None and "problem" in record:
            cost["cost_problem"] = record["problem"]
        if not data[5]:
            self._costs.put((eid, run), fingerprint, cost)
        return cost

    def _row(self, verdict: Any, fingerprint: str) -> dict:
        row = verdict.summary()
        row["fingerprint"] = fingerprint
        return row

    # --- routes ---------------------------------------------------------------------------------

    def _serve_runs(self, request: Any) -> Any:
        import json

        from tensorboard import plugin_util
        from tensorboard.backend import http_util, json_util

        from metricreg.verdict import categories_of

        ctx = plugin_util.context(request.environ)
        eid = plugin_util.experiment_id(request.environ)
        mapping, mapping_error = self._mapping()
        entries: dict[str, tuple[dict, dict, str]] = {}
        if self._data_provider is not None:
            scalars, tensors = self._listing(ctx, eid)
            for run in sorted(set(scalars) | set(tensors)):
                scalar_tags, tensor_tags = scalars.get(run, {}), tensors.get(run, {})
                if self._listed(scalar_tags, tensor_tags, mapping):
                    entries[run] = (scalar_tags, tensor_tags, self._fingerprint(scalar_tags, tensor_tags, mapping))
        if entries:
            self._active = True
        etag = _digest((sorted((run, e[2]) for run, e in entries.items()), mapping_error))
        unchanged = _not_modified(request, etag)
        if unchanged is not None:
            return unchanged
        text = self._bodies.get(eid, etag)
        if text is None:
            rows: dict[str, dict | None] = {}
            missing: dict[str, tuple[dict, dict, str]] = {}
            for run, entry in entries.items():
                fingerprint = entry[2]
                row = self._summaries.get((eid, run), fingerprint)
                if row is None:
                    verdict = self._verdicts.get((eid, run), fingerprint)
                    if verdict is not None:
                        row = self._row(verdict, fingerprint)
                        self._summaries.put((eid, run), fingerprint, row)
                rows[run] = row
                if row is None:
                    missing[run] = entry
            # Stale runs are read in batches of runs (a few provider calls, not two per run).
            names = list(missing)
            transient = False
            for start in range(0, len(names), BATCH_RUNS):
                chunk = {run: missing[run] for run in names[start : start + BATCH_RUNS]}
                for run, data in self._load(ctx, eid, chunk, mapping).items():
                    fingerprint = chunk[run][2]
                    row = self._row(self._evaluate(eid, run, fingerprint, data, mapping), fingerprint)
                    if data[5]:
                        transient = True  # not cached: the next request tries this run again
                    else:
                        self._summaries.put((eid, run), fingerprint, row)
                    rows[run] = row
            listed = [row for row in rows.values() if row is not None]
            body: dict[str, Any] = {"runs": listed, "categories": categories_of(listed), "smoothing": None}
            if mapping_error is not None:
                body["mapping_error"] = mapping_error
            text = json.dumps(json_util.Cleanse(body))
            if transient:
                return http_util.Respond(request, text, _JSON)  # no ETag: this answer must not be kept
            self._bodies.put(eid, etag, text)
        return http_util.Respond(request, text, _JSON, headers=[("ETag", f'"{etag}"')])

    def _serve_run(self, request: Any) -> Any:
        import json

        from tensorboard import errors, plugin_util
        from tensorboard.backend import http_util, json_util

        run = request.args.get("run")
        if run is None or run == "":
            raise errors.InvalidArgumentError("run is required: ./run?run=<run name>")
        downsample = self._downsample(request)  # (a `smoothing` argument is accepted and ignored)
        ctx = plugin_util.context(request.environ)
        eid = plugin_util.experiment_id(request.environ)
        if self._data_provider is None:
            raise errors.NotFoundError(f"no run named {run[:200]!r}")
        mapping, _ = self._mapping()
        from metricreg.verdict import keras_siblings

        sibling = run[: -len("train")] + "validation" if run == "train" or run.endswith("/train") else None
        scalars, tensors = self._listing(ctx, eid, [run] if sibling is None else [run, sibling])
        if sibling is not None and not keras_siblings(scalars):
            scalars = {run: scalars.get(run, {})}
        scalar_tags, tensor_tags = scalars.get(run, {}), tensors.get(run, {})
        if not (scalar_tags or tensor_tags) or not self._listed(scalar_tags, tensor_tags, mapping):
            raise errors.NotFoundError(f"no run named {run[:200]!r} with health data")
        fingerprint = self._fingerprint(scalar_tags, tensor_tags, mapping)
        unchanged = _not_modified(request, fingerprint)
        if unchanged is not None:
            return unchanged
        key = (eid, run, downsample)
        text = self._details.get(key, fingerprint)
        if text is None:
            verdict = self._verdicts.get((eid, run), fingerprint)
            cost = self._costs.get((eid, run), fingerprint)
            transient = False
            if verdict is None or cost is None:
                data = self._load(ctx, eid, {run: (scalar_tags, tensor_tags, fingerprint)}, mapping)[run]
                if verdict is None:
                    verdict = self._evaluate(eid, run, fingerprint, data, mapping)
                cost = self._cost(eid, run, fingerprint, data)
                transient = data[5]
            try:
                body = verdict.to_dict(downsample)
            except Exception as exc:  # one run's odd data never becomes a 500
                from metricreg.verdict import unreadable_run

                body = unreadable_run(run, f"{type(exc).__name__}: {exc}", verdict.has_manifest).to_dict()
            body.update(cost)
            body["fingerprint"] = fingerprint
            text = json.dumps(json_util.Cleanse(body))
            if transient:
                return http_util.Respond(request, text, _JSON)  # no ETag: this answer must not be kept
            self._details.put(key, fingerprint, text)
        return http_util.Respond(request, text, _JSON, headers=[("ETag", f'"{fingerprint}"')])


def logger() -> Any:
    import logging

    return logging.getLogger("metricreg.tensorboard")
