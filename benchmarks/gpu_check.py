"""GPU check: the default built-ins never synchronise the training thread, and what they cost.

One command, a few minutes on one GPU::

    python benchmarks/gpu_check.py                 # CUDA (the real check)
    python benchmarks/gpu_check.py --device cpu    # smoke mode: same code path, no sync detection

1. **No host sync.** A small CUDA training loop (MLP, AdamW, gradient clipping, periodic eval)
   runs with a Monitor carrying every default built-in and every input they use, under
   ``torch.cuda.set_sync_debug_mode("error")``: any synchronising call (``.item()``, a
   blocking copy, ``nonzero``...) raises. In a metric that raise is isolated by the Monitor,
   so the check reads ``mon.errors`` and metricreg's log as well as the loop itself.
   The run is then read back to confirm that values were written.
2. **Overhead.** The bare loop and the monitored loop (sync checks off) alternate
   ``--repeat`` times; best-of times and the ratio monitored / bare are printed.

Prints a PASS/FAIL summary and exits 0 (PASS) or 1 (FAIL). ``--inject-sync`` adds a metric
that calls ``.item()`` on the loss, to show what a failure looks like (on CPU it raises).
"""

from __future__ import annotations

import argparse
import copy
import logging
import os
import sys
import tempfile
import time

os.environ.setdefault("METRICREG_DISABLE_PLUGIN_AUTOLOAD", "1")

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from signal_costs import anchor_model

import metricreg as mr


class SyncingMetric:
    """A deliberately bad metric: reads the loss on the host (a sync on CUDA)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device

    @mr.hookimpl
    def metricreg_register_metrics(self, register):
        register(mr.Metric("check/syncing", compute=self.compute, every=10))

    def compute(self, loss):
        if self.device.type != "cuda":
            raise RuntimeError("simulated host sync (--inject-sync on CPU)")
        return loss.item()


class LogCapture(logging.Handler):
    """metricreg's warnings and errors (writer-thread failures included)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def make(device: torch.device, seed: int = 0):
    torch.manual_seed(seed)
    model = anchor_model().to(device)
    ema = copy.deepcopy(model).requires_grad_(False)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    gen = torch.Generator(device=device).manual_seed(seed)
    w = torch.randn(64, 10, generator=gen, device=device)
    return model, ema, opt, gen, w


