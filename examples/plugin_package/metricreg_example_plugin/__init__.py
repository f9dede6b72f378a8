"""metricreg_example_plugin: data-quality metrics in a health category of their own.

Installed, this module is found through its entry point (``[project.entry-points.metricreg]
example = "metricreg_example_plugin"``) and every ``metricreg.Monitor`` registers its hooks.

Inputs (declared below, so ``mon.step(batch=..., labels=..., num_classes=...)`` is checked):

* ``batch``: the model's input batch, any shape (n, ...);
* ``labels``: integer class labels (n,); ``num_classes``: their number.

Both metrics run on the arrays' own device through the array API: no ``.item()``, no copy
to the host on the training thread (metricreg's writer thread does that later).
"""

from __future__ import annotations

import logging
import math
from typing import Any

import array_api_compat

import metricreg as mr

CATEGORY = "data_quality"
MAX_ROWS = 1024  # rows compared for duplicates (the first ones of the batch)
CHUNK_ELEMENTS = 1 << 22  # bound on the temporary comparison array, in elements

log = logging.getLogger("metricreg_example_plugin")


def duplicate_fraction(batch: Any) -> Any:
    """Fraction of the batch's rows that are exact copies of an earlier row."""
    xp = array_api_compat.array_namespace(batch)
    n = min(batch.shape[0], MAX_ROWS)
    if n < 2:
        return None
    rows = xp.reshape(batch[:n, ...], (n, -1))
    d = rows.shape[1]
    chunk = max(1, CHUNK_ELEMENTS // (n * d))
    index = xp.arange(n, device=array_api_compat.device(rows))
    duplicate = []
    for start in range(0, n, chunk):
        block = rows[start : start + chunk, ...]
        equal = xp.all(block[:, None, :] == rows[None, :, :], axis=2)  # (chunk, n)
        earlier = index[None, :] < index[start : start + block.shape[0], None]
        duplicate.append(xp.any(xp.logical_and(equal, earlier), axis=1))
    return xp.mean(xp.astype(xp.concat(duplicate), xp.float32))


def label_entropy(labels: Any, num_classes: int) -> Any:
    """Entropy of the batch's label distribution divided by log(num_classes): 1 balanced, 0 one class."""
    if num_classes < 2:
        return None
    xp = array_api_compat.array_namespace(labels)
    classes = xp.arange(num_classes, device=array_api_compat.device(labels))
    onehot = xp.reshape(labels, (-1, 1)) == xp.astype(classes[None, :], labels.dtype)
    p = xp.mean(xp.astype(onehot, xp.float32), axis=0)
    plogp = xp.where(p > 0, p * xp.log(xp.where(p > 0, p, 1.0)), 0.0)
    return (0.0 - xp.sum(plogp)) / math.log(num_classes)  # 0.0 - x: never -0.0


DUPLICATES = mr.Metric(
    "data_quality/duplicates",
    compute=duplicate_fraction,
    every=50,
    reduce="mean",
    health=mr.Health(
        category=CATEGORY,
        warn_above=0.05,
        critical_above=0.25,
        direction="lower_is_better",
        persistence=2,
        title="duplicate samples per batch",
        description="Fraction of the rows of a batch that repeat an earlier row of the same batch.",
        remedy="The loader repeats samples: check the sampler (a small shard repeated, sampling with "
        "replacement from a tiny set, a worker seed shared by every worker) and deduplicate the dataset.",
    ),
)

LABEL_ENTROPY = mr.Metric(
    "data_quality/label_entropy",
    compute=label_entropy,
    every=50,
    reduce="mean",
    health=mr.Health(
        category=CATEGORY,
        warn_below=0.5,
        critical_below=0.2,
        direction="higher_is_better",
        persistence=2,
        title="label entropy / log(classes)",
        description="Normalised entropy of the labels in a batch: 1 when every class is equally frequent, "
        "0 when the batch holds a single class.",
        remedy="Batches are dominated by a few classes: shuffle the dataset (a loader over class-sorted data "
        "without shuffle=True), or use a class-balanced sampler.",
    ),
)


@mr.hookimpl
def metricreg_register_inputs(register):
    # Declare the step inputs our metrics ask for: a misspelt parameter then fails at start-up.
    register("batch", description="the input batch (n, ...)")
    register("labels", description="integer class labels (n,)")
    register("num_classes", description="number of classes (int)")


@mr.hookimpl
def metricreg_register_metrics(register):
    register(DUPLICATES)
    register(LABEL_ENTROPY)


@mr.hookimpl
def metricreg_on_alert(alert, monitor):
    # Called on metricreg's writer thread when a rule fires or clears: keep it quick.
    if alert.category != CATEGORY:
        return
    if alert.active:
        log.warning("data quality alert in %s: %s. %s", monitor.logdir, alert.message, alert.remedy)
    else:
        log.info("data quality alert cleared: %s", alert.message)
