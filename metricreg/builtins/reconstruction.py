"""Reconstruction spread (informational): how PSNR varies across the images of a batch.

``prediction/psnr`` is the batch mean of per-image PSNRs; a mean hides the one image a model
fails on. With the same inputs (``reconstruction``, ``image``, optional ``data_range``) and the
same per-image definition, 10·log10(R²/MSEᵢ) with MSEᵢ floored at 1e-20·R² (≤ 200 dB):

* ``prediction/psnr_spread/{std,min,max}`` (every 100 steps): std (ddof 1), minimum and maximum
  of the per-image PSNRs, in dB;
* ``prediction/psnr_hist`` (histogram, every 1000 steps): the per-image PSNRs.

Only for batches (ndim ≥ 4, or 3-D (B, H, W) grayscale, as ``prediction/psnr`` decides); one
image has no spread. No health thresholds (docs/metrics.md, "Research signals").
"""

from __future__ import annotations

from typing import Any

from metricreg import arrays as A
from metricreg.builtins.prediction import _is_batch, check_images
from metricreg.hookspecs import hookimpl
from metricreg.spec import Health, Metric

_INFO = " Informational: no health rule until the detection benchmark shows one that stays quiet."

HEALTH: dict[str, Health] = {
    "std": Health(
        category="prediction",
        nonfinite=None,
        title="PSNR spread across images (std, dB)",
        description="Standard deviation of the per-image PSNR over the batch: a wide spread means some "
        "images are reconstructed far worse than the mean shows." + _INFO,
    ),
    "min": Health(
        category="prediction",
        nonfinite=None,
        direction="higher_is_better",
        title="worst-image PSNR (dB)",
        description="The lowest per-image PSNR in the batch." + _INFO,
    ),
    "max": Health(
        category="prediction",
        nonfinite=None,
        direction="higher_is_better",
        title="best-image PSNR (dB)",
        description="The highest per-image PSNR in the batch (200 dB: a perfect reconstruction)." + _INFO,
    ),
}


def per_image_psnr(reconstruction: Any, image: Any, data_range: Any = None) -> Any | None:
    """The (B,) per-image PSNRs in dB on the inputs' device, or None for a single image."""
    check_images(reconstruction, image)
    xp = A.namespace(reconstruction, image)
    if tuple(reconstruction.shape) != tuple(image.shape):
        raise ValueError(
            f"reconstruction {tuple(reconstruction.shape)} and image {tuple(image.shape)} must have the same shape"
        )
    if not _is_batch(tuple(image.shape)):
        return None
    if data_range is None:
        data_range = 1.0 if xp.isdtype(image.dtype, "real floating") else 255.0
    rec, img = A.to_float(A.detach(reconstruction), xp), A.to_float(A.detach(image), xp)
    sq = (rec - img) ** 2
    mse = xp.mean(xp.reshape(sq, (sq.shape[0], -1)), axis=1)
    r2 = data_range * data_range
    return 10.0 * xp.log10(r2 / xp.clip(mse, r2 * 1e-20, None))


def psnr_spread(reconstruction: Any, image: Any, data_range: Any = None) -> dict[str, Any] | None:
    """std, min and max of the per-image PSNRs (module docstring)."""
    values = per_image_psnr(reconstruction, image, data_range)
    if values is None:
        return None
    xp = A.namespace(values)
    return {
        "std": xp.std(values, correction=1 if values.shape[0] > 1 else 0),
        "min": xp.min(values),
        "max": xp.max(values),
    }


def psnr_hist(reconstruction: Any, image: Any, data_range: Any = None) -> Any | None:
    """The per-image PSNRs, for a histogram."""
    return per_image_psnr(reconstruction, image, data_range)


METRICS = [
    Metric(
        "prediction/psnr_spread",
        compute=psnr_spread,
        every=100,
        health=HEALTH,
        description="Spread of the per-image PSNR over the batch: std, min, max (dB, informational).",
    ),
    Metric(
        "prediction/psnr_hist",
        compute=psnr_hist,
        every=1000,
        kind="histogram",
        description="Histogram of the per-image PSNRs of the batch (dB).",
    ),
]


@hookimpl
def metricreg_register_metrics(register):
    for metric in METRICS:
        register(metric)
