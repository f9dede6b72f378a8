"""Representation collapse: RankMe, centered effective rank, scale and direction statistics.

Input: ``embeddings``, an (n, d) array (or (..., d), flattened to rows), or a dict of them
(``{"context": z1, "target": z2}``: the metrics fan out per key). One family, one spectrum:

=====================  ===========================================================================
member                 definition
=====================  ===========================================================================
``rankme``             RankMe (Garrido et al. 2023): exp(−Σ pₖ log pₖ), pₖ = σₖ/‖σ‖₁ + 1e-7, σ the
                       singular values of the **raw, uncentered** Z. ≈ 1 at complete collapse.
``rankme_ratio``       rankme / min(n, d). Healthy ≈ 1 (0.80 at n = d, 0.99 at n = 10d for Gaussian data).
``effective_rank``     the same entropy rank on the **centered** Z (Roy & Vetterli): sees dimensional
                       collapse through a mean offset, but is scale-invariant (blind to complete collapse).
``effective_rank_ratio`` erank / min(n − 1, d).
``std``                mean over channels of the std over samples of ẑ = z/‖z‖, times √d (SimSiam):
                       1 when isotropic, → 0 at complete collapse.
``mean_cos``           mean pairwise cosine, (‖Σᵢ ẑᵢ‖² − Σᵢ‖ẑᵢ‖²)/(n(n − 1)), O(nd): ≈ 0 healthy, → 1.
``norm``               mean L2 norm of the rows: the scale every other member is blind to (norms
                       collapsing to 0 is a collapse too).
``near_zero``          #{k : σₖ/σ₁ < 1e-3} on the centered spectrum: the number of collapsed directions.
``near_zero_ratio``    near_zero / min(n − 1, d).
=====================  ===========================================================================

``collapse/spectrum`` (histogram, every 1000 steps): log10(σₖ/σ₁) of the centered spectrum,
clamped at −12; collapsed directions form a separate lump far left.

Route: rows capped at 25,600 (fixed pseudo-random selection), cast to float64, one Gram
matrix (ZᵀZ or ZZᵀ, whichever is smaller) of the centered rows, the uncentered Gram by an
exact low-rank correction, then ``eigvalsh``. Float32 host rows first try the same in float32
products, kept only where a bound on its error allows (metricreg.host_spectrum: complete collapse
and steep spectra stay float64). Non-finite input gives NaN members. Host data
(numpy, torch CPU) and JAX without x64 are snapshotted on the training thread (an O(n·d) copy)
and the whole family is computed in numpy float64 on the writer thread; on torch CUDA the Gram
matrix is formed on the device and only the eigensolver runs on the host (see metricreg.arrays).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from metricreg import arrays as A
from metricreg import host_spectrum
from metricreg.hookspecs import hookimpl
from metricreg.spec import NEVER_CLEARS, Health, Metric

NEAR_ZERO_REL = 1e-3
SPECTRAL = ("rankme", "rankme_ratio", "effective_rank", "effective_rank_ratio", "near_zero", "near_zero_ratio")
SPECTRUM_FLOOR_LOG10 = -12.0
_CACHE_KEY = "collapse/spectrum_cache"

_REMEDY_DIM = (
    "Embeddings use only part of their dimensions. For joint-embedding SSL: strengthen the "
    "variance/covariance or negative terms, lower the learning rate or weight decay, check that the "
    "augmentations do not make some dimensions predictable noise, and make sure a predictor or "
    "stop-gradient is in place."
)
_REMEDY_COMPLETE = (
    "All embeddings map to (nearly) one point: the objective has a trivial solution. Add or fix the "
    "collapse-prevention mechanism (negatives, predictor + stop-gradient, EMA teacher, variance "
    "regularisation), lower the learning rate, and restart from the last healthy checkpoint."
)

# Which levels are healthy depends on the architecture: at random initialisation ReLU features
# already have RankMe/min(n, d) ≈ 0.4 and a mean cosine ≈ 0.7, and healthy SSL runs lose much
# of their initial rank. So the spread (std) and the scale (norm) are judged against the run's
# own best value (a *fall*), absolute floors are kept only for states that are collapse whatever
# the model (RankMe near 1, std·√d below 0.01), and the rank ratios are informational
# (docs/metrics.md has the calibration runs).
HEALTH: dict[str, Health] = {
    "rankme": Health(
        category="collapse",
        critical_below=1.5,
        direction="higher_is_better",
        title="RankMe",
        description="RankMe: entropy effective rank of the uncentered embedding singular values "
        "(Garrido et al. 2023). ≈ 1 means complete collapse.",
        remedy=_REMEDY_COMPLETE,
    ),
    "rankme_ratio": Health(
        category="collapse",
        direction="higher_is_better",
        title="RankMe / min(n, d)",
        description="RankMe divided by min(n, d) (finite-sample ceiling 0.80 at n = d, 0.99 at n = 10d for "
        "Gaussian data). Informational: healthy runs lose as much rank as dimensional collapse does (BYOL to "
        "0.55×, DINO to 0.16× of step 0; a healthy 2-class classifier's penultimate features fall to 0.34× "
        "their best after warm-up as the classes separate, the same fall as a learning rate ×100 in BYOL).",
        remedy=_REMEDY_DIM,
    ),
    "effective_rank": Health(
        category="collapse",
        direction="higher_is_better",
        title="centered effective rank",
        description="Effective rank of the centered embeddings (Roy & Vetterli 2007). Unaffected by a "
        "mean offset, but scale-invariant: it can stay high while the cloud shrinks to a point.",
    ),
    "effective_rank_ratio": Health(
        category="collapse",
        direction="higher_is_better",
        title="centered effective rank / min(n−1, d)",
        description="Centered effective rank divided by min(n − 1, d). Informational, like rankme_ratio: "
        "dimensional collapse shows here first, but healthy runs also fall from their random-init rank.",
        remedy=_REMEDY_DIM,
    ),
    # Judged as a fall within one due interval: collapse takes the spread to 0.07–0.11× its previous
    # point at once (predictor/stop-gradient removed, from the start or mid-run), while healthy
    # runs fall at most to 0.49× per interval (DINO's first interval). A fall from the run's best
    # (the first rule, 0.25×) does not separate: DINO warmed up over 500 steps drifts to 0.17× its
    # best while healthy (k-NN 0.89). Sticky: a run that collapsed stays critical while the spread
    # keeps shrinking more slowly.
    "std": Health(
        category="collapse",
        baseline="previous",
        baseline_points=1,
        critical_below_frac=0.25,
        critical_below=0.01,
        clear_after=NEVER_CLEARS,
        direction="higher_is_better",
        title="std of normalised embeddings × √d",
        description="Mean per-channel std of L2-normalised embeddings times √d (SimSiam): 1 when isotropic, "
        "→ 0 when all embeddings point the same way. Its healthy level depends on the architecture "
        "(0.55 for ReLU features at initialisation, 0.08–0.4 for DINO-style features) and drifts down "
        "in healthy runs, so it is judged as a sudden fall: critical below 0.25× its previous point "
        "(one due interval), or below 0.01 whatever came before (mean cosine above 0.9999). Blind to "
        "dimensional collapse.",
        remedy=_REMEDY_COMPLETE,
    ),
    "mean_cos": Health(
        category="collapse",
        direction="lower_is_better",
        title="mean pairwise cosine",
        description="Mean cosine similarity between distinct embeddings: ≈ 0 for centred features "
        "(≈ 0.32 for ReLU(N(0, 1)) features, 0.7 and more for real networks at initialisation), → 1 at "
        "complete collapse. Carries the same information as std (std·√d ≤ √(1 − mean_cos)), which "
        "holds the rule.",
    ),
    "norm": Health(
        category="collapse",
        baseline="best",
        critical_below_frac=0.25,
        direction="higher_is_better",
        title="mean embedding norm",
        description="Mean L2 norm of the embeddings: the scale the other members are blind to. Critical "
        "when it falls below 0.25× the run's best (embeddings shrinking to the origin: 0.05–0.07× one due "
        "interval after VICReg loses its variance term, 0.14–0.15× after weight decay hits a cosine-loss "
        "projection head; healthy benchmark runs never fell below 0.5× their best).",
        remedy=_REMEDY_COMPLETE,
    ),
    "near_zero": Health(
        category="collapse",
        direction="lower_is_better",
        title="collapsed directions",
        description="Number of centered singular values below 1e-3 × the largest: directions the "
        "embeddings no longer use.",
    ),
    "near_zero_ratio": Health(
        category="collapse",
        direction="lower_is_better",
        title="collapsed directions / min(n−1, d)",
        description="Share of the centered directions whose singular value is below 1e-3 × the largest "
        "(variance below 1e-6 × the top one). Informational: healthy VICReg and DINO runs on digits "
        "leave 25–50% of their directions that low.",
        remedy=_REMEDY_DIM,
    ),
}


def _cache(shared: dict | None, step: int | None, z: Any) -> dict | None:
    """Per-step cache of a spectrum computation, keyed by the embedding array's identity."""
    if shared is None:
        return None
    cache = shared.get(_CACHE_KEY)
    if cache is None or cache.get("step") != step:
        cache = {"step": step, "entries": {}}
        shared[_CACHE_KEY] = cache
    return cache["entries"]


