"""Cost of the informational signals (heads, init_distance, levels, probe, masking, momentum target)
against a training step.

Anchor: one step of the overhead benchmark's loop (MLP 64 → 256 → 256 → 10, batch 256, AdamW, torch
CPU; signal_costs.py, shared with the other signal-cost scripts). Each signal is timed per due call
with ``time.thread_time`` (the calling thread's CPU time: robust to other processes on the cores),
best of ``--repeat`` medians, and printed as a ratio to the training step and as its amortised
share (cost / schedule interval / step). The k-NN probe is also compared with scikit-learn's
brute-force cosine ``NearestNeighbors`` (the same leave-one-out k = 20 neighbours) as an anchor for
the writer thread's work.

Run: OMP_NUM_THREADS=1 python benchmarks/bench_informational.py [--repeat N]
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("METRICREG_DISABLE_PLUGIN_AUTOLOAD", "1")

import numpy as np
import torch
from signal_costs import Anchor, CostTable, per_call

from metricreg.builtins import ema, heads, init_distance, levels, masking, probe
from metricreg.builtins.optimization import derive_grads


def probe_rows(n: int, rng: np.random.Generator, repeat: int, row) -> None:
    """The probe's training-thread copy and writer-thread k-NN at n rows, and the scikit-learn anchor."""
    feats = rng.standard_normal((n, 256)).astype(np.float32)
    labels = rng.integers(0, 10, n)
    row(f"probe n={n} d=256: copy", per_call(lambda: probe.knn_accuracy((feats, labels)), 20, repeat), 1000)
    knn = per_call(lambda: probe._knn(feats, labels), 2, repeat)
    row(f"probe n={n} d=256: k-NN", knn, 1000, "writer thread")
    try:
        from sklearn.neighbors import NearestNeighbors
    except ImportError:
        return

    def sk() -> None:
        nn = NearestNeighbors(n_neighbors=21, metric="cosine", algorithm="brute").fit(feats)
        nn.kneighbors(feats)

    print(f"probe n={n}: metricreg k-NN / scikit-learn brute cosine kneighbors = {knn / per_call(sk, 2, repeat):.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    anchor = Anchor()
    net = anchor.net
    table = CostTable(anchor.seconds(args.repeat), width=38)
    row = table.row
    grads = derive_grads(net)
    state: dict = {}
    rng = np.random.default_rng(0)
    targets = {f"l{i}": torch.from_numpy(rng.standard_normal((256, 64)).astype(np.float32)) for i in range(3)}
    pairs = levels.derive_pairs({k: t + 0.1 for k, t in targets.items()}, targets)
    row(
        "heads (2 heads)", per_call(lambda: heads.head_stats({"a": "0", "b": net[4]}, grads, net), 50, args.repeat), 100
    )
    row("init_distance", per_call(lambda: init_distance.init_distance(net, state=state), 50, args.repeat), 100)
    row(
        "levels (3 x 256x64, cosine+nmse)",
        per_call(lambda: [(levels.level_cosine(p), levels.level_nmse(p)) for p in pairs.values()], 50, args.repeat),
        100,
    )
    mask = torch.rand(256, 196) < 0.75  # an I-JEPA-sized batch of patch masks
    row("masking (256 x 196 bool mask)", per_call(lambda: masking.masking(mask), 200, args.repeat), 10)
    m = torch.tensor(0.996, dtype=torch.bfloat16)
    row("ema momentum_target/error", per_call(lambda: ema.momentum_schedule(m, 0.9962), 200, args.repeat), 100)
    for n in (1024, 4096):
        probe_rows(n, rng, args.repeat, row)

    table.print()


if __name__ == "__main__":
    main()
