"""Embeddings for TensorBoard's PROJECTOR tab: the files its plugin reads, written by the writer thread.

TensorBoard's projector plugin (``tensorboard/plugins/projector/projector_plugin.py``) looks for
``projector_config.pbtxt`` in each run directory: a text-format ``ProjectorConfig`` whose
``embeddings`` entries name a tensor (``tensor_name``), a tab-separated file of its rows
(``tensor_path``, one row per line) and optionally a metadata file (``metadata_path``: one label per
line; a single column has no header row). Paths are relative to the run directory and must stay
inside it. No TensorFlow checkpoint is needed when every entry has a ``tensor_path``.

Layout written here, one entry per (tag, step)::

    <run>/projector_config.pbtxt
    <run>/projector/<tag>/<step>/tensors.tsv      # float32 values, 9 significant digits (exact)
    <run>/projector/<tag>/<step>/metadata.tsv     # when labels were given

Every file is written to a temporary name and renamed into place (``os.replace``), so a reader (or
a crash) never sees half a file, and the config keeps whatever entries it already had (a resumed
run appends to its predecessor's). An entry for a (tag, step) that is already listed is not
repeated; its files are replaced.
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass
from typing import Any

import numpy as np

from metricreg.arrays import Deferred

CONFIG_FILENAME = "projector_config.pbtxt"  # tensorboard.plugins.projector.metadata.PROJECTOR_FILENAME
FOLDER = "projector"

_UNSAFE = re.compile(r"[^A-Za-z0-9_.\-]")


@dataclass(frozen=True)
class Embedding:
    """Rows to show in the projector (``tensor``: (n, d) host floats) and their labels (n, or None)."""

    tensor: np.ndarray
    labels: np.ndarray | None = None


def tensor_name(tag: str, step: int) -> str:
    """The name the PROJECTOR tab lists for one written (tag, step)."""
    return f"{tag}@{step}"


def _safe_parts(tag: str) -> list[str]:
    """The tag's components as directory names (fan-out keys are user strings: sanitised)."""
    parts = [_UNSAFE.sub("_", part) for part in tag.split("/") if part]
    return [part if part.strip(".") else "_" for part in parts] or ["_"]


def _atomic_write(path: str, text: str) -> None:
    folder = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _label_text(label: Any) -> str:
    text = label.decode("utf-8", "replace") if isinstance(label, bytes) else str(label)
    return text.replace("\t", " ").replace("\r", " ").replace("\n", " ") or " "


def as_embedding(value: Any, tag: str) -> Embedding:
    """Check a metric's value for the projector (resolving a host job); errors name the tag."""
    if isinstance(value, Deferred):
        value = value.resolve()
    if isinstance(value, Exception):  # a value that already failed on the training thread
        raise value
    if not isinstance(value, Embedding):
        raise TypeError(f"{tag}: an embedding metric must produce metricreg.projector.Embedding, got {type(value)}")
    tensor = np.asarray(value.tensor, dtype=np.float32)
    if tensor.ndim != 2 or tensor.shape[0] < 1 or tensor.shape[1] < 1:
        raise ValueError(f"{tag}: embeddings must be (n, d) with n, d >= 1, got shape {tensor.shape}")
    labels = None if value.labels is None else np.asarray(value.labels).reshape(-1)
    if labels is not None and len(labels) != len(tensor):
        raise ValueError(f"{tag}: {len(tensor)} embedding rows but {len(labels)} labels")
    return Embedding(tensor, labels)


class ProjectorFiles:
    """The projector files of one run directory; used by the writer thread only."""

    def __init__(self, logdir: str) -> None:
        self.logdir = logdir
        self._config: Any = None  # a ProjectorConfig, read from disk at the first write

    def _load(self) -> Any:
        if self._config is None:
            from google.protobuf import text_format
            from tensorboard.plugins.projector.projector_config_pb2 import ProjectorConfig

            config = ProjectorConfig()
            path = os.path.join(self.logdir, CONFIG_FILENAME)
            if os.path.exists(path):
                with open(path, encoding="utf-8") as f:
                    text = f.read()
                try:
                    text_format.Parse(text, config)
                except text_format.ParseError as exc:  # someone else's file: never overwrite it
                    raise ValueError(f"{path} exists but is not a ProjectorConfig ({exc}); left as it is") from None
            self._config = config
        return self._config

    def write(self, tag: str, step: int, value: Any) -> str:
        """Write one (tag, step) and list it in the config; returns its tensor name."""
        embedding = as_embedding(value, tag)
        config = self._load()
        rel = "/".join([FOLDER, *_safe_parts(tag), str(int(step))])
        folder = os.path.join(self.logdir, *rel.split("/"))
        os.makedirs(folder, exist_ok=True)
        rows = "\n".join("\t".join(f"{x:.9g}" for x in row) for row in embedding.tensor.tolist())
        _atomic_write(os.path.join(folder, "tensors.tsv"), rows + "\n")
        if embedding.labels is not None:
            _atomic_write(
                os.path.join(folder, "metadata.tsv"), "".join(_label_text(x) + "\n" for x in embedding.labels)
            )
        name = tensor_name(tag, step)
        entry = next((e for e in config.embeddings if e.tensor_name == name), None)
        if entry is None:
            entry = config.embeddings.add()
            entry.tensor_name = name
        entry.tensor_path = f"{rel}/tensors.tsv"
        entry.ClearField("metadata_path")
        if embedding.labels is not None:
            entry.metadata_path = f"{rel}/metadata.tsv"
        del entry.tensor_shape[:]
        entry.tensor_shape.extend(embedding.tensor.shape)
        from google.protobuf import text_format

        _atomic_write(os.path.join(self.logdir, CONFIG_FILENAME), text_format.MessageToString(config))
        return name