def _stats_from_spectra(xp: Any, s: Any, sc: Any, n: int, d: int) -> dict[str, Any]:
    k = min(n, d)
    kc = max(1, min(n - 1, d))
    rankme = A.entropy_rank(s, xp)
    erank = A.entropy_rank(sc, xp)
    near = xp.sum(xp.astype(sc <= NEAR_ZERO_REL * sc[0], s.dtype))
    return {
        "rankme": rankme,
        "rankme_ratio": rankme / float(k),
        "effective_rank": erank,
        "effective_rank_ratio": erank / float(kc),
        "near_zero": near,
        "near_zero_ratio": near / float(kc),
    }


def _log_spectrum(xp: Any, sc: Any) -> Any:
    rel = sc / xp.clip(sc[0], 1e-30, None)
    return xp.clip(xp.log10(xp.clip(rel, 1e-30, None)), SPECTRUM_FLOOR_LOG10, None)


def _direction_stats(xp: Any, z: Any) -> dict[str, Any]:
    """std·√d of L2-normalised rows and the mean pairwise cosine, O(nd), on z's device."""
    n, d = z.shape
    norms = xp.linalg.vector_norm(z, axis=1, keepdims=True)
    zh = z / xp.clip(norms, 1e-12, None)
    std = xp.mean(xp.std(zh, axis=0, correction=1 if n > 1 else 0)) * math.sqrt(d)
    total = xp.sum(zh, axis=0)
    num = xp.sum(total * total) - xp.sum(zh * zh)
    mean_cos = num / float(n * (n - 1)) if n > 1 else xp.full((), math.nan, dtype=z.dtype, device=A.device_of(z))
    return {"std": std, "mean_cos": mean_cos, "norm": xp.mean(norms)}


