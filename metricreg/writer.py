"""The writer thread: host transfer, health rules, encoding and the event file.

The training thread only appends records to a bounded deque. Everything that
costs time (turning device arrays into numbers, protobuf encoding, CRC32C,
file I/O, health evaluation, alert hooks) happens here.

Memory is bounded by ``queue_size`` records and by ``max_queue_bytes`` bytes of
array payloads (estimated from ``nbytes`` when queued; device copies count too).
When the writer falls behind, the
``on_full`` policy decides: ``"block"`` (default) makes the training thread
wait for room, up to ``block_timeout`` seconds, after which the record is
dropped; ``"drop"`` drops at once. Every dropped record is counted and the
count is written to the run (``_metricreg/dropped``) and reported by
``Monitor.close()``: never silent loss, never unbounded growth.
"""

from __future__ import annotations

import collections
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from metricreg import events, host
from metricreg.cost import COST_PREFIX, COST_TAG, CostMeter
from metricreg.health import Alert, HealthTracker
from metricreg.manifest import ERRORS_TAG, MANIFEST_TAG, PLUGIN_CONTENT, PLUGIN_NAME, Manifest, build_manifest
from metricreg.projector import ProjectorFiles
from metricreg.recordfile import LogdirError, RecordFile, open_event_file

__all__ = [
    "DROPPED_TAG",
    "PLAIN_TYPES",
    "UNWRITTEN_TAG",
    "BadValue",
    "EventWriter",
    "LogdirError",
    "SeriesKey",
    "open_event_file",
]

log = logging.getLogger("metricreg")

DROPPED_TAG = "_metricreg/dropped"
UNWRITTEN_TAG = "_metricreg/unwritten"


DEFAULT_QUEUE_BYTES = 256 << 20  # what queued array payloads may hold, besides the record count


PLAIN_TYPES = frozenset({float, int, bool, str, type(None)})  # values that hold no array payload


def record_bytes(record: tuple) -> int:
    """A cheap estimate of what a queued record keeps alive: its arrays' nbytes plus a fixed overhead."""
    kind = record[0]
    if kind == "values":
        values: Any = [value for _, value in record[3]]
    elif kind == "log":
        values = record[4].values()
    else:
        return 64
    total = 64 + 32 * len(values)
    for value in values:
        if type(value) in PLAIN_TYPES:  # most due values are floats: no failed attribute lookup for each
            continue
        size = getattr(value, "nbytes", None)
        if isinstance(size, int):
            total += size
    return total


class BadValue(Exception):
    """A value that failed already on the training thread (for example, copying a deleted buffer)."""


@dataclass
class SeriesKey:
    """Where a written tag came from; shared by every record of that tag."""

    tag: str
    kind: str
    metric: str | None
    member: str | None
    key: str | None
    split: str | None
    plugin: str | None = None


@dataclass
class WriterStats:
    records: int = 0
    values: int = 0
    dropped: int = 0
    bad_values: int = 0
    flushes: int = 0
    errors: list[str] = field(default_factory=list)


