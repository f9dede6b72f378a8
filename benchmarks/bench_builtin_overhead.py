"""Training-loop overhead of a Monitor carrying the default built-in metrics.

A small torch training loop (MLP 64 → 256 → 256 → 10 on synthetic data, batch 256, AdamW,
gradient clipping) runs ``STEPS`` steps three ways, alternating within each of ``--repeat``
repetitions so that a change in the machine's load hits all of them:

* bare: no monitoring;
* monitored: ``mon.step(...)`` every step with every input the built-ins use (loss, accuracy,
  model, optimizer, grad_norm, max_norm, batch_size, embeddings as a lazy callable,
  predictions/targets) and ``mon.eval(...)`` every 250 steps, default schedules;
* monitored, nothing due: the same calls with every schedule pushed beyond the run (the
  hot-path cost alone).

Two figures answer "what does monitoring cost?":

* **training-thread share**: CPU seconds the training thread spends inside ``mon.step``/``mon.eval``
  (``time.thread_time`` around each call: robust to other processes taking the cores) divided by
  the bare loop's CPU seconds in the same repetition, less the timer's own cost. This is the cost the training
  loop itself pays; work handed to the writer thread (event encoding, the collapse spectra on
  CPU) is not in it. Target: ≤ 1%.

  The timer's cost is calibrated **in the loop**: a fourth variant per repetition times an empty
  call at the place of ``mon.step`` (same loop, same inputs built). ``thread_time`` is a system
  call, and after a training step it costs 4–20 µs a pair on the shared 2-core machine, against
  ~0.8 µs back to back; the warm calibration alone left that difference (~0.3% of a 1.8 ms step)
  in the share. The share with the warm calibration is printed too, for comparison with older figures.
* **loop ratio**: the monitored loop's wall time over the bare loop's, which also counts the
  writer thread competing for the cores and the inputs built for the Monitor (accuracy).

``--profile`` adds a table of what each metric costs per due step on the training thread.

Run: python benchmarks/bench_builtin_overhead.py [--steps N] [--threads N] [--repeat N] [--profile]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("METRICREG_DISABLE_PLUGIN_AUTOLOAD", "1")
if __name__ == "__main__":  # BLAS thread pools read these at import time (default: 1 thread)
    _n = sys.argv[sys.argv.index("--threads") + 1] if "--threads" in sys.argv else "1"
    for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[_var] = _n

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from signal_costs import anchor_model

import metricreg as mr


def make(seed: int = 0):
    torch.manual_seed(seed)
    model = anchor_model()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(seed)
    w = torch.randn(64, 10, generator=gen)
    return model, opt, gen, w


class Timed:
    """Wraps a Monitor so that the time spent inside ``step`` and ``eval`` is summed (``inside``)."""

    def __init__(self, mon: mr.Monitor) -> None:
        self.mon = mon
        self.inside = 0.0
        self.calls = 0

    def step(self, *args, **kwargs) -> None:
        start = time.thread_time()
        self.mon.step(*args, **kwargs)
        self.inside += time.thread_time() - start
        self.calls += 1

    def eval(self, *args, **kwargs) -> None:
        start = time.thread_time()
        self.mon.eval(*args, **kwargs)
        self.inside += time.thread_time() - start
        self.calls += 1

    def flush(self) -> None:
        self.mon.flush()


class _Noop:
    def step(self, *args, **kwargs) -> None:
        pass


class TimerOnly:
    """``Timed`` around an empty call, at the place of ``mon.step``/``mon.eval`` in the loop: the timer's cold cost."""

    def __init__(self) -> None:
        self.inside = 0.0
        self.calls = 0

    def _empty(self) -> None:
        pass

    def step(self, *args, **kwargs) -> None:
        start = time.thread_time()
        self._empty()
        self.inside += time.thread_time() - start
        self.calls += 1

    eval = step

    def flush(self) -> None:
        pass


