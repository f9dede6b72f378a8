"""TensorBoard event encoding: Event protos framed as TFRecords.

Scalars are the bulk of what is written, so their Summary.Value bytes are
assembled by hand from a per-tag prefix (a scalar value is always
``prefix + 4 bytes``); that is several times faster than building protobuf
objects. Rarer kinds (histograms, images, text, the manifest) go through
TensorBoard's own generated protos, imported on first use.

Wire format (event.proto / summary.proto):
  Event:   wall_time=1 (double), step=2 (int64), file_version=3 (string), summary=5
  Summary: value=1 (repeated Value)
  Value:   tag=1, simple_value=2 (float), image=4, histo=5, tensor=8, metadata=9
"""

from __future__ import annotations

import math
import struct
import zlib
from typing import Any

import google_crc32c
import numpy as np

_pack_float = struct.Struct("<f").pack
_pack_double = struct.Struct("<d").pack
_pack_u64 = struct.Struct("<Q").pack
_pack_u32 = struct.Struct("<I").pack


def varint(n: int) -> bytes:
    if n < 0:
        n &= (1 << 64) - 1  # int64 two's complement, as protobuf encodes negatives
    out = bytearray()
    while True:
        bits = n & 0x7F
        n >>= 7
        if n:
            out.append(bits | 0x80)
        else:
            out.append(bits)
            return bytes(out)


def _field_bytes(number: int, payload: bytes) -> bytes:
    return varint((number << 3) | 2) + varint(len(payload)) + payload


def masked_crc(data: bytes) -> int:
    crc = google_crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def tfrecord(data: bytes) -> bytes:
    header = _pack_u64(len(data))
    return header + _pack_u32(masked_crc(header)) + data + _pack_u32(masked_crc(data))


def float32_bytes(value: float) -> bytes:
    try:
        return _pack_float(value)
    except (OverflowError, struct.error):
        # Larger than float32: TensorBoard stores float32, so it becomes +-inf.
        return _pack_float(math.copysign(math.inf, value))


class ScalarEncoder:
    """Caches each tag's Summary.Value prefix: the value is then prefix + 4 bytes."""

    def __init__(self) -> None:
        self._prefix: dict[str, bytes] = {}

    def value(self, tag: str, value: float) -> bytes:
        prefix = self._prefix.get(tag)
        if prefix is None:
            tag_field = _field_bytes(1, tag.encode("utf-8"))
            body_len = len(tag_field) + 5  # simple_value: key byte + 4 bytes
            prefix = b"\x0a" + varint(body_len) + tag_field + b"\x15"
            self._prefix[tag] = prefix
        return prefix + float32_bytes(value)


def event(step: int, wall_time: float, values: list[bytes]) -> bytes:
    """One Event record holding already encoded Summary.Value messages."""
    summary = b"".join(values)
    return b"\x09" + _pack_double(wall_time) + b"\x10" + varint(step) + b"\x2a" + varint(len(summary)) + summary


def file_version_event(wall_time: float) -> bytes:
    return b"\x09" + _pack_double(wall_time) + _field_bytes(3, b"brain.Event:2")


# --- rarer kinds, through TensorBoard's protos -------------------------------------------------


def _protos() -> Any:
    from tensorboard.compat.proto import summary_pb2, tensor_pb2, tensor_shape_pb2, types_pb2

    return summary_pb2, tensor_pb2, tensor_shape_pb2, types_pb2


def string_tensor_value(tag: str, text: str, plugin_name: str, content: bytes = b"") -> bytes:
    """A rank-0 string tensor with explicit data_class (both loaders need it)."""
    summary_pb2, tensor_pb2, tensor_shape_pb2, types_pb2 = _protos()
    metadata = summary_pb2.SummaryMetadata(
        plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name=plugin_name, content=content),
        data_class=summary_pb2.DATA_CLASS_TENSOR,
    )
    proto = tensor_pb2.TensorProto(
        dtype=types_pb2.DT_STRING, tensor_shape=tensor_shape_pb2.TensorShapeProto(), string_val=[text.encode("utf-8")]
    )
    value = summary_pb2.Summary.Value(tag=tag, metadata=metadata, tensor=proto)
    return _field_bytes(1, value.SerializeToString())


def text_value(tag: str, text: str) -> bytes:
    return string_tensor_value(tag, text, "text")


def histogram_value(tag: str, samples: np.ndarray, bins: int = 30) -> bytes | None:
    """A HistogramProto of the finite samples; None if there are none."""
    summary_pb2 = _protos()[0]
    data = np.asarray(samples, dtype=np.float64).ravel()
    data = data[np.isfinite(data)]
    if data.size == 0:
        return None
    lo, hi = float(data.min()), float(data.max())
    if lo == hi:
        counts, edges = np.array([data.size]), np.array([lo, hi])
    else:
        counts, edges = np.histogram(data, bins=bins, range=(lo, hi))
    histo = summary_pb2.HistogramProto(
        min=lo,
        max=hi,
        num=float(data.size),
        sum=float(data.sum()),
        sum_squares=float(np.dot(data, data)),
        bucket_limit=[float(e) for e in edges[1:]],
        bucket=[float(c) for c in counts],
    )
    value = summary_pb2.Summary.Value(tag=tag, histo=histo)
    return _field_bytes(1, value.SerializeToString())


def image_value(tag: str, pixels: np.ndarray) -> bytes:
    summary_pb2 = _protos()[0]
    array = to_uint8_image(pixels)
    height, width, channels = array.shape
    image = summary_pb2.Summary.Image(
        height=height, width=width, colorspace=channels, encoded_image_string=encode_png(array)
    )
    value = summary_pb2.Summary.Value(tag=tag, image=image)
    return _field_bytes(1, value.SerializeToString())


def to_uint8_image(pixels: np.ndarray) -> np.ndarray:
    """HxW or HxWxC (C in 1, 3, 4); floats are taken as [0, 1], NaN as 0."""
    array = np.asarray(pixels)
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[2] not in (1, 3, 4) or 0 in array.shape:
        raise ValueError(f"an image must be HxW or HxWxC with C in 1, 3, 4; got shape {array.shape}")
    if array.dtype != np.uint8:
        array = np.nan_to_num(array.astype(np.float64), nan=0.0, posinf=1.0, neginf=0.0)
        array = np.clip(np.rint(array * 255.0), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(array)


def encode_png(array: np.ndarray) -> bytes:
    """Minimal PNG (8-bit grey, RGB or RGBA) with zlib: no imaging library needed."""
    height, width, channels = array.shape
    color_type = {1: 0, 3: 2, 4: 6}[channels]
    rows = np.concatenate([np.zeros((height, 1), np.uint8), array.reshape(height, width * channels)], axis=1)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows.tobytes(), 6))
        + chunk(b"IEND", b"")
    )
