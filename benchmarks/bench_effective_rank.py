"""Effective rank (RankMe) through metricreg's checked float32 Gram route vs torch.linalg.svdvals.

Data: 8192 × 512 float32 embeddings on the CPU (a typical probe batch; singular values spread
over three decades plus a mean offset). Both sides compute RankMe with the same formula
(pₖ = σₖ/‖σ‖₁ + 1e-7); the reference takes σ from ``torch.linalg.svdvals`` on the float32 input,
as a user would. Also timed: the float64 Gram route used before (numpy SYRK on the float64
cast), and the whole ``collapse`` family (two eigensolves; forced here).

The route (metricreg/host_spectrum.py): a float32 Gram of the centered rows, eigenvalues at or
below ν = 5·u·λ₁(Gc) read as zero, and the float32 answer kept only when the first-order bound on
the entropy error it implies is ≤ 1e-3; otherwise the float64 Gram. Accuracy is judged on the
METRICS against a float64 numpy SVD: RankMe, effective rank, α-ReQ, near-zero count, the
log-spectrum histogram and the collapse rule (RankMe < 1.5). ``--study`` adds the structured
inputs (rank-1, rank-k, isotropic, power laws, one dominant direction, n < d, n ≫ d, float16 /
bfloat16, digits MLP features) and the routes that were rejected.

Targets: >= 3x faster than svdvals (best-of wall times), RankMe agreement <= 1e-4.
Wall time is printed as best of ``--repeat`` and as the median of paired ratios (the variants
alternate, so a change in the machine's load hits both); process CPU time as well.
Run: python benchmarks/bench_effective_rank.py [--threads N] [--repeat N] [--study] [--blas-core SkylakeX]
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from collections.abc import Callable

os.environ.setdefault("METRICREG_DISABLE_PLUGIN_AUTOLOAD", "1")
if __name__ == "__main__" and "--threads" in sys.argv:  # BLAS pools read these at import time
    _n = sys.argv[sys.argv.index("--threads") + 1]
    for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[_var] = _n
if __name__ == "__main__" and "--blas-core" in sys.argv:  # OpenBLAS picks its kernels when numpy loads it
    os.environ["OPENBLAS_CORETYPE"] = sys.argv[sys.argv.index("--blas-core") + 1]

import numpy as np
import torch

from metricreg import arrays as A
from metricreg import host_spectrum as H
from metricreg.builtins import collapse as C
from metricreg.builtins.representation import alpha_from_log_spectrum

N, D = 8192, 512


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def cpu_timed(fn: Callable[[], object]) -> float:
    start = time.process_time()
    fn()
    return time.process_time() - start


def rankme_svdvals(z: torch.Tensor) -> float:
    s = torch.linalg.svdvals(z).double()
    p = s / s.sum() + A.RANKME_EPS
    return float(torch.exp(-(p * p.log()).sum()))


# ------------------------------------------------------------------------------ inputs


def _rotation(d: int, rng: np.random.Generator) -> np.ndarray:
    return np.linalg.qr(rng.standard_normal((d, d)))[0]


def _spectral(n: int, d: int, scales: np.ndarray, rng: np.random.Generator, mean: float = 0.0) -> np.ndarray:
    return ((rng.standard_normal((n, d)) * scales) @ _rotation(d, rng).T + mean).astype(np.float32)


def bench_matrix() -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    basis, _ = torch.linalg.qr(torch.randn(D, D, generator=gen))
    scales = torch.logspace(0, -3, D)
    return ((torch.randn(N, D, generator=gen) * scales) @ basis.T + 0.1).float().contiguous()


def digits_features() -> dict[str, np.ndarray]:
    """Penultimate ReLU features of a small MLP on scikit-learn's digits, at init and trained."""
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x = torch.tensor(x / 16.0, dtype=torch.float32)
    y = torch.tensor(y)
    torch.manual_seed(0)
    body = torch.nn.Sequential(torch.nn.Linear(64, 256), torch.nn.ReLU(), torch.nn.Linear(256, 256), torch.nn.ReLU())
    head = torch.nn.Linear(256, 10)
    out = {}
    with torch.no_grad():
        out["digits MLP init 1797x256"] = body(x).numpy().copy()
    opt = torch.optim.Adam([*body.parameters(), *head.parameters()], lr=1e-3)
    for _ in range(300):
        loss = torch.nn.functional.cross_entropy(head(body(x)), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        out["digits MLP trained"] = body(x).numpy().copy()
    return out


def structured_cases() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    n, d = N, D
    half = rng.standard_normal((n, 256)) @ _rotation(d, rng)[:256]
    cases = {
        "benchmark (logspace + 0.1)": bench_matrix().numpy(),
        "rank-1, mean 3": np.outer(rng.standard_normal(n) + 3, rng.standard_normal(d)),
        "rank-1, zero mean": np.outer(rng.standard_normal(n), rng.standard_normal(d)),
        "constant rows": np.tile(rng.standard_normal(d), (n, 1)),
        "rank-10": rng.standard_normal((n, 10)) @ rng.standard_normal((10, d)),
        "rank-1 + 1e-4 noise": np.outer(rng.standard_normal(n) + 1, rng.standard_normal(d))
        + 1e-4 * rng.standard_normal((n, d)),
        "isotropic": rng.standard_normal((n, d)),
        "isotropic in 256 of 512": half,
        "power law k^-1": _spectral(n, d, np.arange(1, d + 1) ** -1.0, rng),
        "power law k^-2": _spectral(n, d, np.arange(1, d + 1) ** -2.0, rng),
        "mean 100 + isotropic": rng.standard_normal((n, d)) + 100.0,
        "one direction x1000": _spectral(n, d, np.r_[1000.0, np.ones(d - 1)], rng),
        "ReLU(logspace 0..-2)": np.maximum(_spectral(n, d, np.logspace(0, -2, d), rng), 0),
        "n<d 256x1024": _spectral(256, 1024, np.logspace(0, -2, 1024), rng, 0.5),
        "n>>d 25600x128": _spectral(25600, 128, np.logspace(0, -3, 128), rng, 0.1),
        "rank-3 25600x256": rng.standard_normal((25600, 3)) @ rng.standard_normal((3, 256)) + 1.0,
    }
    cases = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in cases.items()}
    bench = bench_matrix()
    cases["benchmark as float16"] = bench.half().float().numpy()
    cases["benchmark as bfloat16"] = bench.bfloat16().float().numpy()
    cases.update(digits_features())
    return cases


