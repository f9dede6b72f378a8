"""Pictures of the data (informational): feature histograms and reconstructions as images.

* ``features/{values,norms}`` (histograms, every 1000 steps, fanned out over ``embeddings``:
  ``features/<key>/values`` for a dict): the embedding entries, and the L2 norm of each row. Values:
  whole rows of a fixed pseudo-random row selection (the collapse family's), ⌊16,384 / d⌋ rows (at
  least one), flattened and cut at 16,384 values; norms: up to 4,096 rows, same selection. Seen
  beside ``collapse/<key>/norm``: a shrinking or exploding scale, dead (exactly 0) or saturated
  entries, one modality on another scale than the others.
* ``prediction/reconstructions`` (image, every 1000 steps) from ``reconstruction`` and ``image``
  (same shape): the first k ≤ 4 images of the batch, targets above, reconstructions below. Layouts:
  (H, W) and (H, W, C) one image; (B, H, W) grayscale; (B, H, W, C) when the last axis is 1, 3 or 4,
  else (B, C, H, W) when axis 1 is; C = 1 grey, 3 RGB, 4 RGBA (alpha dropped). Other layouts (video,
  5-D) are skipped; a dict (one entry per head), as for ``prediction/psnr``, is an error naming the
  input. Pixels show x / R clipped to [0, 1], R = ``data_range`` if given, else 255 for
  integer images, else 1 (PSNR's convention); targets outside [0, R] (standardised data) show their
  own [min, max] instead, the reconstruction clipped to it. Tiles are enlarged by an integer factor to
  at least 64 px, or sub-sampled to at most 256 px, and separated by 2 white pixels.

The training thread only slices (a sample of rows, the first k images, strided to at most 256 px)
and, for host data, copies that slice; the host transfer, the grid and the PNG encoding run on the writer thread.
No health rules: these are for looking at.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from metricreg import arrays as A
from metricreg.builtins.prediction import check_images
from metricreg.hookspecs import hookimpl
from metricreg.spec import Metric

FEATURE_MAX_VALUES = 16_384
FEATURE_MAX_ROWS = 4_096
RECON_SAMPLES = 4
RECON_MIN_SIDE = 64
RECON_MAX_SIDE = 256
RECON_GAP = 2


# ------------------------------------------------------------------------- feature histograms


def features(embeddings: Any) -> dict[str, Any] | None:
    """A bounded sample of embedding entries and per-row norms, for two histograms."""
    if isinstance(embeddings, Mapping) or not A.is_array(embeddings):
        return None  # a nested dict, or no array: nothing to draw
    xp = A.namespace(embeddings)
    z = A.as_matrix(embeddings, None, xp)
    n, d = z.shape
    if n == 0 or d == 0:
        return None
    rows = A.as_matrix(z, max(1, FEATURE_MAX_VALUES // d), xp)
    values = xp.reshape(rows, (-1,))[:FEATURE_MAX_VALUES]
    norms = xp.linalg.vector_norm(A.to_float(A.as_matrix(z, FEATURE_MAX_ROWS, xp), xp), axis=1)
    return {"values": A.to_float(values, xp), "norms": norms}


# ------------------------------------------------------------------------- reconstruction grid


def _layout(shape: tuple[int, ...]) -> str | None:
    """How an image array is laid out: "hw", "hwc", "bhw", "bhwc", "bchw", or None (skipped)."""
    if len(shape) == 2:
        return "hw"
    if len(shape) == 3:
        return "hwc" if shape[-1] in (1, 3, 4) else "bhw"
    if len(shape) == 4:
        if shape[-1] in (1, 3, 4):
            return "bhwc"
        if shape[1] in (1, 3, 4):
            return "bchw"
    return None


_HW_AXIS = {"hw": 0, "hwc": 0, "bhw": 1, "bhwc": 1, "bchw": 2}  # the height axis; width follows it


def _first(x: Any, layout: str) -> Any:
    """The first RECON_SAMPLES images of x, strided as _resize would: a device slice, or a host copy of it."""
    x = A.detach(x)
    if layout.startswith("b"):
        x = x[:RECON_SAMPLES, ...]
    h = _HW_AXIS[layout]
    side = max(x.shape[h], x.shape[h + 1])
    if side > RECON_MAX_SIDE:  # only the pixels drawn are copied (a 4K frame: 1/256 of it), same grid as before
        stride = math.ceil(side / RECON_MAX_SIDE)
        x = x[(slice(None),) * h + (slice(None, None, stride), slice(None, None, stride))]
    return A.host_snapshot(x) if A.is_host_data(x) else x


def reconstruction_image(reconstruction: Any, image: Any, data_range: Any = None) -> Any:
    """Targets above, reconstructions below: the first images of the batch (module docstring)."""
    check_images(reconstruction, image)
    shape = tuple(image.shape)
    if tuple(reconstruction.shape) != shape:
        raise ValueError(f"reconstruction {tuple(reconstruction.shape)} and image {shape} must have the same shape")
    layout = _layout(shape)
    if layout is None or 0 in shape:
        return None
    integer = not A.namespace(image).isdtype(image.dtype, "real floating")
    arrays = {"rec": _first(reconstruction, layout), "img": _first(image, layout)}
    if A.is_array(data_range):
        arrays["data_range"] = A.detach(data_range)
        data_range = None
    peak = data_range

    def finish(host: dict[str, Any]) -> np.ndarray:
        r = host.get("data_range", peak)
        r = float(np.asarray(r)) if r is not None else (255.0 if integer else 1.0)
        return reconstruction_grid(host["img"], host["rec"], layout, r)

    return A.Deferred(A.HostJob(arrays, finish))


def _as_bhwc(x: np.ndarray, layout: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if layout == "hw":
        x = x[None, :, :, None]
    elif layout == "hwc":
        x = x[None]
    elif layout == "bhw":
        x = x[..., None]
    elif layout == "bchw":
        x = np.moveaxis(x, 1, -1)
    return x[..., :3]  # RGBA: alpha dropped


def _resize(x: np.ndarray) -> np.ndarray:
    """Integer enlargement to at least RECON_MIN_SIDE px, or striding down to at most RECON_MAX_SIDE px."""
    side = max(x.shape[1], x.shape[2])
    if side > RECON_MAX_SIDE:
        stride = math.ceil(side / RECON_MAX_SIDE)
        return x[:, ::stride, ::stride]
    scale = max(1, math.ceil(RECON_MIN_SIDE / side))
    return np.repeat(np.repeat(x, scale, axis=1), scale, axis=2)


def reconstruction_grid(img: np.ndarray, rec: np.ndarray, layout: str, data_range: float) -> np.ndarray:
    """(2·h + gap, k·w + (k − 1)·gap, C) floats in [0, 1]: targets in the top row, reconstructions below."""
    t, r = _as_bhwc(img, layout), _as_bhwc(rec, layout)
    finite = t[np.isfinite(t)]
    lo, hi = 0.0, data_range
    if finite.size and (finite.min() < 0.0 or finite.max() > data_range):
        lo, hi = float(finite.min()), float(finite.max())
    span = hi - lo if hi > lo else 1.0
    t, r = _resize(np.clip((t - lo) / span, 0.0, 1.0)), _resize(np.clip((r - lo) / span, 0.0, 1.0))
    k, h, w, c = t.shape
    grid = np.ones((2 * h + RECON_GAP, k * w + (k - 1) * RECON_GAP, c))
    for i in range(k):
        x0 = i * (w + RECON_GAP)
        grid[:h, x0 : x0 + w] = t[i]
        grid[h + RECON_GAP :, x0 : x0 + w] = r[i]
    return np.nan_to_num(grid, nan=0.0)


METRICS = [
    Metric(
        "features",
        compute=features,
        every=1000,
        kind="histogram",
        fan_out="embeddings",
        description="Histograms of the embedding entries (values) and of the per-row L2 norms (norms), "
        "on a bounded sample (16,384 values, 4,096 rows).",
    ),
    Metric(
        "prediction/reconstructions",
        compute=reconstruction_image,
        every=1000,
        kind="image",
        description="The first 4 target images (top) and their reconstructions (bottom), clipped to the data range.",
    ),
]


@hookimpl
def metricreg_register_metrics(register):
    for metric in METRICS:
        register(metric)
