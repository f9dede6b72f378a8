"""Health tab backend benchmark: a big logdir, a real TensorBoard, both loaders.

    python benchmarks/bench_tab.py                      # 50 runs x 40 health tags x 10,000 steps
    python benchmarks/bench_tab.py --runs 5 --tags 10 --steps 2000    # quick mode
    python benchmarks/bench_tab.py --logdir /tmp/bench  # where the generated logdir lives (kept)

The logdir is generated once (metricreg's own event encoding and manifest, the
same bytes a Monitor writes) and reused while its parameters match. Then, for
``--load_fast=false`` (Python multiplexer) and ``--load_fast=true`` (RustBoard),
a ``tensorboard`` subprocess is started and the script measures:

* time to the first ``/data/plugins_listing`` with the Health tab enabled;
* time until every run is fully loaded (the last step is visible);
* ``/runs`` and one ``/run``: the first (cold) response and the median warm one;
* TensorBoard's own ``/data/plugin/scalars/scalars?run=..&tag=..`` on the same
  data (one tag, and all of one run's tags one by one: what the Scalars tab
  fetches for the data one ``/run`` returns).

Requests send ``Accept-Encoding: gzip`` like a browser. A live update sends the
``ETag`` it holds as ``If-None-Match``: the script times that ``304 Not Modified``
answer for ``/runs`` and ``/run``, and checks that an old URL's ``smoothing=0.6``
gets exactly the same verdict (the server ignores it: display never changes a
verdict). The target is a warm ``/runs`` and ``/run`` of at most 300 ms; the
ratios printed compare them with TensorBoard's own scalars route and the 304s
with the warm 200s.

The Python loader reads event files with a pure-Python record reader (about
15 s per 400,000 points on one core), so loading 20 million points would take
over ten minutes. It is therefore measured on a logdir with the same runs and
tags but ``--python-steps`` (default 1,000) steps: both loaders keep 1,000 points
per scalar series by default, so the plugin holds and judges exactly as many
points as on the full logdir. ``--python-steps 0`` uses the full logdir.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ProcessPoolExecutor

import numpy as np

CATEGORIES = ["collapse", "optimization", "stability", "generalization", "performance", "prediction", "system", "ema"]
TARGET_MS = 300.0


# --- generating the logdir ---------------------------------------------------------------------


def _metric_specs(tags: int) -> list[dict]:
    specs = []
    for j in range(tags):
        higher = j % 2 == 1
        health = {
            "category": CATEGORIES[j % len(CATEGORIES)],
            "warn_above": None if higher else 2.0,
            "critical_above": None if higher else 3.0,
            "warn_below": 0.5 if higher else None,
            "critical_below": 0.2 if higher else None,
            "direction": "higher_is_better" if higher else "lower_is_better",
            "description": f"benchmark metric {j}",
            "remedy": "none needed",
            "smoothing": 0.6 if j % 3 == 0 else 0.0,
            "persistence": 3 if j % 4 == 0 else 1,
            "nonfinite": "critical",
            "title": None,
        }
        specs.append(
            {
                "name": f"bench/m{j:02d}",
                "plugin": "bench",
                "kind": "scalar",
                "schedule": "every step",
                "event": "step",
                "inputs": [],
                "optional_inputs": [],
                "reduce": None,
                "fan_out": None,
                "split": None,
                "description": f"benchmark metric {j}",
                "health": {"": health},
            }
        )
    return specs


def write_run(run_dir: str, index: int, tags: int, steps: int) -> None:
    """One run: a manifest, then ``steps`` events of ``tags`` float32 scalars each."""
    from metricreg import events
    from metricreg.manifest import MANIFEST_TAG, PLUGIN_CONTENT, PLUGIN_NAME, build_manifest

    rng = np.random.default_rng(index)
    specs = _metric_specs(tags)
    names = [f"train/{s['name']}" for s in specs]
    series = {
        t: {"metric": s["name"], "member": None, "key": None, "split": "train", "kind": "scalar"}
        for t, s in zip(names, specs, strict=True)
    }
    manifest = json.dumps(build_manifest(specs, series), sort_keys=True)
    # Healthy values wander around 1.0; every 5th run has three metrics that go bad late.
    walk = rng.normal(0.0, 0.002, size=(steps, tags)).cumsum(axis=0)
    values = (1.0 + np.clip(walk, -0.3, 0.3) + rng.normal(0.0, 0.05, size=(steps, tags))).astype(np.float32)
    if index % 5 == 0:
        ramp = np.linspace(0.0, 1.0, steps // 5, dtype=np.float32)
        for j in range(min(3, tags)):
            if j % 2 == 1:
                values[-len(ramp) :, j] = 1.0 - 0.95 * ramp
            else:
                values[-len(ramp) :, j] = 1.0 + 3.5 * ramp
    if index % 10 == 7 and tags > 3:
        values[steps // 2, 3] = np.nan
    encoder = events.ScalarEncoder()
    prefixes = [encoder.value(tag, 0.0)[:-4] for tag in names]
    os.makedirs(run_dir, exist_ok=True)
    start = 1.7e9 + index
    out = bytearray(events.tfrecord(events.file_version_event(start)))
    manifest_value = events.string_tensor_value(MANIFEST_TAG, manifest, PLUGIN_NAME, PLUGIN_CONTENT)
    out += events.tfrecord(events.event(0, start, [manifest_value]))
    raw = values.tobytes()
    width = 4 * tags
    path = os.path.join(run_dir, f"events.out.tfevents.{int(start)}.bench.{index}.metricreg")
    with open(path, "wb") as handle:
        for step in range(steps):
            row = raw[step * width : (step + 1) * width]
            vals = [prefixes[j] + row[4 * j : 4 * j + 4] for j in range(tags)]
            out += events.tfrecord(events.event(step, start + 0.1 * step, vals))
            if len(out) > (1 << 22):
                handle.write(out)
                out.clear()
        out += events.tfrecord(events.event(steps - 1, start + 0.1 * steps, [manifest_value]))
        handle.write(out)


def ensure_logdir(logdir: str, runs: int, tags: int, steps: int, workers: int) -> float:
    """Generate the logdir unless a matching one is there; returns the seconds spent."""
    marker = os.path.join(logdir, "bench.json")
    params = {"runs": runs, "tags": tags, "steps": steps, "version": 1}
    try:
        with open(marker) as handle:
            if json.load(handle) == params:
                return 0.0
    except (OSError, ValueError):
        pass
    if os.path.exists(logdir) and os.listdir(logdir):
        import shutil

        shutil.rmtree(logdir)
    os.makedirs(logdir, exist_ok=True)
    began = time.perf_counter()
    with ProcessPoolExecutor(max_workers=workers) as pool:
        jobs = [pool.submit(write_run, os.path.join(logdir, f"run{i:03d}"), i, tags, steps) for i in range(runs)]
        for job in jobs:
            job.result()
    with open(marker, "w") as handle:
        json.dump(params, handle)
    return time.perf_counter() - began


# --- measuring ---------------------------------------------------------------------------------


def _get(url: str, timeout: float = 600.0, etag: str | None = None) -> tuple[int, bytes, float]:
    headers = {"Accept-Encoding": "gzip", **({"If-None-Match": etag} if etag else {})}
    request = urllib.request.Request(url, headers=headers)
    began = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            body = resp.read()
            code = resp.status
            if resp.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
    except urllib.error.HTTPError as exc:
        code, body = exc.code, exc.read()
    return code, body, (time.perf_counter() - began) * 1000.0


def _json(url: str):
    code, body, ms = _get(url)
    if code != 200:
        raise RuntimeError(f"{url}: HTTP {code}: {body[:200]!r}")
    return json.loads(body), ms


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("localhost", 0))
        return sock.getsockname()[1]


def _median_ms(url: str, repeat: int, etag: str | None = None, code: int = 200) -> float:
    times = []
    for _ in range(repeat):
        got, body, ms = _get(url, etag=etag)
        if got != code:
            raise RuntimeError(f"{url}: HTTP {got}, expected {code}: {body[:200]!r}")
        times.append(ms)
    return statistics.median(times)


def _etag(url: str) -> str:
    request = urllib.request.Request(url, method="HEAD")
    with urllib.request.urlopen(request, timeout=600) as resp:
        return resp.headers["ETag"]


def measure(logdir: str, load_fast: str, runs: int, tags: int, steps: int, repeat: int, timeout: float) -> dict:
    """Start ``tensorboard`` on ``logdir`` with one loader and time the routes."""
    port = _free_port()
    base = f"http://localhost:{port}/"
    env = dict(os.environ, METRICREG_DISABLE_PLUGIN_AUTOLOAD="1")
    cmd = [sys.executable, "-m", "tensorboard.main", "--logdir", logdir, "--port", str(port)]
    cmd += ["--load_fast", load_fast, "--reload_interval", "0"]
    began = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    result: dict = {"loader": "RustBoard" if load_fast == "true" else "Python", "steps": steps}
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"tensorboard exited with {proc.returncode}")
            if time.monotonic() > deadline:
                raise RuntimeError("timed out waiting for the Health tab")
            try:
                listing, _ = _json(base + "data/plugins_listing")
                if listing.get("metricreg_health", {}).get("enabled"):
                    break
            except (OSError, RuntimeError, ValueError):
                pass
            time.sleep(0.05)
        result["first_listing_s"] = time.perf_counter() - began
        last_tag = f"train/bench/m{tags - 1:02d}"
        pending = {f"run{i:03d}" for i in range(runs)}
        while pending:
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out loading; {len(pending)} runs incomplete")
            for run in sorted(pending):
                query = urllib.parse.urlencode({"run": run, "tag": last_tag})
                code, body, _ = _get(base + "data/plugin/scalars/scalars?" + query)
                if code == 200 and (points := json.loads(body)) and points[-1][1] == steps - 1:
                    pending.discard(run)
            if pending:
                time.sleep(0.5)
        result["loaded_s"] = time.perf_counter() - began

        runs_url = base + "data/plugin/metricreg_health/runs"
        body, result["runs_cold_ms"] = _json(runs_url)
        statuses = [r["status"] for r in body["runs"]]
        result["listed"] = len(statuses)
        result["critical_runs"] = statuses.count("critical")
        result["runs_warm_ms"] = _median_ms(runs_url, repeat)
        result["runs_304_ms"] = _median_ms(runs_url, repeat, etag=_etag(runs_url), code=304)
        smoothed, _ = _json(runs_url + "?smoothing=0.6")
        result["smoothing_ignored"] = smoothed == body
        run = "run000"
        run_url = base + "data/plugin/metricreg_health/run?" + urllib.parse.urlencode({"run": run})
        detail, result["run_cold_ms"] = _json(run_url)
        result["run_points"] = sum(len(m["steps"]) for c in detail["categories"] for m in c["metrics"])
        result["run_held_points"] = sum(m["points"] for c in detail["categories"] for m in c["metrics"])
        result["run_warm_ms"] = _median_ms(run_url, repeat)
        result["run_304_ms"] = _median_ms(run_url, repeat, etag=_etag(run_url), code=304)
        smoothed, _ = _json(run_url + "&smoothing=0.6")
        result["smoothing_ignored"] = result["smoothing_ignored"] and smoothed == detail
        query = urllib.parse.urlencode({"run": run, "tag": "train/bench/m00"})
        scalars_url = base + "data/plugin/scalars/scalars?" + query
        result["scalars_one_tag_ms"] = _median_ms(scalars_url, repeat)
        all_tags = []
        for _ in range(max(1, repeat // 2)):
            total = 0.0
            for j in range(tags):
                query = urllib.parse.urlencode({"run": run, "tag": f"train/bench/m{j:02d}"})
                total += _get(base + "data/plugin/scalars/scalars?" + query)[2]
            all_tags.append(total)
        result["scalars_all_tags_ms"] = statistics.median(all_tags)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
    return result


def _fmt(value: float, unit: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if unit == "n":
        return f"{value:,}"
    return f"{value:.2f} s" if unit == "s" else f"{value:.1f} ms"


def report(results: list[dict], args: argparse.Namespace) -> bool:
    rows = [
        ("steps per run in the logdir", "steps", "n"),
        ("first listing (tab enabled)", "first_listing_s", "s"),
        ("fully loaded", "loaded_s", "s"),
        ("/runs cold", "runs_cold_ms", "ms"),
        ("/runs warm (median)", "runs_warm_ms", "ms"),
        ("/runs If-None-Match: 304 (median)", "runs_304_ms", "ms"),
        ("/run cold", "run_cold_ms", "ms"),
        ("/run warm (median)", "run_warm_ms", "ms"),
        ("/run If-None-Match: 304 (median)", "run_304_ms", "ms"),
        ("scalars/scalars, 1 tag (median)", "scalars_one_tag_ms", "ms"),
        (f"scalars/scalars, {args.tags} tags of 1 run", "scalars_all_tags_ms", "ms"),
    ]
    print()
    print(f"logdir: {args.runs} runs x {args.tags} health tags x {args.steps} steps ({args.logdir})")
    header = f"{'measure':<36}" + "".join(f"{r['loader']:>16}" for r in results)
    print(header)
    print("-" * len(header))
    for label, key, unit in rows:
        print(f"{label:<36}" + "".join(f"{_fmt(r.get(key), unit):>16}" for r in results))
    print()
    ok = True
    for r in results:
        ratio_runs = r["runs_warm_ms"] / r["scalars_one_tag_ms"]
        ratio_run = r["run_warm_ms"] / r["scalars_all_tags_ms"]
        print(
            f"{r['loader']}: listed {r['listed']} runs ({r['critical_runs']} critical); /run held "
            f"{r['run_held_points']} points and returned {r['run_points']}; warm /runs = {ratio_runs:.1f}x one "
            f"scalars request; warm /run = {ratio_run:.2f}x the {args.tags} scalars requests for the same tags"
        )
        print(
            f"  unchanged data: /runs 304 = {r['runs_304_ms'] / r['runs_warm_ms']:.2f}x a warm /runs, "
            f"/run 304 = {r['run_304_ms'] / r['run_warm_ms']:.2f}x a warm /run; "
            f"?smoothing=0.6 ignored (same verdict): {r['smoothing_ignored']}"
        )
        if not r["smoothing_ignored"]:
            ok = False
            print("  FAILED: a smoothing parameter changed the verdict")
        for key in ("runs_warm_ms", "run_warm_ms", "runs_304_ms", "run_304_ms"):
            if r[key] > TARGET_MS:
                ok = False
                print(f"  ABOVE TARGET: {key} = {r[key]:.1f} ms > {TARGET_MS:.0f} ms")
    print(f"target: warm /runs and /run <= {TARGET_MS:.0f} ms: {'met' if ok else 'NOT met'}")
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--tags", type=int, default=40)
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--logdir", default=None, help="where to generate (and cache) the logdir")
    parser.add_argument(
        "--python-steps",
        type=int,
        default=1000,
        help="steps of the logdir the Python loader is measured on (0: the full logdir)",
    )
    parser.add_argument("--loaders", default="false,true", help="--load_fast values to measure")
    parser.add_argument("--repeat", type=int, default=7, help="requests per warm median")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes generating runs")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds allowed per loader")
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    if min(args.runs, args.tags, args.steps) < 1 or args.tags > 100:
        parser.error("--runs/--tags/--steps must be positive (and --tags at most 100)")
    if args.logdir is None:
        args.logdir = os.path.join(tempfile.gettempdir(), f"metricreg-bench-{args.runs}x{args.tags}x{args.steps}")
    results = []
    for load_fast in [s.strip() for s in args.loaders.split(",") if s.strip()]:
        steps, logdir = args.steps, args.logdir
        if load_fast == "false" and 0 < args.python_steps < args.steps:
            steps, logdir = args.python_steps, f"{args.logdir}-python{args.python_steps}"
        spent = ensure_logdir(logdir, args.runs, args.tags, steps, args.workers)
        if spent:
            print(f"generated {args.runs * args.tags * steps:,} scalar points in {spent:.1f} s ({logdir})")
        print(f"measuring --load_fast={load_fast} on {steps:,} steps per run ...", flush=True)
        results.append(measure(logdir, load_fast, args.runs, args.tags, steps, args.repeat, args.timeout))
    ok = report(results, args)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"params": vars(args), "results": results, "target_met": ok}, handle, indent=2)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
