"""Read event files back through TensorBoard's own Python loader."""

import json

from tensorboard.backend.event_processing import event_accumulator


def load(run_dir):
    acc = event_accumulator.EventAccumulator(
        str(run_dir), size_guidance={"scalars": 0, "tensors": 0, "histograms": 0, "images": 0}
    )
    acc.Reload()
    return acc


def scalars(run_dir):
    acc = load(run_dir)
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def latest_json(run_dir, tag):
    acc = load(run_dir)
    return json.loads(acc.Tensors(tag)[-1].tensor_proto.string_val[0])