# ----------------------------------------------------------------------- metric errors

METRICS = ("rankme", "effective_rank", "alpha", "near_zero")


def metrics_from(s: np.ndarray, sc: np.ndarray, n: int, d: int) -> dict[str, object]:
    """The collapse family's spectral members, α-ReQ and the log spectrum, from σ and centered σ."""
    out: dict[str, object] = {k: float(v) for k, v in C._stats_from_spectra(np, s, sc, n, d).items()}
    log_spectrum = C._log_spectrum(np, sc)
    out["alpha"] = float(alpha_from_log_spectrum(np, log_spectrum))
    out["log_spectrum"] = log_spectrum
    return out


def reference(z: np.ndarray) -> dict[str, object]:
    z64 = z.astype(np.float64)
    n, d = z.shape
    s = np.linalg.svd(z64, compute_uv=False)
    sc = np.linalg.svd(z64 - z64.mean(axis=0), compute_uv=False)[: max(1, min(n - 1, d))]
    return metrics_from(s, sc, n, d)


def route_checked(z: np.ndarray) -> tuple[dict[str, object], str]:
    """metricreg's route: the checked float32 Gram, else the float64 Gram."""
    n, d = z.shape
    fast = H.f32_spectra(z, True, A.RANKME_EPS)
    if fast is not None:
        s, sc = fast
        return metrics_from(s, sc[: max(1, min(n - 1, d))], n, d), "f32"
    g, gc, _ = A.gram_matrices(z.astype(np.float64), np)
    s = A.singular_values_from_gram(g, np)
    return metrics_from(s, A.centered_spectrum_from_gram(gc, n, d, np), n, d), "f64"


