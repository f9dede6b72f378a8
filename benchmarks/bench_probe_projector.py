"""Cost of the linear probe and the projector against a training step, and against scikit-learn.

Anchor: one step of the overhead benchmark's loop (MLP 64 → 256 → 256 → 10, batch 256, AdamW, torch
CPU), shared with the other signal-cost scripts in signal_costs.py. Each piece is timed per due
call with ``time.thread_time`` (the calling thread's CPU time), best of ``--repeat`` medians, and
printed as a ratio to the training step and as its amortised share (cost / schedule interval /
step). The linear probe's fit is compared with scikit-learn's ``StandardScaler`` +
``RidgeClassifier`` on the same split (the test reference) as an anchor for the writer thread's
work.

Run: OMP_NUM_THREADS=1 python benchmarks/bench_probe_projector.py [--repeat N]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("METRICREG_DISABLE_PLUGIN_AUTOLOAD", "1")

import numpy as np
from signal_costs import anchor_step, per_call

from metricreg import projector as files
from metricreg.builtins import probe, projector


def linear_probe(n: int, rng: np.random.Generator, repeat: int, row) -> None:
    """The linear probe's training-thread copy and writer-thread fit at n rows, and the scikit-learn anchor."""
    centres = rng.standard_normal((10, 256))
    labels = rng.integers(0, 10, n)
    feats = (centres[labels] + 2.0 * rng.standard_normal((n, 256))).astype(np.float32)
    row(
        f"linear probe n={n} d=256 C=10: copy",
        per_call(lambda: probe.linear_accuracy((feats, labels)), 20, repeat),
        1000,
    )
    fit = per_call(lambda: probe._ridge_accuracy(feats, labels), 3, repeat)
    row(f"linear probe n={n} d=256 C=10: fit", fit, probe.PROBE_EVERY, "writer thread")
    try:
        from sklearn.linear_model import RidgeClassifier
        from sklearn.preprocessing import StandardScaler
    except ImportError:
        return
    held = probe.held_out_rows(n)

    def sk() -> None:
        scaler = StandardScaler().fit(feats[~held])
        clf = RidgeClassifier(alpha=probe.RIDGE_ALPHA * int((~held).sum()))
        clf.fit(scaler.transform(feats[~held]), labels[~held]).score(scaler.transform(feats[held]), labels[held])

    print(f"linear probe n={n}: metricreg fit / scikit-learn RidgeClassifier = {fit / per_call(sk, 3, repeat):.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    step = anchor_step(args.repeat)
    print(f"training step (anchor): {step * 1e3:.2f} ms")

    def row(name: str, seconds: float, every: int, where: str = "training thread") -> None:
        share = seconds / every / step
        print(f"{name:<44} {seconds * 1e3:8.2f} ms  {seconds / step:7.2f}x step  {share:7.2%} amortised ({where})")

    rng = np.random.default_rng(0)
    for n in (2000, 4096):
        linear_probe(n, rng, args.repeat, row)

    z = rng.standard_normal((4096, 256)).astype(np.float32)
    ids = rng.integers(0, 10, 4096)
    row("projector 4096x256 -> 1000 rows: copy", per_call(lambda: projector.projector((z, ids)), 20, args.repeat), 5000)
    with tempfile.TemporaryDirectory() as tmp:
        out = files.ProjectorFiles(tmp)
        steps = iter(range(10**9))
        write = per_call(
            lambda: out.write("train/projector", next(steps), projector.projector((z, ids))), 3, args.repeat
        )
        row("projector 1000x256: write files", write, projector.PROJECTOR_EVERY, "writer thread")
        folder = os.path.join(tmp, files.FOLDER, "train", "projector", "0")
        size = sum(os.path.getsize(os.path.join(folder, f)) for f in os.listdir(folder))
        print(f"projector 1000x256: {size / 1e6:.2f} MB on disk per write")


if __name__ == "__main__":
    main()
