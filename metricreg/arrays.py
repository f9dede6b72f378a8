"""Array helpers shared by the built-in metrics: one implementation for numpy, torch and JAX.

Everything here is written against the array API (through ``array_api_compat``), so a
metric written with these helpers runs natively on numpy arrays, torch tensors (CPU and
CUDA) and JAX arrays, and its results stay on the input's device.

Rules the helpers keep, so that metrics built on them keep them too:

* **No host-device synchronisation.** Nothing here calls ``float()``, ``.item()``,
  ``.cpu()`` or ``bool()`` on an array, nor branches in Python on an array's value.
  Scalars are made with ``full`` (a fill kernel, not a host-to-device copy) and
  index arrays for torch are built on the device with ``arange`` arithmetic.
* **NaN-safe.** Non-finite input gives NaN results, never an exception (a LAPACK routine
  fed a NaN may raise or hang, so the small Gram matrix is replaced before the
  eigensolver sees it and the NaN is put back afterwards).
* **float64 where the backend has it.** JAX without ``jax_enable_x64`` and torch on MPS
  have no float64; there the helpers use float32 (see :func:`float_dtype`). Spectra of float32
  host rows use float32 products where a bound on their error allows (:mod:`metricreg.host_spectrum`).

The one exception to "compute on the device" is the symmetric eigensolver on torch
CUDA tensors: ``torch.linalg.eigvalsh`` checks its LAPACK ``info`` with a device-to-host
read, which is a synchronisation (it fails under ``torch.cuda.set_sync_debug_mode("error")``).
For those tensors the Gram matrix is formed on the GPU, copied to pinned host memory
with a non-blocking copy, and the eigenvalues are computed on the host when the writer
thread converts the result: see :class:`HostJob` and :class:`Deferred`. The collapse family
goes further for host data (numpy, torch CPU) and for JAX without x64: the training thread
copies the rows (:func:`host_snapshot`) and the writer thread does all the float64 work
(:func:`host_route`).
"""

from __future__ import annotations

import math
import sys
import threading
from collections.abc import Callable, Iterable
from typing import Any

import array_api_compat as aac
import numpy as np

from metricreg import host as _host
from metricreg import host_spectrum

__all__ = [
    "MAX_ROWS",
    "RANKME_EPS",
    "Deferred",
    "HostJob",
    "as_matrix",
    "as_scalar_array",
    "centered_spectrum_from_gram",
    "detach",
    "device_of",
    "entropy_rank",
    "float_dtype",
    "gram_matrices",
    "host_route",
    "host_scalar",
    "host_snapshot",
    "is_array",
    "is_host_data",
    "is_scalar_like",
    "namespace",
    "needs_host_eig",
    "on_writer",
    "row_indices",
    "singular_values_from_gram",
    "spectrum",
    "to_float",
    "to_host",
]

#: Rows above this are sub-sampled (fixed, deterministic selection) before a Gram matrix
#: is formed. 25,600 is the sample count the RankMe paper calls a highly accurate estimate.
MAX_ROWS = 25_600

#: The epsilon RankMe adds to each normalised singular value (Garrido et al. 2023, Eq. 1;
#: the paper's value for float32). Fixed so that values are comparable across runs.
RANKME_EPS = 1e-7

_TINY = 1e-30


# --------------------------------------------------------------------------- namespaces


_ARRAY_TYPES: dict[type, bool] = {}


def is_array(x: object) -> bool:
    """True for numpy arrays and scalars, torch tensors, JAX arrays (any array API object).

    Cached by type: array_api_compat's test ends in ``hasattr(x, "__array_namespace__")``,
    which for an ``nn.Module`` or an optimizer raises and catches an AttributeError (µs each,
    and the gap accumulation asks it of every input at every due step).
    """
    kind = type(x)
    hit = _ARRAY_TYPES.get(kind)
    if hit is None:
        hit = aac.is_array_api_obj(x)
        if len(_ARRAY_TYPES) < 256:
            _ARRAY_TYPES[kind] = hit
    return hit


_NAMESPACES: dict[tuple[type, ...], Any] = {}


def namespace(*xs: object) -> Any:
    """The array namespace of the arrays among ``xs`` (numpy's when there are none).

    Cached by the arguments' types (array_api_compat's lookup costs microseconds and every
    built-in metric asks several times per due step; the answer depends on the types alone).
    """
    key = tuple(map(type, xs))
    hit = _NAMESPACES.get(key)
    if hit is not None:
        return hit
    arrays = [x for x in xs if is_array(x)]
    ns = aac.array_namespace(*arrays) if arrays else aac.array_namespace(np.empty(0))
    if len(_NAMESPACES) < 256:
        _NAMESPACES[key] = ns
    return ns