def route_f32(z: np.ndarray, floor: bool) -> dict[str, object]:
    """The float32 Gram of the centered rows, unchecked; ``floor``: eigenvalues <= 5·u·λ₁ read as 0."""
    n, d = z.shape
    parts = H._Parts(z)
    lam_c = np.linalg.eigvalsh(parts.centered())
    nu = H.F32_EIG_NOISE * H.U32 * lam_c[-1] if floor else 0.0
    s = H._floored_sv(np.linalg.eigvalsh(parts.uncentered()), nu)
    return metrics_from(s, H._floored_sv(lam_c, nu)[: max(1, min(n - 1, d))], n, d)


def errors(got: dict[str, object], ref: dict[str, object]) -> dict[str, float]:
    """Relative errors of RankMe and effective rank, |Δα|, Δ near-zero count, histogram bins moved."""
    out = {
        "rankme": abs(float(got["rankme"]) / float(ref["rankme"]) - 1),  # type: ignore[arg-type]
        "effective_rank": abs(float(got["effective_rank"]) / float(ref["effective_rank"]) - 1),  # type: ignore[arg-type]
        "alpha": abs(float(got["alpha"]) - float(ref["alpha"])) if math.isfinite(float(ref["alpha"])) else 0.0,  # type: ignore[arg-type]
        "near_zero": float(got["near_zero"]) - float(ref["near_zero"]),  # type: ignore[arg-type]
    }
    # Histogram: share of values in a different half-decade bin, above the collapsed range
    # (log10 σ/σ₁ < -3 is the "collapsed" lump: float64 puts rounding noise of the float32
    # data there, at -7 to -9; any route's exact zeros land at the -12 clamp).
    a, b = np.asarray(got["log_spectrum"]), np.asarray(ref["log_spectrum"])
    live = b >= -3.0
    moved = np.floor(2 * a[live]) != np.floor(2 * b[live])
    lump = (a < -3.0) != (b < -3.0)
    out["hist"] = float((moved.sum() + lump.sum()) / len(b))
    out["rule"] = float((float(got["rankme"]) < 1.5) != (float(ref["rankme"]) < 1.5))  # type: ignore[arg-type]
    return out


def study() -> None:
    print("\nmetric errors against a float64 numpy SVD (RankMe, erank: relative; α: absolute;")
    print("near-zero: count difference; hist: share of the log spectrum moved to another half-decade bin;")
    print("rule: RankMe < 1.5 decided differently)")
    header = f"{'input':28s} {'route':>5s} | {'checked route':^46s} | {'f32, no floor':^22s} | {'f32 + floor':^22s}"
    print(header)
    print(
        f"{'':28s} {'':5s} | {'RankMe':>8s} {'erank':>8s} {'α':>8s} {'nz':>4s} {'hist':>6s} {'rule':>5s} | "
        f"{'RankMe':>8s} {'erank':>8s} {'rule':>4s} | {'RankMe':>8s} {'erank':>8s} {'rule':>4s}"
    )
    worst: dict[str, dict[str, float]] = {"f32": {}, "f64": {}}
    for name, z in structured_cases().items():
        ref = reference(z)
        got, route = route_checked(z)
        e = errors(got, ref)
        w = worst[route]
        for k, v in e.items():
            w[k] = max(w.get(k, 0.0), abs(v))
        raw = errors(route_f32(z, floor=False), ref)
        floored = errors(route_f32(z, floor=True), ref)
        print(
            f"{name:28s} {route:>5s} | {e['rankme']:8.1e} {e['effective_rank']:8.1e} {e['alpha']:8.1e} "
            f"{e['near_zero']:+4.0f} {e['hist']:6.3f} {'FLIP' if e['rule'] else 'same':>5s} | "
            f"{raw['rankme']:8.1e} {raw['effective_rank']:8.1e} {'FLIP' if raw['rule'] else 'same':>4s} | "
            f"{floored['rankme']:8.1e} {floored['effective_rank']:8.1e} {'FLIP' if floored['rule'] else 'same':>4s}",
            flush=True,
        )
    for route, w in worst.items():
        if w:
            print(f"worst over inputs taking the {route} route: " + ", ".join(f"{k} {v:.1e}" for k, v in w.items()))


