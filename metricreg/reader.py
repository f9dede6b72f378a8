"""Read a log directory without a TensorBoard server (for the CLI and tests).

A run is a directory that holds event files, named like TensorBoard names it:
its path relative to the logdir (``.`` for the logdir itself). Each run gives
its latest manifest, its latest metric-errors record and every scalar point
(TensorBoard's ``EventAccumulator`` with size guidance 0: nothing sampled
away). Feed the result to :func:`metricreg.verdict.evaluate_run`.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from metricreg.manifest import ERRORS_TAG, MANIFEST_TAG, Manifest

log = logging.getLogger("metricreg")

EVENT_FILE_MARKER = "tfevents"


@dataclass
class RunData:
    """What a run holds for the Health tab."""

    run: str
    path: str
    manifest: Manifest = field(default_factory=Manifest)
    errors: dict[str, Any] = field(default_factory=dict)
    series: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)  # why the run cannot be judged (any makes it unreadable)
    wrote_manifest: bool = False  # a manifest record exists, readable or not

    @property
    def has_manifest(self) -> bool:
        return self.manifest.present or self.wrote_manifest

    def evaluate(self, smoothing: float | None = None, **kwargs: Any):
        """This run's :class:`metricreg.verdict.RunVerdict` ("unreadable" with a reason, never an exception)."""
        from metricreg.verdict import judge_run

        return judge_run(
            self.run,
            self.manifest,
            self.series,
            self.errors,
            self.problems,
            smoothing,
            has_manifest=self.has_manifest,
            **kwargs,
        )


def find_runs(logdir: str | os.PathLike[str]) -> dict[str, str]:
    """``{run name: directory}`` for every directory under ``logdir`` holding event files."""
    root = os.fspath(logdir)
    if not os.path.isdir(root):
        raise FileNotFoundError(f"log directory {root!r} does not exist")
    runs: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        if any(EVENT_FILE_MARKER in name for name in filenames):
            runs[os.path.relpath(dirpath, root)] = dirpath
    return dict(sorted(runs.items()))


def _string_value(tensor_proto: Any) -> str:
    if tensor_proto.string_val:
        raw = tensor_proto.string_val[0]
        return raw.decode("utf-8") if isinstance(raw, bytes) else str(raw)
    from tensorboard.util import tensor_util

    value = tensor_util.make_ndarray(tensor_proto).reshape(-1)[0]
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _latest(events: list[Any]) -> Any | None:
    latest = None
    for event in events:  # the one written last wins (a restarted run writes a newer one)
        if latest is None or (event.wall_time, event.step) >= (latest.wall_time, latest.step):
            latest = event
    return latest


def read_run(path: str | os.PathLike[str], run: str | None = None) -> RunData:
    """Every scalar point, the latest manifest and the latest errors record of one run directory.

    Never raises for bad content: whatever cannot be read lands in ``problems``.
    """
    path = os.fspath(path)
    try:
        return _read_run(path, run)
    except Exception as exc:  # a damaged event file costs only its own run
        data = RunData(run=run if run is not None else os.path.basename(path), path=path)
        data.problems.append(f"cannot read the event files: {type(exc).__name__}: {exc}")
        return data


def _read_run(path: str, run: str | None) -> RunData:
    from tensorboard.backend.event_processing import event_accumulator as ea

    from metricreg.manifest import describe_error, parse_errors

    guidance = {
        ea.SCALARS: 0,
        ea.TENSORS: 0,
        ea.HISTOGRAMS: 1,
        ea.COMPRESSED_HISTOGRAMS: 1,
        ea.IMAGES: 1,
        ea.AUDIO: 1,
    }
    acc = ea.EventAccumulator(path, size_guidance=guidance)
    acc.Reload()
    data = RunData(run=run if run is not None else os.path.basename(path), path=path)
    tags = acc.Tags()
    for tag in tags.get(ea.SCALARS, []):
        points = acc.Scalars(tag)
        data.series[tag] = (
            np.fromiter((p.step for p in points), dtype=np.int64, count=len(points)),
            np.fromiter((p.value for p in points), dtype=np.float64, count=len(points)),
            np.fromiter((p.wall_time for p in points), dtype=np.float64, count=len(points)),
        )
    tensor_tags = set(tags.get(ea.TENSORS, []))
    if MANIFEST_TAG in tensor_tags:
        data.wrote_manifest = True
        event = _latest(acc.Tensors(MANIFEST_TAG))
        if event is not None:
            try:
                data.manifest = Manifest.from_json(_string_value(event.tensor_proto))
            except Exception as exc:  # hostile JSON (types, nesting): this run is unreadable
                data.problems.append(f"unreadable manifest at step {event.step}: {describe_error(exc)}")
                data.manifest = Manifest()
    if ERRORS_TAG in tensor_tags:
        event = _latest(acc.Tensors(ERRORS_TAG))
        if event is not None:
            try:
                data.errors = parse_errors(json.loads(_string_value(event.tensor_proto)))
            except Exception as exc:
                data.problems.append(f"unreadable metric errors record at step {event.step}: {describe_error(exc)}")
    return data


def borrow_validation(data: RunData, validation: RunData) -> None:
    """Keras' ``<dir>/train`` run takes its ``<dir>/validation`` sibling's series as ``epoch_val_X``."""
    from metricreg.verdict import keras_eval_tag

    for tag, series in validation.series.items():
        target = keras_eval_tag(tag)
        if target is not None and target not in data.series:
            data.series[target] = series


def iter_logdir(logdir: str | os.PathLike[str]) -> Iterator[RunData]:
    for run, path in find_runs(logdir).items():
        yield read_run(path, run)


def read_logdir(logdir: str | os.PathLike[str]) -> dict[str, RunData]:
    """``{run: RunData}`` for every run under ``logdir``, in name order."""
    return {data.run: data for data in iter_logdir(logdir)}