def device_of(x: Any) -> Any:
    return aac.device(x)


def is_torch(x: object) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def detach(x: Any) -> Any:
    """Drop the autograd graph of a torch tensor (a no-op for anything else)."""
    if is_torch(x) and x.requires_grad:
        return x.detach()
    return x


def float_dtype(xp: Any, x: Any | None = None) -> Any:
    """float64 where the backend supports it, else float32 (JAX without x64, torch MPS)."""
    if aac.is_jax_namespace(xp):
        jax = sys.modules.get("jax")
        if jax is None or not jax.config.read("jax_enable_x64"):
            return xp.float32
    if x is not None and is_torch(x) and x.device.type == "mps":
        return xp.float32
    return xp.float64


def to_float(x: Any, xp: Any | None = None, dtype: Any | None = None) -> Any:
    """``x`` cast to the widest float the backend has (no copy when it already is)."""
    xp = xp or namespace(x)
    dtype = dtype or float_dtype(xp, x)
    x = detach(x)
    if x.dtype == dtype:
        return x
    return xp.astype(x, dtype)


def is_scalar_like(x: object) -> bool:
    """A Python real, a numpy scalar, or a one-element array of a real dtype."""
    if isinstance(x, bool):
        return False
    if isinstance(x, (int, float)):
        return True
    if not is_array(x):
        return False
    try:
        shape = tuple(x.shape)
        if math.prod(shape) != 1:
            return False
        xp = namespace(x)
        return xp.isdtype(x.dtype, "real floating") or xp.isdtype(x.dtype, "integral")
    except Exception:
        return False


def host_scalar(x: Any) -> Any:
    """A one-element numpy array or torch CPU tensor as a Python float; anything else unchanged.

    On the CPU, reading a value is no device synchronisation and costs ~0.2 µs, after which the
    window arithmetic of the scalar metrics (spikes, clipping, plateaus, gap windows) runs on
    floats (~0.1 µs an operation) rather than through torch's CPU kernels (~5 µs each). The
    float is also a snapshot: an in-place update of the tensor after the step cannot change it.
    Device tensors (CUDA, MPS, meta) and JAX arrays are returned as they are. Within a Monitor's
    due step a tensor is read once, whichever metrics ask (metricreg.host.step_scalars).
    """
    memo = _host.step_scalars
    if memo is not None:
        hit = memo.get(id(x))
        if hit is not None and hit[0] is x:
            return hit[1]
    if is_torch(x):
        # is_cpu: ~6x cheaper than device.type (which builds a torch.device); same answer
        if x.is_cpu and x.numel() == 1 and not x.is_complex():
            value = float(x.item())
            if memo is not None:
                memo[id(x)] = (x, value)
            return value
        return x
    if isinstance(x, (np.ndarray, np.generic)) and x.size == 1 and x.dtype.kind in "biuf":
        return float(x)
    return x


def as_scalar_array(value: Any, like: Any | None = None, xp: Any | None = None) -> Any:
    """A 0-d float array holding ``value``, on ``like``'s device (made by a fill, not a copy)."""
    if is_array(value) and not isinstance(value, np.generic):
        xp = xp or namespace(value)
        value = detach(value)
        if value.ndim:
            value = xp.reshape(value, ())
        if not xp.isdtype(value.dtype, "real floating"):
            value = xp.astype(value, float_dtype(xp, value))
        return value
    if like is None:
        return np.float64(value)
    xp = xp or namespace(like)
    dtype = like.dtype if xp.isdtype(like.dtype, "real floating") else float_dtype(xp, like)
    return xp.full((), float(value), dtype=dtype, device=device_of(like))


# ------------------------------------------------------------------------ sub-sampling

_INDEX_CACHE: dict[tuple, Any] = {}


def _multiplier(n: int) -> int:
    """A fixed multiplier coprime with ``n``: i -> i*a mod n is then a permutation."""
    a = max(1, int(n * 0.6180339887498949)) | 1
    while math.gcd(a, n) != 1:
        a += 2
    return a


