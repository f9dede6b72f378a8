"""Training-loop overhead of a Monitor carrying the default built-in metrics.

A small torch training loop (MLP 64 → 256 → 256 → 10 on synthetic data, batch 256, AdamW,
gradient clipping) runs ``STEPS`` steps three ways, each best of ``--repeat``:

* bare: no monitoring;
* monitored: ``mon.step(...)`` every step with every input the built-ins use (loss, accuracy,
  model, optimizer, grad_norm, max_norm, batch_size, embeddings as a lazy callable,
  predictions/targets) and ``mon.eval(...)`` every 250 steps, default schedules;
* monitored, nothing due: the same calls with every schedule pushed beyond the run (the
  hot-path cost alone).

Prints per-step times and the ratio monitored / bare. Default schedules put most metrics at
every 10-100 steps, so the ratio is dominated by the every-10 family (loss, lr, grad norm,
clip fraction, spikes, non-finite checks, gap accumulation) and the every-100 collapse/EMA work.

Run: python benchmarks/bench_builtin_overhead.py [--steps N] [--threads N] [--repeat N]
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

import metricreg as mr


def make(seed: int = 0):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(
        torch.nn.Linear(64, 256), torch.nn.ReLU(), torch.nn.Linear(256, 256), torch.nn.ReLU(), torch.nn.Linear(256, 10)
    )
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(seed)
    w = torch.randn(64, 10, generator=gen)
    return model, opt, gen, w


def train(steps: int, mon: mr.Monitor | None) -> float:
    model, opt, gen, w = make()
    val_x = torch.randn(1024, 64, generator=gen)
    val_y = (val_x @ w).argmax(1)
    start = time.perf_counter()
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
    if mon is not None:
        mon.flush()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1: stable timings)")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    train(50, None)  # warm-up

    with tempfile.TemporaryDirectory() as tmp:
        counter = iter(range(10**6))

        def monitored(config=None) -> float:
            with mr.Monitor(os.path.join(tmp, f"run{next(counter)}"), config=config) as mon:
                elapsed = train(args.steps, mon)
                errors = mon.errors
            if errors:
                raise SystemExit(f"metric errors: {errors}")
            return elapsed

        # The three variants alternate within each repetition, so a change in the machine's load
        # hits all of them; best-of-N per variant, and the median of the paired ratios.
        bare, mon, idle = [], [], []
        for _ in range(args.repeat):
            bare.append(train(args.steps, None))
            mon.append(monitored())
            idle.append(monitored({"*": {"every": 10**9}}))
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


if __name__ == "__main__":
    main()
