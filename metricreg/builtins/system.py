"""System: process memory and CPU, GPU memory (torch.cuda), GPU utilisation (NVML).

``system/<member>`` every 100 steps, all host-side counters (no device synchronisation):

=========================  ======================================================================
member                     source
=========================  ======================================================================
``rss_gb``                 resident set size: /proc/self/statm, else resource.getrusage (peak RSS)
``cpu_percent``            process CPU time / wall time since the previous due step × 100 (os.times)
``gpu_allocated_gb``       torch.cuda.memory_allocated (only when torch is imported and CUDA initialised)
``gpu_reserved_gb``        torch.cuda.memory_reserved
``gpu_peak_gb``            torch.cuda.max_memory_allocated (since start or the user's last reset)
``gpu_memory_frac``        reserved / total device memory
``gpu_util``               NVML utilisation.gpu (%), if pynvml (nvidia-ml-py) is importable
``gpu_memory_util``        NVML utilisation.memory (%)
``gpu_temp_c``             NVML temperature (°C)
``gpu_power_w``            NVML power draw (W)
=========================  ======================================================================

NVML is initialised once per process; any NVML failure disables it silently. The NVML
device is the physical index of torch's current device (``CUDA_VISIBLE_DEVICES`` mapped),
else the first visible device.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

from metricreg.hookspecs import hookimpl
from metricreg.spec import Health, Metric

GB = float(1 << 30)
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") and "SC_PAGE_SIZE" in os.sysconf_names else 4096
_nvml: dict[str, Any] = {"state": None}  # None: not tried, False: unavailable, else the module


_statm: dict[str, int] = {}  # {"pid": the process that opened it, "fd": its /proc/<pid>/statm descriptor}


def _read_statm() -> bytes:
    """/proc/self/statm through a descriptor kept open: one pread a due step instead of open/read/close.

    Keyed by pid: a forked child inherits the descriptor, which still reads its parent's memory.
    """
    pid = os.getpid()
    fd = _statm.get("fd") if _statm.get("pid") == pid else None
    if fd is None:
        fd = os.open(f"/proc/{pid}/statm", os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        _statm.update(pid=pid, fd=fd)  # a parent's descriptor left in a child is not closed: it is the parent's
    return os.pread(fd, 256, 0)


def rss_bytes() -> float | None:
    try:
        return float(int(_read_statm().split()[1]) * _PAGE)
    except (OSError, ValueError, IndexError, AttributeError):  # AttributeError: no os.pread (Windows)
        pass
    try:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return float(peak if sys.platform == "darwin" else peak * 1024)
    except Exception:
        return None


def _torch_cuda() -> Any:
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    try:
        cuda = torch.cuda
        if not cuda.is_available() or not cuda.is_initialized():
            return None
        return cuda
    except Exception:
        return None


def _nvml_module() -> Any:
    if _nvml["state"] is None:
        try:
            import pynvml

            pynvml.nvmlInit()
            _nvml["state"] = pynvml
        except Exception:
            _nvml["state"] = False
    return _nvml["state"] or None


def _nvml_handle(nvml: Any, cuda: Any) -> Any:
    index = cuda.current_device() if cuda is not None else 0
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible:
        entries = [e.strip() for e in visible.split(",") if e.strip()]
        if index < len(entries):
            entry = entries[index]
            if entry.isdigit():
                return nvml.nvmlDeviceGetHandleByIndex(int(entry))
            return nvml.nvmlDeviceGetHandleByUUID(entry if entry.startswith("GPU-") else f"GPU-{entry}")
    return nvml.nvmlDeviceGetHandleByIndex(index)


def system(state: dict | None = None) -> dict[str, Any]:
    state = {} if state is None else state
    out: dict[str, Any] = {}
    rss = rss_bytes()
    if rss is not None:
        out["rss_gb"] = rss / GB
    now, times = time.perf_counter(), os.times()
    cpu = times.user + times.system
    prev = state.get("cpu")
    state["cpu"] = (now, cpu)
    if prev is not None and now > prev[0]:
        out["cpu_percent"] = 100.0 * (cpu - prev[1]) / (now - prev[0])
    cuda = _torch_cuda()
    if cuda is not None:
        try:
            dev = cuda.current_device()
            reserved = cuda.memory_reserved(dev)
            out["gpu_allocated_gb"] = cuda.memory_allocated(dev) / GB
            out["gpu_reserved_gb"] = reserved / GB
            out["gpu_peak_gb"] = cuda.max_memory_allocated(dev) / GB
            total = state.get("total") or cuda.get_device_properties(dev).total_memory
            state["total"] = total
            out["gpu_memory_frac"] = reserved / total
        except Exception:
            pass
    nvml = _nvml_module()
    if nvml is not None and not state.get("nvml_failed"):
        try:
            handle = state.get("nvml_handle") or _nvml_handle(nvml, cuda)
            state["nvml_handle"] = handle
            util = nvml.nvmlDeviceGetUtilizationRates(handle)
            out["gpu_util"] = float(util.gpu)
            out["gpu_memory_util"] = float(util.memory)
            out["gpu_temp_c"] = float(nvml.nvmlDeviceGetTemperature(handle, nvml.NVML_TEMPERATURE_GPU))
            out["gpu_power_w"] = nvml.nvmlDeviceGetPowerUsage(handle) / 1000.0
        except Exception:
            state["nvml_failed"] = True
    return out


HEALTH = {
    "rss_gb": Health(
        category="system", title="process RSS (GB)", description="Resident memory of the training process."
    ),
    "cpu_percent": Health(
        category="system",
        title="process CPU %",
        description="Process CPU time over wall time (100 = one core busy).",
    ),
    "gpu_allocated_gb": Health(
        category="system", title="GPU allocated (GB)", description="torch.cuda.memory_allocated."
    ),
    "gpu_reserved_gb": Health(category="system", title="GPU reserved (GB)", description="torch.cuda.memory_reserved."),
    "gpu_peak_gb": Health(category="system", title="GPU peak (GB)", description="torch.cuda.max_memory_allocated."),
    "gpu_memory_frac": Health(
        category="system",
        warn_above=0.95,
        title="GPU memory reserved / total",
        description="Fraction of the device's memory held by torch's caching allocator.",
        remedy="Close to out-of-memory: reduce the batch size or sequence length, enable activation "
        "checkpointing or mixed precision, or set PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True "
        "against fragmentation.",
    ),
    "gpu_util": Health(
        category="system",
        warn_below=30.0,
        smoothing=0.6,
        persistence=5,
        direction="higher_is_better",
        title="GPU utilisation (%)",
        description="NVML GPU utilisation: the share of time a kernel was running.",
        remedy="The GPU is idle most of the time: the input pipeline or host code is the bottleneck. Use more "
        "DataLoader workers, pin_memory, prefetching, larger batches, or CUDA graphs / torch.compile.",
    ),
    "gpu_memory_util": Health(
        category="system", title="GPU memory bandwidth util (%)", description="NVML utilisation.memory."
    ),
    "gpu_temp_c": Health(
        category="system",
        warn_above=85.0,
        critical_above=95.0,
        persistence=3,
        title="GPU temperature (°C)",
        description="NVML GPU core temperature; GPUs throttle their clocks in the high 80s.",
        remedy="The GPU runs hot and will throttle: check cooling and airflow, fan settings, or lower the power limit.",
    ),
    "gpu_power_w": Health(category="system", title="GPU power (W)", description="NVML power draw."),
}

METRICS = [
    Metric(
        "system",
        compute=system,
        every=100,
        health=HEALTH,
        reduce=None,  # host-side counters of rank 0
        description="Process memory and CPU, GPU memory (torch.cuda) and NVML utilisation, temperature, power.",
    ),
]


@hookimpl
def metricreg_register_metrics(register):
    for metric in METRICS:
        register(metric)