def row_indices(n: int, cap: int, xp: Any, device: Any) -> Any:
    """``cap`` distinct row indices out of ``n``, spread pseudo-randomly, always the same.

    Index i is (i * a) mod n with a fixed a coprime with n (a golden-ratio multiplier):
    deterministic ("fixed seed"), without replacement, scattered across the batch so that
    ordered data (sorted by class, say) is still sampled evenly. On torch the indices are
    computed on the device with ``arange`` (no host-to-device copy, hence no sync); on
    backends without int64 (JAX without x64) they are computed with numpy. Cached.
    """
    key = (n, cap, xp.__name__, str(device))
    hit = _INDEX_CACHE.get(key)
    if hit is not None:
        return hit
    a = _multiplier(n)
    if aac.is_jax_namespace(xp):
        idx = xp.asarray((np.arange(cap, dtype=np.int64) * a) % n, device=device)
    else:
        idx = (xp.arange(cap, dtype=xp.int64, device=device) * a) % n
    if len(_INDEX_CACHE) > 256:
        _INDEX_CACHE.clear()
    _INDEX_CACHE[key] = idx
    return idx


def as_matrix(z: Any, max_rows: int | None = MAX_ROWS, xp: Any | None = None) -> Any:
    """An (n, d) view of embeddings: (..., d) is flattened to rows; rows above ``max_rows`` sub-sampled."""
    xp = xp or namespace(z)
    z = detach(z)
    if z.ndim == 1:
        z = xp.reshape(z, (1, -1))
    elif z.ndim > 2:
        z = xp.reshape(z, (-1, z.shape[-1]))
    n = z.shape[0]
    if max_rows is not None and n > max_rows:
        z = xp.take(z, row_indices(n, max_rows, xp, device_of(z)), axis=0)
    return z


# --------------------------------------------------------------------------- spectra


def _cpu_view(x: Any) -> np.ndarray | None:
    """A numpy view (zero-copy where possible) of a numpy array or a torch CPU tensor, else None.

    Used for the Gram product and the eigensolver on the CPU: numpy's ``a.T @ a`` calls BLAS
    SYRK (half the flops of the GEMM torch's ``matmul`` runs) and its ``eigvalsh`` is LAPACK
    ``syevd``; both are faster than torch's CPU kernels for these shapes. Nothing leaves a
    device: CUDA tensors and JAX arrays are never routed here.
    """
    if isinstance(x, np.ndarray):
        return x
    if is_torch(x) and x.device.type == "cpu" and not x.requires_grad:
        torch = sys.modules["torch"]
        if x.dtype not in (torch.float32, torch.float64):
            # float16 / bfloat16 widen to float32 exactly (the float32 route of host_spectrum).
            x = x.to(torch.float32 if x.is_floating_point() else torch.float64)
        return x.resolve_conj().resolve_neg().numpy()
    return None


def _like(a: np.ndarray, like: Any) -> Any:
    """A numpy result back in ``like``'s framework (torch CPU: zero-copy)."""
    if is_torch(like):
        return sys.modules["torch"].from_numpy(np.ascontiguousarray(a) if a.ndim else np.asarray(a).reshape(()))
    return a


def gram_matrices(z: Any, xp: Any | None = None) -> tuple[Any, Any, Any]:
    """(G, G_c, bad) for an (n, d) matrix: uncentered and centered Gram matrices in float64.

    k×k with k = min(n, d): ZᵀZ when n >= d, ZZᵀ otherwise (both give the k non-trivial
    squared singular values). The centered Gram is formed from the explicitly centered
    matrix (no cancellation), and the uncentered one from it by the exact rank-one (d×d)
    or rank-two (n×n) correction, so one matrix product gives both. ``bad`` is a 0-d
    boolean array, true when Z had a non-finite entry; both matrices are then replaced by
    zeros (callers turn their results into NaN with it).
    """
    xp = xp or namespace(z)
    view = _cpu_view(detach(z))  # before any cast: numpy's float64 cast is ~3x torch's here
    if view is not None:
        return tuple(_like(a, z) for a in _gram_matrices_np(view))  # type: ignore[return-value]
    z = to_float(z, xp)
    n, d = z.shape
    mu = xp.mean(z, axis=0, keepdims=True)  # (1, d)
    zc = z - mu
    if n >= d:
        gc = xp.matrix_transpose(zc) @ zc
        g = gc + float(n) * (xp.matrix_transpose(mu) @ mu)
    else:
        gc = zc @ xp.matrix_transpose(zc)
        v = zc @ xp.matrix_transpose(mu)  # (n, 1)
        g = gc + v + xp.matrix_transpose(v) + xp.sum(mu * mu)
    bad = xp.logical_not(xp.isfinite(xp.sum(xp.linalg.diagonal(g)) + xp.sum(mu)))
    zero = xp.zeros_like(g)
    return xp.where(bad, zero, g), xp.where(bad, zero, gc), bad


