"""Effective rank (RankMe) through the float64 Gram + eigvalsh route vs torch.linalg.svdvals.

Data: 8192 × 512 float32 embeddings on the CPU (a typical probe batch). Both sides compute
RankMe with the same formula (pₖ = σₖ/‖σ‖₁ + 1e-7); the reference takes σ from
``torch.linalg.svdvals`` on the float32 input, as a user would. Also timed: the whole
``collapse`` family (RankMe, centered effective rank, std, mean cosine, near-zero count),
which costs one Gram matrix of the centered rows and two eigensolves.

Targets: >= 3x faster than svdvals, relative agreement <= 1e-4.
The numbers depend on the BLAS (numpy's OpenBLAS does the SYRK, torch's MKL/OpenBLAS the SVD)
and on the machine being otherwise idle: the route is GEMM-bound, the SVD mostly memory-bound.
Run: python benchmarks/bench_effective_rank.py [--threads N] [--repeat N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("METRICREG_DISABLE_PLUGIN_AUTOLOAD", "1")
if __name__ == "__main__" and "--threads" in sys.argv:  # BLAS pools read these at import time
    _n = sys.argv[sys.argv.index("--threads") + 1]
    for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[_var] = _n

import torch

from metricreg import arrays as A
from metricreg.builtins.collapse import collapse

N, D = 8192, 512


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def rankme_svdvals(z: torch.Tensor) -> float:
    s = torch.linalg.svdvals(z).double()
    p = s / s.sum() + A.RANKME_EPS
    return float(torch.exp(-(p * p.log()).sum()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=None, help="torch and BLAS threads (default: the libraries')")
    parser.add_argument("--repeat", type=int, default=9)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(0)
    # Realistic spectrum: a decaying scale per direction, a mean offset, float32.
    basis, _ = torch.linalg.qr(torch.randn(D, D, generator=gen))
    scales = torch.logspace(0, -3, D)
    z = ((torch.randn(N, D, generator=gen) * scales) @ basis.T + 0.1).float().contiguous()

    ours = float(A.rankme(z))
    ref = rankme_svdvals(z)
    # Warm-up done above. The variants alternate within each repetition, so a change in the
    # machine's load hits both; best-of-N per variant, and the median of the paired ratios.
    t_ours, t_svd, t_family, paired = [], [], [], []
    for _ in range(args.repeat):
        a = timed(lambda: float(A.rankme(z)))
        b = timed(lambda: rankme_svdvals(z))
        t_family.append(timed(lambda: [float(v) for v in collapse(z).values()]))
        t_ours.append(a)
        t_svd.append(b)
        paired.append(b / a)
    t_ours, t_svd, t_family = min(t_ours), min(t_svd), min(t_family)
    rel = abs(ours - ref) / abs(ref)
    ratio = t_svd / t_ours
    print(
        f"data                          : {N} x {D} float32, torch {torch.__version__}, {torch.get_num_threads()} threads"
    )
    print(f"RankMe, Gram + eigvalsh (f64) : {ours:.6f}   {t_ours * 1e3:8.1f} ms")
    print(f"RankMe, torch.linalg.svdvals  : {ref:.6f}   {t_svd * 1e3:8.1f} ms")
    print(f"collapse family (7 members)   :              {t_family * 1e3:8.1f} ms")
    print(f"speed ratio svdvals / ours    : {ratio:6.2f}x   best-of-{args.repeat} times (target >= 3x)")
    print(f"  median of paired ratios     : {statistics.median(paired):6.2f}x")
    print(f"relative agreement            : {rel:.2e}   (target <= 1e-4)")
    ok = ratio >= 3.0 and rel <= 1e-4
    print("PASS" if ok else "FAIL")


if __name__ == "__main__":
    main()
