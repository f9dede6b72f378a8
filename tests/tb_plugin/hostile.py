"""Hostile manifests and metric-errors records, written as real event files (for the fuzz tests).

Each case is one run directory holding a manifest record, an errors record (both exactly as a
Monitor writes them: a string tensor under the plugin ``metricreg_health``) and a few scalar
points. The cases are a valid manifest/errors pair with one seeded mutation each (a value
replaced by a wrong type, a huge or hostile string, a key removed or renamed), plus structural
ones (not an object, deep nesting, not UTF-8).
"""

from __future__ import annotations

import copy
import json
import os
import random
from collections.abc import Iterator
from typing import Any

from metricreg import events
from metricreg.manifest import ERRORS_TAG, MANIFEST_TAG, PLUGIN_CONTENT, PLUGIN_NAME

TAG = "train/quality/score"
CONTROL = "control"
HOSTILE_NAMES = ("__proto__", "constructor", "hasOwnProperty", "toString")

VALID_MANIFEST: dict[str, Any] = {
    "version": 1,
    "metrics": [
        {
            "name": "quality/score",
            "plugin": "hand",
            "description": "a score",
            "health": {"": {"category": "prediction", "warn_below": 0.5, "critical_below": 0.2, "persistence": 1}},
        }
    ],
    "series": {TAG: {"metric": "quality/score", "split": "train"}},
}
VALID_ERRORS: dict[str, Any] = {
    "quality/other": {
        "plugin": "hand",
        "count": 2,
        "consecutive": 1,
        "last_message": "boom",
        "disabled": False,
        "first_step": 1,
        "last_step": 2,
    }
}
HOSTILE_VALUES: list[Any] = [
    5,
    -1,
    1.5,
    None,
    True,
    "",
    "x" * 20_000,
    "__proto__",
    "constructor",
    [],
    {},
    [1, "a"],
    {"__proto__": {"polluted": 1}},
    float("nan"),
    float("inf"),
    1e308,
    "<img src=x onerror=alert(1)>",
    "\u0000\ud800",
]


def _paths(node: Any, prefix: tuple = ()) -> Iterator[tuple]:
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _paths(value, (*prefix, i))


def _mutate(doc: Any, rng: random.Random) -> Any:
    doc = copy.deepcopy(doc)
    path = rng.choice([p for p in _paths(doc) if p])
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    last = path[-1]
    action = rng.random()
    if action < 0.7:
        parent[last] = rng.choice(HOSTILE_VALUES)
    elif isinstance(parent, dict):
        value = parent.pop(last)
        if action < 0.85:
            parent[rng.choice(["__proto__", "constructor", "x" * 5000, ""])] = value
    else:
        parent[last] = rng.choice(HOSTILE_VALUES)
    return doc


def _string_tensor(tag: str, text: bytes | str) -> bytes:
    """A manifest-style record; unlike ``events.string_tensor_value`` it also takes raw (bad) bytes."""
    if isinstance(text, str):
        return events.string_tensor_value(tag, text, PLUGIN_NAME, PLUGIN_CONTENT)
    from tensorboard.compat.proto import summary_pb2, tensor_pb2, tensor_shape_pb2, types_pb2

    metadata = summary_pb2.SummaryMetadata(
        plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name=PLUGIN_NAME, content=PLUGIN_CONTENT),
        data_class=summary_pb2.DATA_CLASS_TENSOR,
    )
    proto = tensor_pb2.TensorProto(
        dtype=types_pb2.DT_STRING, tensor_shape=tensor_shape_pb2.TensorShapeProto(), string_val=[text]
    )
    value = summary_pb2.Summary.Value(tag=tag, metadata=metadata, tensor=proto)
    return events._field_bytes(1, value.SerializeToString())


def _write(run_dir: str, manifest: bytes | str | None, errors: bytes | str | None, values: list[float]) -> None:
    os.makedirs(run_dir, exist_ok=True)
    data = events.tfrecord(events.file_version_event(1.0))
    enc = events.ScalarEncoder()
    records: list[list[bytes]] = []
    if manifest is not None:
        records.append([_string_tensor(MANIFEST_TAG, manifest)])
    if errors is not None:
        records.append([_string_tensor(ERRORS_TAG, errors)])
    records += [[enc.value(TAG, v)] for v in values]
    for i, values_ in enumerate(records):
        data += events.tfrecord(events.event(i, 1000.0 + i, values_))
    with open(os.path.join(run_dir, "events.out.tfevents.1.fuzz"), "wb") as handle:
        handle.write(data)


def _named_manifest(category: str) -> dict:
    doc = copy.deepcopy(VALID_MANIFEST)
    doc["metrics"][0]["health"][""]["category"] = category
    return doc


def write_cases(logdir: str, seed: int = 0, mutations: int = 60) -> dict[str, str]:
    """Write the fuzz logdir; ``{run: what was done to it}``."""
    rng = random.Random(seed)
    scores = [0.9, 0.1, 0.1]  # critical at the end under the valid manifest
    cases: dict[str, str] = {}

    def add(name: str, manifest: Any, errors: Any, what: str, raw: bool = False) -> None:
        dump = (lambda x: x) if raw else (lambda x: json.dumps(x))
        _write(os.path.join(logdir, name), dump(manifest), dump(errors), scores)
        cases[name] = what

    add(CONTROL, VALID_MANIFEST, VALID_ERRORS, "valid")
    add("category_5", _named_manifest(5), VALID_ERRORS, "health category 5")  # type: ignore[arg-type]
    bad_count = copy.deepcopy(VALID_ERRORS)
    bad_count["quality/other"]["count"] = "abc"
    add("errors_count_abc", VALID_MANIFEST, bad_count, "errors count 'abc'")
    for name in HOSTILE_NAMES:  # hostile run names with hostile (but valid) category names
        add(name, _named_manifest(name), VALID_ERRORS, f"category {name}")
    add("deep_nesting", "[" * 100_000 + "]" * 100_000, json.dumps(VALID_ERRORS), "deeply nested", raw=True)
    add("not_utf8", b"\xff\xfe{", json.dumps(VALID_ERRORS), "manifest not UTF-8", raw=True)
    add("errors_list", json.dumps(VALID_MANIFEST), "[1, 2]", "errors not an object", raw=True)
    for i, value in enumerate(HOSTILE_VALUES):
        add(f"top_manifest_{i:02d}", value, VALID_ERRORS, f"manifest = {value!r:.40}")
        add(f"top_errors_{i:02d}", VALID_MANIFEST, value, f"errors = {value!r:.40}")
    for i in range(mutations):
        add(f"mut_manifest_{i:02d}", _mutate(VALID_MANIFEST, rng), VALID_ERRORS, "mutated manifest")
    for i in range(mutations // 2):
        add(f"mut_errors_{i:02d}", VALID_MANIFEST, _mutate(VALID_ERRORS, rng), "mutated errors")
    return cases
