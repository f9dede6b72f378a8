"""A JEPA-style training run monitored by metricreg: healthy, or broken on purpose.

The model, data and training loop live in ``metricreg/demo.py`` (so that
``metricreg demo`` works from an installed package); this script is its command line.

    python examples/jepa_train.py --logdir runs                     # one healthy run: runs/healthy
    python examples/jepa_train.py --logdir runs --collapse          # no predictor / EMA teacher: collapse
    python examples/jepa_train.py --logdir runs --ema-momentum 1.0  # frozen teacher: EMA stalls
    python examples/jepa_train.py --logdir runs --overfit           # 16 training samples: overfits
    python examples/jepa_train.py --logdir runs --all               # all four (what `make demo` runs)
    tensorboard --logdir runs                                       # then open the Health tab

What it logs (see ``metricreg plugins`` for every metric's schedule and thresholds):

* collapse of each encoder and level: ``embeddings={"context": ..., "target": ...,
  "context_l1": ..., "target_l1": ...}`` fans out to ``train/collapse/<key>/<member>``;
* the EMA teacher against the student: ``model``, ``ema_model``, ``momentum``,
  ``student_out`` / ``teacher_out``;
* the generalization gap: ``mon.eval(step, loss=val_loss)`` against the training ``loss``;
* optimization (``optimizer``, ``max_norm``: learning rate, gradient norm, clipping, update
  ratio), prediction quality (``predictions`` / ``targets``), stability (``loss``) and
  performance (``batch_size``, ``forward_time``, ``backward_time``);
* two script-local metrics from a plugin class defined next to the model: per-level losses
  with their contributions (``jepa/loss``) and masking statistics (``jepa/masking``).
"""

from __future__ import annotations

import argparse
import os
import sys

from metricreg import demo


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--logdir", default="runs", help="parent directory of the runs (default: runs)")
    parser.add_argument("--run", help="run name, a subdirectory of --logdir (default: named after the flags)")
    parser.add_argument(
        "--collapse", action="store_true", help="remove what prevents collapse (predictor, EMA, stop-gradient)"
    )
    parser.add_argument(
        "--ema-momentum",
        type=float,
        default=demo.JEPAConfig.ema_momentum,
        help=f"EMA teacher momentum (default {demo.JEPAConfig.ema_momentum}; 1.0 freezes the teacher)",
    )
    parser.add_argument("--overfit", action="store_true", help="train on 16 samples instead of a fresh stream")
    parser.add_argument("--steps", type=int, default=demo.JEPAConfig.steps, help="training steps per run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--all", action="store_true", help="run the four variants into LOGDIR/<variant>: " + ", ".join(demo.VARIANTS)
    )
    args = parser.parse_args(argv)
    if args.steps < 1:
        parser.error("--steps must be positive")
    if not 0.0 <= args.ema_momentum <= 1.0:
        parser.error("--ema-momentum must be in [0, 1]")

    bar = demo.ProgressBar(sys.stderr)
    if args.all:
        if args.run or args.collapse or args.overfit:
            parser.error("--all trains every variant; it takes no --run, --collapse or --overfit")
        demo.run_all(args.logdir, steps=args.steps, progress=bar)
        names = list(demo.VARIANTS)
    else:
        flags = [
            name
            for name, on in (
                ("collapse", args.collapse),
                ("stalled_ema", args.ema_momentum >= 1.0),
                ("overfit", args.overfit),
            )
            if on
        ]
        name = args.run or ("_".join(flags) or "healthy")
        cfg = demo.JEPAConfig(
            steps=args.steps,
            collapse=args.collapse,
            ema_momentum=args.ema_momentum,
            overfit=args.overfit,
            seed=args.seed,
        )
        demo.train(os.path.join(args.logdir, name), cfg, progress=lambda d, t: bar(name, d, t), fresh=True)
        names = [name]
    print(f"wrote {', '.join(os.path.join(args.logdir, n) for n in names)}")
    print(f"view:  tensorboard --logdir {args.logdir}    (Health tab)")
    print(f"or:    metricreg report {args.logdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
