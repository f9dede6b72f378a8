"""Train scenarios × seeds into a log directory, in parallel worker processes.

Layout: ``<logdir>/<scenario>/seed<k>/`` holds the run's event files and a
``truth.json`` with its ground truth (category, resolved onset), the settings it
was trained with and the loop's evidence (``info``). :mod:`.score` reads only
these, so runs can be re-judged without retraining.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import shutil
import time
import traceback
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any

from benchmarks.detection.scenarios import Scenario

TRUTH_FILE = "truth.json"


@dataclass(frozen=True)
class Job:
    scenario: Scenario
    seed: int
    run_dir: str


def jobs_for(scenarios: Iterable[Scenario], logdir: str, seeds: int | None = None) -> list[Job]:
    """One job per scenario and seed (``seeds`` overrides each scenario's own count)."""
    return [
        Job(s, seed, os.path.join(logdir, s.name, f"seed{seed}"))
        for s in scenarios
        for seed in range(seeds if seeds is not None else s.seeds)
    ]


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # JSON has no NaN/Inf
    return value


def train_one(job: Job) -> dict[str, Any]:
    """Train one run into a fresh directory and write its truth.json; a failing run is recorded, not raised."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("METRICREG_DISABLE_PLUGIN_AUTOLOAD", "1")
    s = job.scenario
    shutil.rmtree(job.run_dir, ignore_errors=True)
    os.makedirs(job.run_dir)
    start = time.perf_counter()
    info: dict[str, Any] = {}
    error = None
    try:
        info = s.train(job.run_dir, job.seed, **s.kwargs)
    except Exception:  # the benchmark goes on; the run is reported as failed
        error = traceback.format_exc(limit=5)
    onset = s.onset
    if s.onset_from is not None:
        onset = info.get(s.onset_from)
    record = {
        "scenario": s.name,
        "group": s.group,
        "seed": job.seed,
        "category": s.category,
        "onset": onset,
        "truth": s.truth,
        "holdout": s.holdout,
        "note": s.note,
        "kwargs": s.kwargs,
        "info": {k: _finite(v) for k, v in info.items()},
        "train_seconds": round(time.perf_counter() - start, 2),
        "error": error,
    }
    with open(os.path.join(job.run_dir, TRUTH_FILE), "w") as f:
        json.dump(record, f, indent=1)
    return record


def _init_worker() -> None:
    os.environ["OMP_NUM_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)


def train_all(
    jobs: list[Job], processes: int = 2, progress: Callable[[dict[str, Any], int, int], None] | None = None
) -> list[dict[str, Any]]:
    """Run every job (``processes`` at a time, one torch thread each); returns their truth records."""
    os.environ["OMP_NUM_THREADS"] = "1"  # inherited by the spawned workers before torch loads
    os.environ.setdefault("METRICREG_DISABLE_PLUGIN_AUTOLOAD", "1")
    done: list[dict[str, Any]] = []
    # Longest first keeps the workers busy until the end.
    ordered = sorted(jobs, key=lambda j: -int(j.scenario.kwargs.get("steps", 2000)))
    if processes <= 1:  # in this process (tests): restore torch's thread count afterwards
        import torch

        threads = torch.get_num_threads()
        try:
            for job in ordered:
                done.append(train_one(job))
                if progress:
                    progress(done[-1], len(done), len(jobs))
        finally:
            torch.set_num_threads(threads)
        return done
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(processes, mp_context=ctx, initializer=_init_worker) as pool:
        futures = [pool.submit(train_one, job) for job in ordered]
        for future in as_completed(futures):
            done.append(future.result())
            if progress:
                progress(done[-1], len(done), len(jobs))
    return done


def find_runs(logdir: str) -> list[tuple[str, dict[str, Any]]]:
    """(run directory, truth record) of every trained run under ``logdir``, in name order."""
    found = []
    for dirpath, dirnames, filenames in os.walk(logdir):
        dirnames.sort()
        if TRUTH_FILE in filenames:
            with open(os.path.join(dirpath, TRUTH_FILE)) as f:
                found.append((dirpath, json.load(f)))
    return found
