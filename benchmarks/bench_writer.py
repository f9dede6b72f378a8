"""Writing scalars: metricreg's Monitor.log vs torch.utils.tensorboard.SummaryWriter, same run.

Prints three ratios (targets from the core issue):
  * training-thread cost per logged scalar: >= 30x lower than SummaryWriter.add_scalar
  * sustained throughput until the file is closed: >= 20x SummaryWriter's scalars/s,
    with identical values read back through TensorBoard's loader
  * peak RSS for 1,000,000 logged scalars: within a few MB of an idle Monitor
Run: python benchmarks/bench_writer.py [--quick]
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
os.environ.setdefault("METRICREG_DISABLE_PLUGIN_AUTOLOAD", "1")

import numpy as np

import metricreg as mr

TAGS = [f"metric_{i}" for i in range(10)]


def values_for(step: int) -> dict[str, float]:
    return {tag: float(step * 10 + i) * 0.25 for i, tag in enumerate(TAGS)}


def per_scalar_cost(tmp: str, bursts: int, steps_per_burst: int) -> tuple[float, float]:
    """Time only the training thread's calls; let each writer drain between bursts (untimed)."""
    from torch.utils.tensorboard import SummaryWriter

    payloads = [values_for(s) for s in range(steps_per_burst)]
    mon = mr.Monitor(os.path.join(tmp, "cost_mr"), builtins=False)
    sw = SummaryWriter(os.path.join(tmp, "cost_sw"))
    t_mr = t_sw = 0.0
    for b in range(bursts):
        start = time.perf_counter()
        for s, payload in enumerate(payloads):
            mon.log(payload, step=b * steps_per_burst + s)
        t_mr += time.perf_counter() - start
        mon.flush()
        start = time.perf_counter()
        for s, payload in enumerate(payloads):
            step = b * steps_per_burst + s
            for tag, value in payload.items():
                sw.add_scalar(tag, value, step)
        t_sw += time.perf_counter() - start
        sw.flush()
    mon.close()
    sw.close()
    n = bursts * steps_per_burst * len(TAGS)
    return t_mr / n, t_sw / n


def throughput(tmp: str, steps: int) -> tuple[float, float]:
    from torch.utils.tensorboard import SummaryWriter

    payloads = [values_for(s) for s in range(steps)]
    start = time.perf_counter()
    mon = mr.Monitor(os.path.join(tmp, "tp_mr"), builtins=False)
    for s, payload in enumerate(payloads):
        mon.log(payload, step=s)
    mon.close()
    t_mr = time.perf_counter() - start
    start = time.perf_counter()
    sw = SummaryWriter(os.path.join(tmp, "tp_sw"))
    for s, payload in enumerate(payloads):
        for tag, value in payload.items():
            sw.add_scalar(tag, value, s)
    sw.close()
    t_sw = time.perf_counter() - start
    n = steps * len(TAGS)
    return n / t_mr, n / t_sw


def read_back_identical(tmp: str, steps: int) -> bool:
    from tensorboard.backend.event_processing import event_accumulator

    def load(name: str) -> dict[str, list[tuple[int, float]]]:
        acc = event_accumulator.EventAccumulator(os.path.join(tmp, name), size_guidance={"scalars": 0})
        acc.Reload()
        return {t: [(e.step, e.value) for e in acc.Scalars(t)] for t in acc.Tags()["scalars"]}

    ours, theirs = load("tp_mr"), load("tp_sw")
    expected = {f"train/{tag}": [(s, float(np.float32(values_for(s)[tag]))) for s in range(steps)] for tag in TAGS}
    return ours == expected and all(theirs[t] == expected[f"train/{t}"] for t in TAGS)


MEMORY_CHILD = """
import os, sys
os.environ["METRICREG_DISABLE_PLUGIN_AUTOLOAD"] = "1"
import metricreg as mr
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
mon = mr.Monitor(sys.argv[1], builtins=False)
mon.log({"warmup": 1.0}, step=0); mon.flush()
idle = rss()
payload_tags = [f"metric_{i}" for i in range(10)]
for step in range(100_000):
    mon.log({t: step * 0.5 for t in payload_tags}, step=step)
mon.close()
with open("/proc/self/status") as f:  # VmHWM: this process's peak; ru_maxrss survives exec
    peak = next(int(line.split()[1]) for line in f if line.startswith("VmHWM")) / 1024
print(f"{idle:.1f} {peak:.1f}")
"""


def memory(tmp: str) -> tuple[float, float]:
    out = subprocess.run(
        [sys.executable, "-c", MEMORY_CHILD, os.path.join(tmp, "mem")], capture_output=True, text=True, check=True
    )
    idle, peak = map(float, out.stdout.split())
    return idle, peak


def main() -> None:
    quick = "--quick" in sys.argv
    with tempfile.TemporaryDirectory() as tmp:
        mr_cost, sw_cost = per_scalar_cost(tmp, bursts=5 if quick else 20, steps_per_burst=100)
        steps = 2_000 if quick else 20_000
        mr_rate, sw_rate = throughput(tmp, steps)
        identical = read_back_identical(tmp, steps)
        idle, peak = memory(tmp)
    cost_ratio, rate_ratio = sw_cost / mr_cost, mr_rate / sw_rate
    print(
        f"per-scalar training-thread cost: metricreg {mr_cost * 1e6:6.2f} us, SummaryWriter {sw_cost * 1e6:6.2f} us"
        f"  -> {cost_ratio:5.1f}x lower (target >= 30x)"
    )
    print(
        f"throughput until closed        : metricreg {mr_rate:9,.0f}/s, SummaryWriter {sw_rate:9,.0f}/s"
        f"  -> {rate_ratio:5.1f}x (target >= 20x); values identical on read-back: {identical}"
    )
    print(
        f"memory, 1,000,000 scalars      : idle Monitor {idle:.1f} MB, peak {peak:.1f} MB"
        f"  -> +{peak - idle:.1f} MB (target: a few MB)"
    )
    ok = cost_ratio >= 30 and rate_ratio >= 20 and identical and peak - idle < 8
    print("PASS" if ok else "FAIL")


if __name__ == "__main__":
    main()