def _gram_matrices_np(z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    z = np.asarray(z, dtype=np.float64)
    n, d = z.shape
    mu = z.mean(axis=0, keepdims=True)
    zc = z - mu
    if n >= d:
        gc = zc.T @ zc  # numpy: SYRK
        g = gc + float(n) * (mu.T @ mu)
    else:
        gc = zc @ zc.T
        v = zc @ mu.T
        g = gc + v + v.T + float((mu * mu).sum())
    bad = np.logical_not(np.isfinite(np.trace(g) + mu.sum()))
    if bad:  # a host-side array: branching on it is free
        g, gc = np.zeros_like(g), np.zeros_like(gc)
    return g, gc, np.asarray(bad)


def uncentered_gram(z: Any, xp: Any | None = None) -> tuple[Any, Any]:
    """(ZᵀZ or ZZᵀ in float64, bad): the Gram matrix alone, one product (for RankMe only)."""
    xp = xp or namespace(z)
    view = _cpu_view(detach(z))  # before any cast: numpy's float64 cast is ~3x torch's here
    if view is not None:
        view = np.asarray(view, dtype=np.float64)
        n, d = view.shape
        g = view.T @ view if n >= d else view @ view.T  # numpy: SYRK
        bad = not np.isfinite(np.trace(g))
        if bad:
            g = np.zeros_like(g)
        return _like(g, z), _like(np.asarray(bad), z)
    z = to_float(z, xp)
    n, d = z.shape
    zt = xp.matrix_transpose(z)
    g = zt @ z if n >= d else z @ zt
    bad = xp.logical_not(xp.isfinite(xp.sum(xp.linalg.diagonal(g))))
    return xp.where(bad, xp.zeros_like(g), g), bad


def singular_values_from_gram(g: Any, xp: Any | None = None) -> Any:
    """Singular values (descending) from a Gram matrix: sqrt of its clamped eigenvalues."""
    xp = xp or namespace(g)
    view = _cpu_view(g)
    if view is not None:  # LAPACK syevd through numpy: faster than torch's CPU eigvalsh here
        return _like(np.flip(np.sqrt(np.clip(np.linalg.eigvalsh(view), 0.0, None))).copy(), g)
    ev = xp.linalg.eigvalsh(g)
    return xp.flip(xp.sqrt(xp.clip(ev, 0.0, None)), axis=0)


def centered_spectrum_from_gram(gc: Any, n: int, d: int, xp: Any | None = None) -> Any:
    """Centered singular values, dropping the one direction centering always removes when n <= d."""
    s = singular_values_from_gram(gc, xp)
    kc = max(1, min(n - 1, d))
    return s[:kc]


def entropy_rank(s: Any, xp: Any | None = None, eps: float = RANKME_EPS) -> Any:
    """exp(−Σ pₖ log pₖ) with pₖ = σₖ/‖σ‖₁ + eps: RankMe on raw σ, effective rank on centered σ.

    A zero spectrum (a constant matrix) gives ≈ 1 rather than 0/0.
    """
    xp = xp or namespace(s)
    total = xp.sum(s)
    p = s / xp.clip(total, _TINY, None) + eps
    return xp.exp(-xp.sum(p * xp.log(p)))


def needs_host_eig(x: Any) -> bool:
    """True for torch tensors off the CPU: their eigensolver would synchronise the device."""
    return is_torch(x) and x.device.type != "cpu"


def host_route(x: Any) -> bool:
    """True when a spectrum of ``x`` is best computed entirely on the writer thread, in numpy float64.

    numpy arrays and torch CPU tensors: the data is already in host memory, so the O(n·d²)
    Gram product and the eigensolves can leave the training thread for the price of an O(n·d)
    copy. JAX arrays without ``jax_enable_x64``: JAX has no float64 there, and a float32 Gram
    matrix squares the condition number (small singular values off by tens of percent at
    collapse), so the host's float64 is the only accurate route.
    """
    if isinstance(x, np.ndarray):
        return True
    if is_torch(x):
        return x.device.type == "cpu"
    if "jax" in sys.modules and aac.is_jax_array(x):
        return not sys.modules["jax"].config.read("jax_enable_x64")
    return False


def host_snapshot(x: Any, fresh: bool = False) -> Any:
    """The value of ``x`` now, safe to read later on another thread (for :class:`HostJob`).

    numpy arrays and torch CPU tensors are copied (O(n·d), far cheaper than the O(n·d²) work
    it moves off the training thread): the caller may update them in place after the step,
    and the value written must be the value at its step. ``fresh=True`` says ``x`` is a new
    buffer that nobody else holds (a row sub-sample), so no copy is needed. JAX arrays are
    immutable and are returned as they are.
    """
    if isinstance(x, np.ndarray):
        return x if fresh else x.copy()
    if "jax" in sys.modules and aac.is_jax_array(x):
        return x
    if is_torch(x) and x.device.type == "cpu":
        torch = sys.modules["torch"]
        x = x.detach()
        if x.dtype not in (torch.float32, torch.float64):
            wide = torch.float32 if x.is_floating_point() else torch.float64  # float16/bfloat16: exact
            return x.to(wide).numpy()  # the cast is the copy
        view = x.resolve_conj().resolve_neg().numpy()
        return view if fresh else view.copy()
    raise TypeError(f"host_snapshot: expected a numpy array, a torch CPU tensor or a JAX array, got {type(x).__name__}")


def spectrum(z: Any, center: bool = False, max_rows: int | None = MAX_ROWS) -> Any:
    """Singular values of the (row-capped) embedding matrix via the float64 Gram route.

    NaN-filled when the input has a non-finite entry. On torch CUDA this synchronises
    (it is a convenience for tests and benchmarks; the built-in metrics use
    :class:`HostJob` there instead).
    """
    xp = namespace(z)
    z = as_matrix(z, max_rows, xp)
    n, d = z.shape
    host = _host_spectra(z, center)
    if host is not None:
        return _like(host, z)
    if center:
        _, gc, bad = gram_matrices(z, xp)
        s = centered_spectrum_from_gram(gc, n, d, xp)
    else:
        g, bad = uncentered_gram(z, xp)
        s = singular_values_from_gram(g, xp)
    return xp.where(bad, xp.nan, s)


def rankme(z: Any, max_rows: int | None = MAX_ROWS) -> Any:
    """RankMe of embeddings (uncentered, σ-based, eps = RANKME_EPS), as a 0-d array on z's device."""
    xp = namespace(z)
    z = as_matrix(z, max_rows, xp)
    host = _host_spectra(z, False)
    if host is not None:
        return _like(np.asarray(entropy_rank(host, np)), z)  # float64 0-d
    g, bad = uncentered_gram(z, xp)
    if needs_host_eig(g):
        job = HostJob(
            {"g": g, "bad": bad}, lambda h: float(entropy_rank(_np_sv(h["g"]), np)) if not h["bad"] else math.nan
        )
        return Deferred(job)
    r = entropy_rank(singular_values_from_gram(g, xp), xp)
    return xp.where(bad, xp.nan, r)


def _host_spectra(z: Any, center: bool) -> np.ndarray | None:
    """σ of float32 host data through :mod:`metricreg.host_spectrum`'s checked float32 route; None otherwise.

    None (the float64 route follows) for anything but a float32 numpy array or torch CPU tensor
    (float16 / bfloat16 included), and when the float32 answer fails its error bound.
    """
    view = _cpu_view(detach(z))
    if view is None or view.dtype != np.float32 or view.size == 0:
        return None
    out = host_spectrum.f32_spectra(view, center, RANKME_EPS)
    if out is None:
        return None
    s, sc = out
    if center:
        n, d = view.shape
        s = sc[: max(1, min(n - 1, d))]
    return s


def _np_sv(g: np.ndarray) -> np.ndarray:
    return np.flip(np.sqrt(np.clip(np.linalg.eigvalsh(g), 0.0, None)))


# ---------------------------------------------------------------- host finishing (CUDA)


def _start_copy(x: Any) -> tuple[Any, Any]:
    """Begin a sync-free device-to-host copy of a torch CUDA tensor: (pinned tensor, event)."""
    torch = sys.modules["torch"]
    x = x.detach()
    out = torch.empty(x.shape, dtype=x.dtype, device="cpu", pin_memory=True)
    out.copy_(x, non_blocking=True)
    event = torch.cuda.Event()
    event.record(torch.cuda.current_stream(x.device))
    return out, event


def to_host(x: Any) -> Any:
    """A numpy array (or Python scalar) from any array; synchronises on the calling thread.

    Meant for the writer thread and for tests. Torch CUDA tensors go through pinned
    memory and an event (``cudaEventSynchronize``), not a blocking ``.cpu()``.
    """
    if isinstance(x, Deferred):
        return x.resolve()
    if not is_array(x):
        return x
    if is_torch(x):
        x = x.detach()
        if x.device.type == "cuda":
            out, event = _start_copy(x)
            event.synchronize()
            x = out
        elif x.device.type != "cpu":
            x = x.cpu()
        if x.dtype in (sys.modules["torch"].bfloat16, sys.modules["torch"].float16):
            x = x.float()
        return x.numpy()
    return np.asarray(x)


class HostJob:
    """Device arrays on their way to the host, and what to compute from them there.

    Created on the training thread: for torch CUDA tensors the device-to-host copies are
    started immediately (non-blocking, into pinned memory, followed by an event), so
    nothing waits. ``result()`` (called by whoever converts the value: the writer thread)
    waits for the copies, converts to numpy and calls ``finish(host_arrays)`` once; the
    result is memoised, so the members of a family share one host computation.
    """

    def __init__(self, arrays: dict[str, Any], finish: Callable[[dict[str, Any]], Any]) -> None:
        self._pending: dict[str, Any] = {}
        for key, value in arrays.items():
            if is_torch(value) and value.device.type == "cuda":
                self._pending[key] = _start_copy(value)
            else:
                self._pending[key] = (value, None)
        self._finish = finish
        self._lock = threading.Lock()
        self._done = False
        self._result: Any = None

    def result(self) -> Any:
        with self._lock:
            if not self._done:
                host: dict[str, Any] = {}
                for key, (value, event) in self._pending.items():
                    if event is not None:
                        event.synchronize()
                        host[key] = value.numpy()
                    else:
                        host[key] = to_host(value)
                self._pending = {}
                try:
                    self._result = self._finish(host)
                except Exception:  # NaN-safe: a failed host computation is a NaN, not a crash
                    self._result = math.nan
                self._done = True
            return self._result


class Deferred:
    """One value of a :class:`HostJob` (``key`` picks a member of a dict result).

    Behaves like a scalar / array for whoever converts it: ``float(d)``, ``np.asarray(d)``,
    ``d.item()``, ``d.resolve()``. A writer that knows the type can call ``resolve()``.
    """

    __slots__ = ("job", "key")

    def __init__(self, job: HostJob, key: str | None = None) -> None:
        self.job = job
        self.key = key

    def resolve(self) -> Any:
        value = self.job.result()
        if self.key is not None:
            value = value.get(self.key, math.nan) if isinstance(value, dict) else math.nan
        return value

    def __float__(self) -> float:
        return float(np.asarray(self.resolve(), dtype=np.float64))

    def item(self) -> float:
        return float(self)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        return np.asarray(self.resolve(), dtype=dtype)

    @property
    def shape(self) -> tuple[int, ...]:
        return np.shape(self.resolve())

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __repr__(self) -> str:
        return f"Deferred(key={self.key!r})"


def deferred_family(job: HostJob, keys: Iterable[str]) -> dict[str, Deferred]:
    return {key: Deferred(job, key) for key in keys}


def is_host_data(x: Any) -> bool:
    """numpy arrays and torch CPU tensors: data a host job can snapshot with one copy."""
    return isinstance(x, np.ndarray) or (is_torch(x) and x.device.type == "cpu")


def on_writer(fn: Callable[..., Any], arrays: dict[str, Any], keys: Iterable[str] | None = None) -> Any:
    """``fn(**arrays)`` computed by the writer thread on numpy copies taken now.

    For array metrics on host data (:func:`is_host_data`): the training thread pays one copy
    per array (the value at this step, whatever the loop does to its buffers afterwards)
    instead of a chain of small kernels that run cold after each training step. Returns a
    :class:`Deferred`, or a dict of them for ``keys`` (``fn`` then returns a dict; a key it
    leaves out reads NaN).
    """
    job = HostJob({name: host_snapshot(a) for name, a in arrays.items()}, lambda h: fn(**h))
    return deferred_family(job, keys) if keys is not None else Deferred(job)