def profile(repeat: int) -> None:
    """Where the route's CPU time goes (RankMe alone, median over ``repeat``), and the float32 eigensolve.

    The float32 eigensolve is the one idea left that would cut the eigensolve (~40% faster), but
    its error is ~u·λ₁ of the matrix it solves, the uncentered G (λ₁(G) ≈ 5·λ₁(Gc) here): added
    to ν, the entropy bound refuses this very input, so it is printed, not taken.
    """
    zn = bench_matrix().numpy()
    n, _ = zn.shape
    H.float32_gram_trusted()
    steps: dict[str, list[float]] = {}
    for _ in range(repeat):
        clock = time.process_time()

        def lap(name: str) -> None:
            nonlocal clock
            now = time.process_time()
            steps.setdefault(name, []).append(now - clock)
            clock = now

        m = zn[:: max(1, n // 256)].mean(axis=0, dtype=np.float64).astype(np.float32)
        zs = zn - m
        lap("shift by a subsample mean")
        c = np.ones(n, dtype=np.float32) @ zs
        lap("column sums c (float32)")
        gs = zs.T @ zs
        lap("float32 SYRK ZsᵀZs")
        parts = H._Parts.__new__(H._Parts)
        parts.n, parts.d, parts.zs, parts.m = n, zn.shape[1], zs, m.astype(np.float64)
        parts.c, parts.gs = c.astype(np.float64), gs.astype(np.float64)
        ok = parts.finite and parts.dead >= 0
        lap("widen, finite and dead checks")
        top = parts.centered_top()
        lap("λ₁(Gc) by power iteration")
        g = parts.uncentered()
        lap("uncentered G by corrections")
        lam = H.eigvalsh(g)
        lap("float64 eigensolve (dsyevd)")
        nu = H.F32_EIG_NOISE * H.U32 * top
        ok = ok and H.entropy_error_bound(lam, nu, A.RANKME_EPS) <= H.F32_ENTROPY_TOL
        A.entropy_rank(H._floored_sv(lam, nu), np)
        lap("bound, floor, entropy")
    total = sum(statistics.median(v) for v in steps.values())
    print(f"\nCPU time of the float32 route, RankMe alone, {N} x {D} (median of {repeat}):")
    for name, v in steps.items():
        print(f"  {name:32s} {statistics.median(v) * 1e3:6.2f} ms  {statistics.median(v) / total:6.1%}")
    print(f"  {'total':32s} {total * 1e3:6.2f} ms")
    g32 = g.astype(np.float32)
    try:  # numpy.linalg computes float32 input in float64; its gufunc runs LAPACK's ssyevd
        from numpy.linalg import _umath_linalg

        def solve32() -> np.ndarray:
            return _umath_linalg.eigvalsh_up(g32, signature="f->f")
    except (ImportError, AttributeError, TypeError):

        def solve32() -> np.ndarray:
            return np.linalg.eigvalsh(g32)

    t32 = statistics.median(cpu_timed(solve32) for _ in range(repeat))
    lam32 = np.asarray(solve32(), dtype=np.float64)
    err = float(np.abs(lam32 - lam).max() / (H.U32 * lam[-1]))
    nu32 = nu + err * H.U32 * float(lam[-1])
    print(
        f"float32 eigensolve (numpy {np.__version__}): {t32 * 1e3:.2f} ms; its error {err:.1f}·u·λ₁(G), λ₁(G)/λ₁(Gc) = "
        f"{lam[-1] / top:.1f}; entropy bound {H.entropy_error_bound(lam, nu, A.RANKME_EPS):.1e} -> "
        f"{H.entropy_error_bound(lam32, nu32, A.RANKME_EPS):.1e} with it (limit {H.F32_ENTROPY_TOL:.0e})"
    )


def blas_core() -> str:
    """The kernel set numpy's OpenBLAS runs (threadpoolctl, when installed), and a hint when it is AVX2 on an AVX-512 CPU."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "unknown (threadpoolctl not installed)"
    cores = [i.get("architecture") for i in threadpool_info() if i.get("internal_api") == "openblas"]
    core = cores[0] if cores else "not OpenBLAS"
    try:
        with open("/proc/cpuinfo") as f:
            avx512 = " avx512f" in f.read()
    except OSError:
        avx512 = False
    if avx512 and core in ("Haswell", "Zen"):
        return f"OpenBLAS {core} (AVX2) on an AVX-512 CPU: --blas-core SkylakeX runs the SYRK ~1.75x faster"
    return f"OpenBLAS {core}" if cores else core


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=None, help="torch and BLAS threads (default: the libraries')")
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--study", action="store_true", help="metric errors on structured inputs and rejected routes")
    parser.add_argument("--profile", action="store_true", help="CPU time per step of the route")
    parser.add_argument(
        "--blas-core",
        default=None,
        help="OPENBLAS_CORETYPE for numpy's OpenBLAS (e.g. SkylakeX: its AVX-512 kernels, which it does not "
        "pick by itself on AMD Zen 4); torch's svdvals uses MKL and is unaffected",
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    z = bench_matrix()
    zn = z.numpy()

    ours = float(A.rankme(z))
    ref = rankme_svdvals(z)
    f64 = float(A.rankme(zn.astype(np.float64)))
    t_ours, t_svd, t_f64, t_family, paired = [], [], [], [], []
    for _ in range(args.repeat):
        a = timed(lambda: float(A.rankme(z)))
        b = timed(lambda: rankme_svdvals(z))
        t_f64.append(timed(lambda: float(A.rankme(zn.astype(np.float64)))))
        t_family.append(timed(lambda: [float(v) for v in C.collapse(z).values()]))
        t_ours.append(a)
        t_svd.append(b)
        paired.append(b / a)
    c_ours_all, c_svd_all = [], []
    for _ in range(args.repeat):  # CPU time, paired the same way (a busy machine inflates it less)
        c_ours_all.append(cpu_timed(lambda: float(A.rankme(z))))
        c_svd_all.append(cpu_timed(lambda: rankme_svdvals(z)))
    c_ours, c_svd = min(c_ours_all), min(c_svd_all)
    c_paired = statistics.median(b / a for a, b in zip(c_ours_all, c_svd_all, strict=True))
    best_ours, best_svd = min(t_ours), min(t_svd)
    ratio = best_svd / best_ours
    exact = reference(zn)
    took = "float32 Gram (checked)" if H.f32_spectra(zn, False, A.RANKME_EPS) is not None else "float64 Gram (fallback)"
    rel = abs(ours / float(exact["rankme"]) - 1)  # type: ignore[arg-type]
    family = errors(route_checked(zn)[0], exact)

    print(
        f"data                          : {N} x {D} float32, torch {torch.__version__}, {torch.get_num_threads()} threads"
    )
    print(f"numpy's BLAS kernels          : {blas_core()}")
    print(f"RankMe, metricreg route       : {ours:.6f}   {best_ours * 1e3:8.1f} ms   ({took})")
    print(f"RankMe, float64 Gram route    : {f64:.6f}   {min(t_f64) * 1e3:8.1f} ms   (the route before)")
    print(f"RankMe, torch.linalg.svdvals  : {ref:.6f}   {best_svd * 1e3:8.1f} ms")
    print(f"collapse family (9 members)   :              {min(t_family) * 1e3:8.1f} ms")
    print(f"speed ratio svdvals / ours    : {ratio:6.2f}x   best-of-{args.repeat} wall times (target >= 3x)")
    print(f"  median of paired ratios     : {statistics.median(paired):6.2f}x")
    print(f"  process CPU time, best-of   : {c_svd / c_ours:6.2f}x   ({c_svd * 1e3:.1f} / {c_ours * 1e3:.1f} ms)")
    print(f"  CPU time, median of pairs   : {c_paired:6.2f}x")
    print(f"  float64 route, best-of      : {best_svd / min(t_f64):6.2f}x")
    print(
        f"RankMe error vs float64 SVD   : {rel:.1e} ours, {abs(ref / float(exact['rankme']) - 1):.1e} svdvals (target <= 1e-4)"
    )  # type: ignore[arg-type]
    print(
        f"family errors vs float64 SVD  : erank {family['effective_rank']:.1e}, α-ReQ {family['alpha']:.1e}, "
        f"near-zero {family['near_zero']:+.0f}, histogram bins moved {family['hist']:.3f}"
    )
    ok = ratio >= 3.0 and rel <= 1e-4
    print("PASS" if ok else "FAIL")
    if args.profile:
        profile(args.repeat)
    if args.study:
        study()


if __name__ == "__main__":
    main()