class EventWriter:
    """Owns one event file and the thread that fills it."""

    def __init__(
        self,
        logdir: str,
        metrics: list[dict[str, Any]],
        *,
        flush_secs: float = 2.0,
        queue_size: int = 2048,
        on_full: str = "block",
        block_timeout: float = 10.0,
        max_queue_bytes: int = DEFAULT_QUEUE_BYTES,
        on_alert: Callable[[Alert], None] | None = None,
        on_bad_value: Callable[[str, int, str, int], dict[str, Any]] | None = None,
        cost: CostMeter | None = None,
    ) -> None:
        if on_full not in ("block", "drop"):
            raise ValueError(f"on_full must be 'block' or 'drop', got {on_full!r}")
        if not isinstance(queue_size, int) or queue_size < 1:
            raise ValueError(f"queue_size must be a positive integer, got {queue_size!r}")
        if not isinstance(max_queue_bytes, int) or max_queue_bytes < 1:
            raise ValueError(f"max_queue_bytes must be a positive integer, got {max_queue_bytes!r}")
        if not flush_secs > 0:
            raise ValueError(f"flush_secs must be positive, got {flush_secs!r}")
        self.logdir = logdir
        self.queue: collections.deque[tuple] = collections.deque()
        self.queue_size = queue_size
        self.max_queue_bytes = max_queue_bytes
        self._bytes_in = 0  # written by the training thread only
        self._bytes_out = 0  # written by the writer thread only: no lock needed for the difference
        self.abandoned = 0  # records close() had to leave behind (the writer did not finish in time)
        self.on_full = on_full
        self.block_timeout = block_timeout
        self.flush_secs = flush_secs
        self.stats = WriterStats()
        self._on_alert = on_alert
        self._on_bad_value = on_bad_value
        self._cost = cost
        self._cost_written: dict[str, int] = {}  # metric -> calls when its cost was last written
        self._cost_record_written = 0  # CostMeter.version of the last cost record written
        self._bad_streak: dict[str, int] = {}  # tag -> consecutive unconvertible values
        self._metrics = metrics
        self._series: dict[str, dict[str, Any]] = {}
        self._manifest = Manifest(build_manifest(metrics, {}))
        self._manifest_dirty = False
        self._errors: dict[str, dict[str, Any]] = {}
        self._errors_dirty = False
        self._dropped_written = 0
        self._trackers: dict[str, HealthTracker | None] = {}
        self._plain: dict[tuple[str, str], SeriesKey] = {}
        self._projector = ProjectorFiles(logdir)  # embedding values: files beside the event file
        self._scalars = events.ScalarEncoder()
        self._buffer = bytearray()
        self._buffer_records = 0
        self._unwritten_written = 0
        self._last_step = 0
        self._last_flush = time.monotonic()
        self._wake = threading.Event()
        self._closing = False
        self._lock = threading.Lock()  # guards file writes between the thread and close()
        self.alerts: list[Alert] = []
        # The file is readable by TensorBoard (and the tab enabled) from the first moment.
        self._out = RecordFile(logdir, self._file_header)
        self._thread = threading.Thread(target=self._run, name="metricreg-writer", daemon=True)
        self._thread.start()

    @property
    def path(self) -> str:
        """The event file being written (a new one after an unrecoverable I/O fault)."""
        return self._out.path

    @property
    def unwritten(self) -> int:
        """Records lost to I/O faults (full disk, deleted directory, ...)."""
        return self._out.lost_records

    # --- training-thread side ----------------------------------------------------------------

    def put(self, record: tuple, size: int | None = None) -> None:
        """Queue a record (training thread); ``size`` is its byte estimate when the caller knows it."""
        if size is None:
            size = record_bytes(record)
        queue = self.queue
        queued = self._bytes_in - self._bytes_out
        if (len(queue) >= self.queue_size or (queued and queued + size > self.max_queue_bytes)) and not (
            self._make_room(size)
        ):
            self.stats.dropped += 1
            return
        self._bytes_in += size
        queue.append((record, size))

    @property
    def queued_bytes(self) -> int:
        """Bytes held by queued records (array payloads, on host or device), as estimated when queued."""
        return self._bytes_in - self._bytes_out

    def _over_budget(self, size: int) -> bool:
        queued = self._bytes_in - self._bytes_out
        return queued > 0 and queued + size > self.max_queue_bytes  # one record larger than the budget still fits alone

    def _make_room(self, size: int) -> bool:
        if self.on_full == "drop" or self._closing or not self._thread.is_alive():
            return False
        self._wake.set()
        deadline = time.monotonic() + self.block_timeout
        while len(self.queue) >= self.queue_size or self._over_budget(size):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.0005)
        return True

    def flush(self, timeout: float = 30.0) -> None:
        """Block until everything queued so far is in the file."""
        done = threading.Event()
        self.put(("flush", done))
        self._wake.set()
        if not done.wait(timeout):
            log.warning("metricreg: flush did not finish within %.0f s", timeout)

    def close(self, timeout: float = 60.0) -> None:
        """Write what is queued and close the file within ``timeout`` seconds; say what was left if not."""
        if self._closing:
            return
        self._closing = True
        deadline = time.monotonic() + timeout
        self._wake.set()
        self._thread.join(timeout)
        left = len(self.queue)
        if self._thread.is_alive():
            self.abandoned = left
            log.error(
                "metricreg: the writer thread for %r did not finish within %.1f s; closing anyway and leaving "
                "%d queued records (%d bytes) unwritten",
                self.logdir,
                timeout,
                left,
                self.queued_bytes,
            )
            if not self._lock.acquire(timeout=max(0.0, deadline - time.monotonic()) + 1.0):
                return  # the thread is stuck inside a file write: it closes nothing we could wait for
            try:
                self._out.close()  # whatever the thread still writes is counted as unwritten
            finally:
                self._lock.release()
            return
        with self._lock:
            try:
                self._drain()
                self._write_pending_meta()
                self._flush_file()
            except Exception as exc:  # close() runs at exit: it reports, it never raises
                self._note_error(f"closing the event file failed: {exc!r}")
            finally:
                self._out.close()

    # --- writer-thread side ------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            try:
                if self._cycle():
                    return
            except Exception as exc:  # nothing may kill the writer thread: report and carry on
                self._note_error(f"the writer thread hit {exc!r}")
                time.sleep(0.05)

    def _cycle(self) -> bool:
        """One round of the writer thread; True when it is done for good."""
        self._drain(budget=4096)
        if self._cost is not None:
            self._cost.check_hung()
        if self._closing and not self.queue:
            return True
        if time.monotonic() - self._last_flush >= self.flush_secs:
            with self._lock:
                if self._out.closed:
                    return True
                self._write_pending_meta()
                self._flush_file()
        if not self.queue:
            self._wake.wait(0.02)
            self._wake.clear()
        return False

    def _drain(self, budget: int | None = None) -> None:
        queue = self.queue
        handled = 0
        while queue and (budget is None or handled < budget):
            try:
                record, size = queue.popleft()
            except IndexError:
                break
            self._bytes_out += size
            handled += 1
            try:
                self._handle(record)
            except Exception as exc:  # the writer must survive anything a record holds
                self._note_error(f"writer failed on a {record[0]!r} record: {exc!r}")
            if len(self._buffer) > (1 << 20):
                self._flush_file()

    def _handle(self, record: tuple) -> None:
        kind = record[0]
        if kind == "values":
            step, wall_time, items = record[1:4]
            if len(record) > 4:  # the Monitor's scalar rules, run here (metricreg.rule_jobs)
                ruled, failures = record[4]()
                items = items + ruled
                for metric, info in failures:  # counted by the Monitor under the rule's name, as inline
                    self._errors[metric] = info
                    self._errors_dirty = True
            self._write_values(step, wall_time, items)
        elif kind == "log":
            _, step, wall_time, split, values = record
            self._write_values(step, wall_time, [(self._plain_series(split, name), v) for name, v in values.items()])
        elif kind == "error":
            _, step, metric, info = record
            if info["count"] < self._errors.get(metric, {}).get("count", 0):
                return  # the writer already holds a newer account (bad values counted here)
            self._errors[metric] = info
            self._errors_dirty = True
            self._last_step = max(self._last_step, step)
        elif kind == "flush":
            self._write_pending_meta()
            self._flush_file()
            record[1].set()
        self.stats.records += 1

    def _plain_series(self, split: str, name: str) -> SeriesKey:
        """The series of a value logged without a metric (Monitor.log, eval inputs), made once per tag."""
        key = (split, name)
        series = self._plain.get(key)
        if series is None:
            series = self._plain[key] = SeriesKey(f"{split}/{name}", "scalar", None, None, None, split)
        return series

    def _write_values(self, step: int, wall_time: float, items: list[tuple[SeriesKey, Any]]) -> None:
        step = int(step)
        self._last_step = step
        encoded: list[bytes] = []
        scalar = self._scalars.value
        for series, value in items:
            tag = series.tag
            if tag not in self._series:
                self._new_series(series)
            try:
                if series.kind == "scalar":
                    number = host.to_float(value)
                    encoded.append(scalar(tag, number))
                    tracker = self._trackers.get(tag)
                    if tracker is not None:
                        self._track(tracker, step, number)
                elif series.kind == "histogram":
                    data = events.histogram_value(tag, host.to_numpy(value))
                    if data is not None:
                        encoded.append(data)
                elif series.kind == "image":
                    encoded.append(events.image_value(tag, host.to_numpy(value)))
                elif series.kind == "text":
                    if isinstance(value, BadValue):
                        raise value
                    encoded.append(events.text_value(tag, str(value)))
                elif series.kind == "embedding":
                    self._projector.write(tag, step, value)
            except Exception as exc:  # one unconvertible value costs only itself
                self.stats.bad_values += 1
                self._note_bad_value(series, step, value if isinstance(value, BadValue) else exc)
            else:
                if self._bad_streak and tag in self._bad_streak:
                    del self._bad_streak[tag]
        if encoded:
            self.stats.values += len(encoded)
            self._append(events.event(step, wall_time, encoded))

    def _new_series(self, series: SeriesKey) -> None:
        self._series[series.tag] = {
            "metric": series.metric,
            "member": series.member,
            "key": series.key,
            "split": series.split,
            "kind": series.kind,
        }
        self._manifest.series[series.tag] = self._series[series.tag]
        self._manifest_dirty = True
        tracker = None
        if series.kind == "scalar":
            info = self._manifest.lookup(series.tag)
            if info.health is not None:
                tracker = HealthTracker(series.tag, info.health, metric=info.metric)
        self._trackers[series.tag] = tracker

    def _track(self, tracker: HealthTracker, step: int, value: float) -> None:
        for alert in tracker.feed(step, value):
            if alert.change == "opened":
                self.alerts.append(alert)
            elif alert.change == "cleared" and alert in self.alerts:
                self.alerts.remove(alert)
            if self._on_alert is not None:
                try:
                    self._on_alert(alert)
                except Exception as exc:
                    self._note_error(f"an on_alert hook failed: {exc!r}")

    def _note_bad_value(self, series: SeriesKey, step: int, exc: Exception) -> None:
        """Record a value that cannot be written, under its metric and plugin (or the Monitor.log tag)."""
        message = f"{series.tag}: {exc if isinstance(exc, BadValue) else f'{type(exc).__name__}: {exc}'}"
        metric = series.metric
        if metric is not None and self._on_bad_value is not None:
            streak = self._bad_streak[series.tag] = self._bad_streak.get(series.tag, 0) + 1
            try:
                self._errors[metric] = self._on_bad_value(metric, step, message, streak)
                self._errors_dirty = True
                return
            except Exception as hook_exc:
                self._note_error(f"recording a bad value of {metric!r} failed: {hook_exc!r}")
        name = metric or series.tag
        entry = self._errors.get(name) or {
            "plugin": series.plugin or (None if metric else "Monitor.log"),
            "count": 0,
            "consecutive": 0,
            "first_step": step,
            "disabled": False,
        }
        entry.update(
            count=entry["count"] + 1,
            consecutive=entry["consecutive"] + 1,
            last_step=step,
            last_message=message,
        )
        self._errors[name] = entry
        self._errors_dirty = True

    def _note_error(self, message: str) -> None:
        if message not in self.stats.errors:
            log.error("metricreg: %s", message)
            if len(self.stats.errors) < 100:
                self.stats.errors.append(message)

    def _write_manifest(self, step: int) -> None:
        data = build_manifest(self._metrics, self._series)
        value = events.string_tensor_value(MANIFEST_TAG, json.dumps(data, sort_keys=True), PLUGIN_NAME, PLUGIN_CONTENT)
        self._append(events.event(step, time.time(), [value]))
        self._manifest_dirty = False

    def _write_pending_meta(self) -> None:
        if self._manifest_dirty:
            self._write_manifest(self._last_step)
        if self._errors_dirty:
            text = json.dumps(self._errors, sort_keys=True, default=str)
            value = events.string_tensor_value(ERRORS_TAG, text, PLUGIN_NAME, PLUGIN_CONTENT)
            self._append(events.event(self._last_step, time.time(), [value]))
            self._errors_dirty = False
        if self.stats.dropped != self._dropped_written:
            self._dropped_written = self.stats.dropped
            value = self._scalars.value(DROPPED_TAG, float(self.stats.dropped))
            self._append(events.event(self._last_step, time.time(), [value]))
        if self._cost is not None:
            self._write_costs()
        if self._out_ready() and self._out.lost_records != self._unwritten_written:
            self._unwritten_written = self._out.lost_records
            value = self._scalars.value(UNWRITTEN_TAG, float(self._unwritten_written))
            self._append(events.event(self._last_step, time.time(), [value]))

    def _write_costs(self) -> None:
        """Each metric's mean training-thread milliseconds per call, when it ran since last written."""
        values = []
        for metric, (calls, mean_ms) in self._cost.mean_ms().items():  # type: ignore[union-attr]
            if self._cost_written.get(metric) != calls:
                self._cost_written[metric] = calls
                values.append(self._scalars.value(COST_PREFIX + metric, mean_ms))
        if values:
            self._append(events.event(self._last_step, time.time(), values))
        version = self._cost.version  # type: ignore[union-attr]
        if version != self._cost_record_written:  # a metric went over budget or hung: into the run
            self._cost_record_written = version
            text = json.dumps(self._cost.record(), sort_keys=True, default=str)  # type: ignore[union-attr]
            value = events.string_tensor_value(COST_TAG, text, PLUGIN_NAME, PLUGIN_CONTENT)
            self._append(events.event(self._last_step, time.time(), [value]))

    def _out_ready(self) -> bool:
        return getattr(self, "_out", None) is not None

    def _append(self, data: bytes) -> None:
        self._buffer += events.tfrecord(data)
        self._buffer_records += 1

    def _file_header(self) -> bytes:
        """What every event file starts with: the version record and the run's metadata so far."""
        saved, saved_records = self._buffer, self._buffer_records
        self._buffer, self._buffer_records = bytearray(), 0
        try:
            self._append(events.file_version_event(time.time()))
            self._write_manifest(self._last_step)
            self._errors_dirty = bool(self._errors)
            self._cost_record_written = 0  # a new file: its cost record again, if any
            self._write_pending_meta()
            return bytes(self._buffer)
        finally:
            self._buffer, self._buffer_records = saved, saved_records

    def _flush_file(self) -> None:
        if self._buffer:
            data, records = bytes(self._buffer), self._buffer_records
            self._buffer, self._buffer_records = bytearray(), 0
            if self._out.write(data, records):
                self.stats.flushes += 1
        self._last_flush = time.monotonic()