def analyse(z: Any, shared: dict | None = None, step: int | None = None, max_rows: int | None = A.MAX_ROWS) -> dict:
    """Spectrum-derived members plus the log spectrum for one embedding matrix (cached per step)."""
    entries = _cache(shared, step, z)
    key = (id(z), tuple(getattr(z, "shape", ())))
    if entries is not None and key in entries:
        return entries[key]
    xp = A.namespace(z)
    zm = A.as_matrix(z, max_rows, xp)
    n, d = zm.shape
    if A.host_route(zm):
        result = _analyse_on_host(zm, n, d, fresh=max_rows is not None and math.prod(z.shape[:-1]) > max_rows)
        if entries is not None:
            entries[key] = result
        return result
    zf = A.to_float(zm, xp)
    g, gc, bad = A.gram_matrices(zf, xp)
    out: dict[str, Any] = {}
    if A.needs_host_eig(g):
        job = A.HostJob({"g": g, "gc": gc, "bad": bad}, lambda h: _spectral_on_host(h["g"], h["gc"], h["bad"], n, d))
        spectral = A.deferred_family(job, SPECTRAL)
        log_spectrum: Any = A.Deferred(job, "log_spectrum")
    else:
        s = A.singular_values_from_gram(g, xp)
        sc = A.centered_spectrum_from_gram(gc, n, d, xp)
        spectral = {m: xp.where(bad, xp.nan, v) for m, v in _stats_from_spectra(xp, s, sc, n, d).items()}
        log_spectrum = xp.where(bad, xp.nan, _log_spectrum(xp, sc))
    out.update(spectral)
    out.update({m: xp.where(bad, xp.nan, v) for m, v in _direction_stats(xp, zf).items()})
    result = {"members": out, "log_spectrum": log_spectrum, "n": n, "d": d}
    if entries is not None:
        # The step's inputs hold the array for the whole step, so its id is not reused within it.
        entries[key] = result
    return result


ORDER = (*SPECTRAL[:4], "std", "mean_cos", "norm", *SPECTRAL[4:])


