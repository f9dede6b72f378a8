"""One anchor for every signal-cost benchmark, so their ratios are comparable.

The signal-cost scripts (bench_informational, bench_lidar_gns, bench_visuals,
bench_probe_projector) print each signal's cost as a ratio to one training step. They share this
module so that "x step" means the same step in all of them: the overhead benchmark's loop (MLP
64 → 256 → 256 → 10, batch 256, AdamW, torch CPU), timed the same way (``per_call``: best of
``repeat`` medians of the calling thread's CPU time, robust to other processes on the cores).

Scripts import it as ``import signal_costs`` after putting benchmarks/ on ``sys.path``.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch

STEP_CALLS = 50  # training steps per median when timing the anchor


def per_call(fn: Callable[[], object], calls: int, repeat: int) -> float:
    """Best over ``repeat`` of the median thread-CPU seconds of one call (after one warm-up call)."""
    fn()
    best = float("inf")
    for _ in range(repeat):
        times = []
        for _ in range(calls):
            start = time.thread_time()
            fn()
            times.append(time.thread_time() - start)
        best = min(best, statistics.median(times))
    return best


def anchor_model() -> torch.nn.Sequential:
    """The anchor MLP, 64 → 256 → 256 → 10 with ReLU: the one model of the overhead benchmark, the
    GPU check, the Lightning callback benchmark and the signal-cost scripts (seed it first)."""
    return torch.nn.Sequential(
        torch.nn.Linear(64, 256),
        torch.nn.ReLU(),
        torch.nn.Linear(256, 256),
        torch.nn.ReLU(),
        torch.nn.Linear(256, 10),
    )


class Anchor:
    """The anchor training loop: the model, optimizer and batch that some signals are measured on."""

    def __init__(self) -> None:
        torch.manual_seed(0)
        self.net = anchor_model()
        self.opt = torch.optim.AdamW(self.net.parameters(), lr=1e-3)
        self.x, self.y = torch.randn(256, 64), torch.randint(0, 10, (256,))

    def train_step(self) -> None:
        """One optimisation step on the fixed batch."""
        self.opt.zero_grad()
        torch.nn.functional.cross_entropy(self.net(self.x), self.y).backward()
        self.opt.step()

    def seconds(self, repeat: int) -> float:
        """Thread-CPU seconds of one training step (leaves the model trained and its gradients set)."""
        return per_call(self.train_step, STEP_CALLS, repeat)


def anchor_step(repeat: int) -> float:
    """Thread-CPU seconds of one anchor training step, for scripts that do not need its model."""
    return Anchor().seconds(repeat)


class CostTable:
    """Rows of (signal, seconds per due call, schedule interval, thread), printed against the anchor step."""

    def __init__(self, step: float, *, width: int = 38, first: str = "signal", last: str = "where") -> None:
        self.step = step
        self.width = width
        self.first = first
        self.last = last
        self.rows: list[tuple[str, float, int, str]] = []

    def row(self, name: str, seconds: float, every: int, where: str = "training thread") -> None:
        """Record a signal costing ``seconds`` per due call, due every ``every`` steps, paid on ``where``."""
        self.rows.append((name, seconds, every, where))

    def print(self) -> None:
        """The anchor line, then one line per row: ms, ratio to the step, interval, amortised share, thread."""
        step, w = self.step, self.width
        print(f"anchor: one training step = {step * 1e3:.3f} ms (thread CPU)")
        print(f"{self.first:{w}s} {'ms/due call':>11s} {'x step':>8s} {'every':>6s} {'share':>8s}  {self.last}")
        for name, seconds, every, where in self.rows:
            print(
                f"{name:{w}s} {seconds * 1e3:11.3f} {seconds / step:8.2f} {every:6d} {seconds / every / step:8.3%}  {where}"
            )