def timer_bias(calls: int = 20_000) -> float:
    """What ``Timed`` reads around a call that does nothing (``thread_time`` is a syscall, ~1-2 us)."""
    timed = Timed(_Noop())  # type: ignore[arg-type]
    for _ in range(calls):
        timed.step()
    return timed.inside / calls


def train(steps: int, mon: mr.Monitor | Timed | None, cpu: list[float] | None = None) -> float:
    """Wall seconds for ``steps`` steps; appends the training thread's CPU seconds to ``cpu``."""
    model, opt, gen, w = make()
    val_x = torch.randn(1024, 64, generator=gen)
    val_y = (val_x @ w).argmax(1)
    start, start_cpu = time.perf_counter(), time.thread_time()
    for step in range(steps):
        x = torch.randn(256, 64, generator=gen)
        y = (x @ w).argmax(1)
        hidden = model[:4](x)
        logits = model[4](hidden)
        loss = F.cross_entropy(logits, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if mon is not None:
            mon.step(
                step,
                loss=loss.detach(),
                accuracy=(logits.argmax(1) == y).float().mean(),
                model=model,
                optimizer=opt,
                grad_norm=grad_norm,
                max_norm=1.0,
                batch_size=256,
                embeddings=lambda h=hidden: h.detach(),
                predictions=lambda lg=logits: lg.detach(),
                targets=lambda yy=y: F.one_hot(yy, 10).float(),
            )
            if step % 250 == 0:
                with torch.no_grad():
                    val_logits = model(val_x)
                    mon.eval(
                        step,
                        loss=F.cross_entropy(val_logits, val_y),
                        accuracy=(val_logits.argmax(1) == val_y).float().mean(),
                    )
    if cpu is not None:
        cpu.append(time.thread_time() - start_cpu)
    if mon is not None:
        mon.flush()
    return time.perf_counter() - start


def profile_metrics(steps: int) -> None:
    """Per-metric training-thread cost (wraps Monitor._run_one and _rule_inputs, private methods: benchmark only).

    A rule run in the writer-thread job (metricreg.rule_jobs) costs the training thread only its
    inputs' reads and copies (_rule_inputs); it is listed with ``*`` after its name.
    """
    from metricreg import monitor as monitor_module

    cost: dict[str, float] = {}
    calls: dict[str, int] = {}
    real = monitor_module.Monitor._run_one
    real_inputs = monitor_module.Monitor._rule_inputs

    def timed_run_one(self, compiled, *args, **kwargs):
        start = time.thread_time()
        real(self, compiled, *args, **kwargs)
        cost[compiled.name] = cost.get(compiled.name, 0.0) + time.thread_time() - start
        calls[compiled.name] = calls.get(compiled.name, 0) + 1

    def timed_rule_inputs(self, compiled, *args, **kwargs):
        start = time.thread_time()
        out = real_inputs(self, compiled, *args, **kwargs)
        name = compiled.name + ("*" if compiled.route else "")
        cost[name] = cost.get(name, 0.0) + time.thread_time() - start
        calls[name] = calls.get(name, 0) + 1
        return out

    cpu: list[float] = []
    for _ in range(2):
        train(steps, None, cpu)
    bare = min(cpu)
    monitor_module.Monitor._run_one = timed_run_one
    monitor_module.Monitor._rule_inputs = timed_rule_inputs
    try:
        with tempfile.TemporaryDirectory() as tmp, mr.Monitor(os.path.join(tmp, "profile")) as mon:
            train(steps, mon)
    finally:
        monitor_module.Monitor._run_one = real
        monitor_module.Monitor._rule_inputs = real_inputs
    print(f"\nper metric, training-thread CPU time ({steps} steps; share of the bare loop's {bare * 1e3:.0f} ms):")
    print(f"{'metric':34s} {'due':>5s} {'us/due step':>12s} {'share':>7s}")
    for name, total in sorted(cost.items(), key=lambda kv: -kv[1]):
        print(f"{name:34s} {calls[name]:5d} {total / calls[name] * 1e6:12.1f} {total / bare * 100:6.2f}%")
    print(f"{'all metrics':34s} {'':5s} {'':12s} {sum(cost.values()) / bare * 100:6.2f}%")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1: stable timings)")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--profile", action="store_true", help="also print the cost of each metric")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    train(50, None)  # warm-up
    bias = min(timer_bias() for _ in range(3))

    with tempfile.TemporaryDirectory() as tmp:
        counter = iter(range(10**6))

        def monitored(config=None) -> tuple[float, float, int]:
            with mr.Monitor(os.path.join(tmp, f"run{next(counter)}"), config=config) as mon:
                timed = Timed(mon)
                elapsed = train(args.steps, timed)  # type: ignore[arg-type]
                errors = mon.errors
            if errors:
                raise SystemExit(f"metric errors: {errors}")
            return elapsed, timed.inside, timed.calls

        # The variants alternate within each repetition, so a change in the machine's load hits
        # all of them; best-of-N per variant, and medians of the paired figures.
        bare, bare_cpu, mon, idle, share, idle_share, warm_share, loop_bias = [], [], [], [], [], [], [], []
        for _ in range(args.repeat):
            bare.append(train(args.steps, None, bare_cpu))
            timer = TimerOnly()
            train(args.steps, timer)  # type: ignore[arg-type]
            cold = max(bias, timer.inside / timer.calls)  # the timer's cost in the loop, this repetition
            loop_bias.append(cold)
            elapsed, inside, calls = monitored()
            mon.append(elapsed)
            share.append(max(0.0, inside - calls * cold) / bare_cpu[-1])
            warm_share.append(max(0.0, inside - calls * bias) / bare_cpu[-1])
            elapsed, inside, calls = monitored({"*": {"every": 10**9}})
            idle.append(elapsed)
            idle_share.append(max(0.0, inside - calls * cold) / bare_cpu[-1])
        t_bare, t_mon, t_idle = min(bare), min(mon), min(idle)
        paired = statistics.median(m / b for m, b in zip(mon, bare, strict=True))
        with mr.Monitor(os.path.join(tmp, "count")) as counter_mon:
            n_metrics = len(counter_mon.registry.metrics)

    per = lambda t: t / args.steps * 1e3  # noqa: E731
    print(
        f"steps {args.steps}, torch {torch.__version__}, {torch.get_num_threads()} thread(s), {n_metrics} built-in metrics"
    )
    print(f"bare training loop          : {per(t_bare):7.3f} ms/step")
    print(f"monitored, default built-ins: {per(t_mon):7.3f} ms/step   ratio {t_mon / t_bare:5.3f}x")
    print(f"monitored, nothing due      : {per(t_idle):7.3f} ms/step   ratio {t_idle / t_bare:5.3f}x")
    print(f"overhead per step (default) : {per(t_mon - t_bare) * 1e3:7.1f} us")
    print(f"median of paired ratios     : {paired:5.3f}x   (monitored / bare, same repetition)")
    print(
        f"training-thread share       : {statistics.median(share) * 100:5.2f}%   median "
        f"(runs: {', '.join(f'{x * 100:.2f}' for x in share)}) of the bare loop, inside mon.step/eval; "
        f"target <= 1%"
    )
    print(
        f"  nothing due               : {statistics.median(idle_share) * 100:5.2f}%   "
        f"(step 0, where everything is due once, the evals and the hot path)"
    )
    print(
        f"  timer, subtracted         : {statistics.median(loop_bias) * 1e6:5.1f} us/call in the loop (runs: "
        f"{', '.join(f'{x * 1e6:.1f}' for x in loop_bias)}); {bias * 1e6:.1f} us/call back to back"
    )
    print(
        f"  share, warm calibration   : {statistics.median(warm_share) * 100:5.2f}%   median "
        f"(runs: {', '.join(f'{x * 100:.2f}' for x in warm_share)}; the back-to-back figure subtracted: "
        f"as measured before the in-loop calibration)"
    )
    if args.profile:
        profile_metrics(args.steps)


if __name__ == "__main__":
    main()