def _spectral_on_host(g: Any, gc: Any, bad: Any, n: int, d: int) -> dict[str, Any]:
    """The spectrum members and the log spectrum from the two Gram matrices, in numpy float64.

    Runs on the writer thread: for CUDA inputs (the eigensolver would sync) and, through
    :func:`_family_on_host`, for host data. Non-finite input gives NaN members.
    """
    if bool(bad):
        res: dict[str, Any] = {m: math.nan for m in SPECTRAL}
        res["log_spectrum"] = np.full(max(1, min(n - 1, d)), np.nan)
        return res
    s = A.singular_values_from_gram(g, np)
    sc = A.centered_spectrum_from_gram(gc, n, d, np)
    res = {m: float(v) for m, v in _stats_from_spectra(np, s, sc, n, d).items()}
    res["log_spectrum"] = _log_spectrum(np, sc)
    return res


def _family_on_host(z: np.ndarray, n: int, d: int) -> dict[str, Any]:
    """Every member and the log spectrum from the (n, d) snapshot (writer thread).

    float32 rows take metricreg.host_spectrum's float32 Gram when its error bound allows, else
    (and for float64 rows) the float64 Gram; the direction statistics are always float64.
    """
    fast = host_spectrum.f32_spectra(z, True, A.RANKME_EPS) if z.dtype == np.float32 and z.size else None
    z = np.asarray(z, dtype=np.float64)
    if fast is not None:
        s, sc = fast
        sc = sc[: max(1, min(n - 1, d))]
        res: dict[str, Any] = {m: float(v) for m, v in _stats_from_spectra(np, s, sc, n, d).items()}
        res["log_spectrum"] = _log_spectrum(np, sc)
        res.update({m: float(v) for m, v in _direction_stats(A.namespace(z), z).items()})
        return res
    g, gc, bad = A.gram_matrices(z, np)
    res = _spectral_on_host(g, gc, bad, n, d)
    if bool(bad):
        res.update({m: math.nan for m in ORDER if m not in res})
    else:
        res.update({m: float(v) for m, v in _direction_stats(A.namespace(z), z).items()})
    return res


def _quiet_family_on_host(z: np.ndarray, n: int, d: int) -> dict:
    """:func:`_family_on_host` without numpy's RuntimeWarnings (inf − inf) on the console: non-finite input
    already gives NaN members (documented)."""
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        return _family_on_host(z, n, d)


def _analyse_on_host(zm: Any, n: int, d: int, fresh: bool) -> dict:
    """The whole family as one host job: the training thread only snapshots the rows (O(n·d)).

    The job runs when the writer thread converts the first member, so the Gram product and
    both eigensolves leave the training loop. Used for numpy arrays and torch CPU tensors
    (speed) and for JAX without x64 (accuracy: float64 exists only on the host there).
    """
    job = A.HostJob({"z": A.host_snapshot(zm, fresh)}, lambda h: _quiet_family_on_host(h["z"], n, d))
    members = A.deferred_family(job, ORDER)
    return {"members": members, "log_spectrum": A.Deferred(job, "log_spectrum"), "n": n, "d": d}


def collapse(embeddings: Any, step: int = 0, shared: dict | None = None) -> dict[str, Any]:
    """The collapse family for one embedding matrix (see the module docstring)."""
    members = analyse(embeddings, shared, step)["members"]
    return {m: members[m] for m in ORDER}


def collapse_spectrum(embeddings: Any, step: int = 0, shared: dict | None = None) -> Any:
    """log10(σₖ/σ₁) of the centered spectrum, a 1-D array for a histogram."""
    return analyse(embeddings, shared, step)["log_spectrum"]


METRICS = [
    Metric(
        "collapse",
        compute=collapse,
        every=100,
        fan_out="embeddings",
        health=HEALTH,
        # No cross-rank reduction: rank 0's batch is measured (on CUDA the spectrum is a Deferred
        # host job, which an all-reduce would have to force on the training thread).
        reduce=None,
        description="Representation collapse of `embeddings`: RankMe, centered effective rank, normalised "
        "std, mean pairwise cosine, mean norm, collapsed directions.",
    ),
    Metric(
        "collapse/spectrum",
        compute=collapse_spectrum,
        every=1000,
        kind="histogram",
        fan_out="embeddings",
        description="log10(σₖ/σ₁) of the centered embedding spectrum (clamped at −12).",
    ),
]


@hookimpl
def metricreg_register_inputs(register):
    register("embeddings", description="(n, d) embeddings, or a dict of them (one collapse family per key)")


@hookimpl
def metricreg_register_metrics(register):
    for metric in METRICS:
        register(metric)
