"""``python -m benchmarks.detection {train,judge,run}``: the detection benchmark's command line.

  train   train every (or each --scenarios glob's) scenario × seed into --logdir
  judge   re-judge the runs already in --logdir with the current rules (no training)
  run     train, then judge

``judge`` exits 0 unless ``--check`` is given and a target is missed (an alert on
a healthy run; a broken run not detected, detected late, or alerting before onset).
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import sys
import time
from collections.abc import Sequence

DEFAULT_LOGDIR = "/work/detruns"
QUICK_LOGDIR = "/work/detruns-quick"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.detection",
        description="The detection benchmark: training scenarios with ground truth, judged by metricreg's rules.",
    )
    sub = p.add_subparsers(dest="command", required=True)
    for name, text in (
        ("train", "train scenarios × seeds into --logdir"),
        ("judge", "judge the runs in --logdir with the current rules (no training)"),
        ("run", "train, then judge"),
    ):
        c = sub.add_parser(name, help=text, description=text)
        if name == "judge":  # several: new scenarios trained apart are judged with the healthy twins they need
            c.add_argument(
                "--logdir",
                nargs="+",
                help=f"where runs live, one or more directories (default {DEFAULT_LOGDIR}; {QUICK_LOGDIR} with --quick)",
            )
        else:
            c.add_argument("--logdir", help=f"where runs live (default {DEFAULT_LOGDIR}; {QUICK_LOGDIR} with --quick)")
        c.add_argument("--scenarios", nargs="+", metavar="GLOB", default=[], help="only scenarios matching a glob")
        c.add_argument("--quick", action="store_true", help="the short subset (a few hundred steps each)")
        if name != "judge":
            c.add_argument("--seeds", type=int, metavar="N", help="seeds per scenario (default: the table's)")
            c.add_argument("--jobs", type=int, default=2, metavar="N", help="training processes (default 2)")
        if name != "train":
            c.add_argument("--json", metavar="FILE", help="write every score as JSON")
            c.add_argument("--markdown", metavar="FILE", help="write the results tables as markdown")
            c.add_argument("--details", action="store_true", help="list each run's false alerts")
            c.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
            c.add_argument(
                "--rules",
                choices=("installed", "recorded"),
                default="installed",
                help="thresholds to judge with: the installed metricreg's (default) or those each run recorded "
                "when it was trained (exactly what `metricreg report` shows for it)",
            )
    return p


def _train(args: argparse.Namespace, logdir: str) -> None:
    from benchmarks.detection.runner import jobs_for, train_all
    from benchmarks.detection.scenarios import select

    if args.seeds is not None and args.seeds < 1:
        raise SystemExit(f"--seeds must be >= 1, got {args.seeds}")
    if args.jobs < 1:
        raise SystemExit(f"--jobs must be >= 1, got {args.jobs}")
    try:
        scenarios = select(args.scenarios, args.quick)
    except ValueError as exc:
        raise SystemExit(str(exc)) from None
    jobs = jobs_for(scenarios, logdir, args.seeds)
    print(f"training {len(jobs)} run(s) of {len(scenarios)} scenario(s) into {logdir} ({args.jobs} process(es))")
    start = time.perf_counter()

    def progress(record: dict, i: int, n: int) -> None:
        mark = " FAILED" if record.get("error") else ""
        print(f"  [{i}/{n}] {record['scenario']}/seed{record['seed']} {record['train_seconds']:.1f}s{mark}", flush=True)

    train_all(jobs, args.jobs, progress)
    print(f"trained {len(jobs)} run(s) in {time.perf_counter() - start:.0f} s wall")


def _judge(args: argparse.Namespace, logdirs: Sequence[str]) -> int:
    from benchmarks.detection.outcome import resolve_outcomes
    from benchmarks.detection.report import as_json, markdown, text_tables
    from benchmarks.detection.runner import find_runs
    from benchmarks.detection.score import score_run, totals

    runs = []
    for logdir in logdirs:
        if not os.path.isdir(logdir):
            raise SystemExit(f"no log directory {logdir!r}: train first (python -m benchmarks.detection train)")
        runs += find_runs(logdir)
    logdir = " ".join(logdirs)
    if args.scenarios:
        runs = [(p, t) for p, t in runs if any(fnmatch.fnmatchcase(t["scenario"], g) for g in args.scenarios)]
    if not runs:
        raise SystemExit(f"no benchmark runs under {logdir!r}" + (f" match {args.scenarios}" if args.scenarios else ""))
    from benchmarks.detection.scenarios import BY_NAME

    order = {name: i for i, name in enumerate(BY_NAME)}
    runs.sort(key=lambda pt: (order.get(pt[1]["scenario"], len(order)), pt[1]["scenario"], pt[1]["seed"]))
    from benchmarks.detection.score import installed_rules

    rules = installed_rules() if args.rules == "installed" else None
    # The ground-truth category is the scenario table's (a relabelled scenario is judged by its
    # current label; the onset stays the one resolved when the run was trained).
    runs = [(p, _current_label(t, BY_NAME)) for p, t in runs]
    scores = [score_run(path, truth, rules=rules) for path, truth in runs]
    resolve_outcomes(scores, {s.name: s.outcome for s in BY_NAME.values() if s.outcome is not None})
    print(text_tables(scores, details=args.details))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(as_json(scores), f, indent=1, allow_nan=False)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(markdown(scores))
    return 1 if args.check and not totals(scores).targets_met else 0


def _current_label(truth: dict, scenarios: dict) -> dict:
    """``truth`` with the category of its scenario as the table gives it now."""
    scenario = scenarios.get(truth.get("scenario"))
    if scenario is None or scenario.category == truth.get("category"):
        return truth
    return {**truth, "category": scenario.category}


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return _main(args)
    except SystemExit as exc:
        if isinstance(exc.code, str):  # a usage problem: say so the argparse way (exit status 2)
            parser.error(exc.code)
        raise


def _main(args: argparse.Namespace) -> int:
    default = QUICK_LOGDIR if args.quick else DEFAULT_LOGDIR
    if args.command == "judge":
        return _judge(args, args.logdir or [default])
    logdir = args.logdir or default
    _train(args, logdir)
    return _judge(args, [logdir]) if args.command == "run" else 0


if __name__ == "__main__":
    sys.exit(main())