def train(steps: int, device: torch.device, mon: mr.Monitor | None) -> float:
    """The training loop; returns seconds (the device's queue drained before the clock stops)."""
    model, ema, opt, gen, w = make(device)
    val_x = torch.randn(1024, 64, generator=gen, device=device)
    val_y = (val_x @ w).argmax(1)
    _sync(device)
    start = time.perf_counter()
    for step in range(steps):
        x = torch.randn(256, 64, generator=gen, device=device)
        y = (x @ w).argmax(1)
        hidden = model[:4](x)
        logits = model[4](hidden)
        loss = F.cross_entropy(logits, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        with torch.no_grad():
            torch._foreach_lerp_(list(ema.parameters()), list(model.parameters()), 0.01)
        if mon is not None:
            mon.step(
                step,
                loss=loss.detach(),
                accuracy=(logits.argmax(1) == y).float().mean(),
                model=model,
                ema_model=ema,
                momentum=0.99,
                optimizer=opt,
                grad_norm=grad_norm,
                max_norm=1.0,
                batch_size=256,
                embeddings=lambda h=hidden: h.detach(),
                predictions=lambda lg=logits: lg.detach(),
                targets=lambda yy=y: F.one_hot(yy, 10).float(),
                heads={"first": "0", "last": model[4]},
                probe=lambda h=hidden, yy=y: (h.detach(), yy),
                projector=lambda h=hidden, yy=y: (h.detach(), yy),
            )
            if step % 250 == 0:
                with torch.no_grad():
                    val_logits = model(val_x)
                    mon.eval(
                        step,
                        loss=F.cross_entropy(val_logits, val_y),
                        accuracy=(val_logits.argmax(1) == val_y).float().mean(),
                    )
    _sync(device)
    return time.perf_counter() - start


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def sync_check(args: argparse.Namespace, device: torch.device, logdir: str) -> list[str]:
    """Run the monitored loop with host syncs turned into errors; the list of problems found."""
    problems: list[str] = []
    capture = LogCapture()
    logging.getLogger("metricreg").addHandler(capture)
    plugins = [SyncingMetric(device)] if args.inject_sync else []
    train(20, device, None)  # CUDA context, cuBLAS handles, allocator: warm before the check
    mon = mr.Monitor(logdir, plugins=plugins)
    if device.type == "cuda":
        torch.cuda.set_sync_debug_mode("error")
    try:
        train(args.steps, device, mon)
    except Exception as exc:  # a sync in the loop itself, or in metricreg outside a metric
        problems.append(f"training loop raised {type(exc).__name__}: {exc}")
    finally:
        if device.type == "cuda":
            torch.cuda.set_sync_debug_mode(0)
        mon.close()
        logging.getLogger("metricreg").removeHandler(capture)
    for name, info in mon.errors.items():
        problems.append(f"metric {name!r} (plugin {info['plugin']!r}) failed {info['count']}x: {info['last_message']}")
    for record in capture.records:
        message = record.getMessage()
        if "failed at step" in message or "disabled after" in message:
            continue  # metric failures: reported from mon.errors above
        if record.levelno >= logging.ERROR or "sync" in message.lower():
            problems.append(f"log: {message}")
        else:
            print(f"  note: {message}")
    written = _written(logdir)
    expected = len(range(0, args.steps, 10))
    if written.get("train/loss", 0) != expected:
        problems.append(f"train/loss has {written.get('train/loss', 0)} points, expected {expected}")
    print(f"sync check: {args.steps} steps, {len(mon.registry.metrics)} metrics, {len(written)} scalar tags written")
    return problems


def _written(logdir: str) -> dict[str, int]:
    from tensorboard.backend.event_processing import event_accumulator

    acc = event_accumulator.EventAccumulator(logdir, size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: len(acc.Scalars(tag)) for tag in acc.Tags()["scalars"]}


def overhead(args: argparse.Namespace, device: torch.device, tmp: str) -> tuple[float, float]:
    """Best-of bare and monitored seconds for ``--overhead-steps`` steps, alternating runs."""
    bare, monitored = [], []
    for i in range(args.repeat):
        bare.append(train(args.overhead_steps, device, None))
        with mr.Monitor(os.path.join(tmp, f"overhead{i}")) as mon:
            monitored.append(train(args.overhead_steps, device, mon))
    return min(bare), min(monitored)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda", help="cuda (default; the real check) or cpu (smoke mode)")
    parser.add_argument("--steps", type=int, default=2000, help="steps of the sync check")
    parser.add_argument("--overhead-steps", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--inject-sync", action="store_true", help="add a metric that syncs (shows a FAIL)")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("FAIL: no CUDA device (use --device cpu for the smoke mode)")
        return 1
    if device.type == "cpu":
        torch.set_num_threads(1)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU (smoke mode: syncs not detected)"
    print(f"metricreg GPU check on {name}, torch {torch.__version__}")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        problems = sync_check(args, device, os.path.join(tmp, "check"))
        t_bare, t_mon = overhead(args, device, tmp)
    per = lambda t: t / args.overhead_steps * 1e3  # noqa: E731
    print(f"bare loop      : {per(t_bare):8.3f} ms/step")
    print(f"monitored loop : {per(t_mon):8.3f} ms/step   (default built-ins, best of {args.repeat})")
    print(f"overhead ratio : {t_mon / t_bare:8.3f}x   monitored / bare")
    print(f"total time     : {time.perf_counter() - started:8.1f} s")
    for problem in problems:
        print(f"  problem: {problem}")
    verdict = "FAIL" if problems else "PASS"
    detail = f"{len(problems)} problem(s)" if problems else "no host sync on the training thread, values written"
    if device.type != "cuda" and not problems:
        detail += " (smoke mode: syncs are only detected on CUDA)"
    print(f"{verdict}: {detail}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
