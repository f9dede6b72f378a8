"""The ``metricreg`` command: list metric plugins, judge runs for CI, run the demo.

::

    metricreg plugins [--json]                      loaded plugins and every metric they declare
    metricreg report LOGDIR [--json] [--fail-on {warn,critical}] [--smoothing W] [--run PATTERN]
                     [--mapping FILE]
    metricreg demo LOGDIR [--steps N] [--variant NAME]

Exit codes: 0 success; 1 only when ``report --fail-on`` finds a run at or above that
level (and ``plugins`` when a plugin fails to load); 2 for input it cannot use: bad
arguments, a missing or empty log directory, an unreadable tag mapping, or a run whose
manifest, errors record or event files cannot be read (every other run is still
judged and printed); 3 for an internal error (a bug: the traceback is printed).
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import math
import os
import sys
from collections.abc import Sequence
from typing import Any

EXIT_OK = 0
EXIT_FAILING = 1
EXIT_USAGE = 2
EXIT_UNREADABLE = 2  # input it cannot read: same status as a usage error, never a verdict's 1
EXIT_INTERNAL = 3
LEVELS = ("warn", "critical")


class UsageError(Exception):
    """A bad argument: reported as one line on stderr, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (plus a pointer to --help) and exit 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


# --- helpers -------------------------------------------------------------------------------------


def _clean_json(value: Any) -> Any:
    """Non-finite floats as the strings TensorBoard's JSON uses ("NaN", "Infinity", "-Infinity")."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {k: _clean_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean_json(v) for v in value]
    return value


def _dump(data: Any) -> str:
    return json.dumps(_clean_json(data), indent=2, allow_nan=False)


def _fmt_number(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _check_logdir(path: str, *, must_exist: bool = True) -> str:
    if not path:
        raise UsageError("LOGDIR is empty")
    if os.path.exists(path) and not os.path.isdir(path):
        raise UsageError(f"{path!r} is not a directory")
    if must_exist and not os.path.exists(path):
        raise UsageError(f"log directory {path!r} does not exist")
    return path


# --- metricreg plugins ---------------------------------------------------------------------------


def _entry_points() -> dict[str, dict[str, str]]:
    from importlib.metadata import entry_points

    from metricreg.hookspecs import PROJECT

    out = {}
    for ep in entry_points().select(group=PROJECT):
        dist = getattr(ep, "dist", None)
        out[ep.name] = {"value": ep.value, "distribution": getattr(dist, "name", None) or ""}
    return out


def tag_pattern(row: dict[str, Any]) -> str:
    """The tag a metric writes: ``<split>/<name>``, a fan-out key after the first component."""
    split = row.get("split") or ("val" if row.get("event") == "eval" else "train")
    name = row["name"]
    if row.get("fan_out"):
        family, _, rest = name.partition("/")
        name = f"{family}[/<{row['fan_out']} key>]" + (f"/{rest}" if rest else "")
    return f"{split}/{name}"


def _thresholds(health: dict[str, Any]) -> str:
    parts = []
    for level in LEVELS:
        below, above = health.get(f"{level}_below"), health.get(f"{level}_above")
        if below is not None:
            parts.append(f"{level} < {below:g}")
        if above is not None:
            parts.append(f"{level} > {above:g}")
        what = {"previous": "previous point", "best_after_warmup": "best after warm-up"}.get(
            health.get("baseline"), health.get("baseline")
        )
        for bound, sign in (("below", "<"), ("above", ">")):
            frac = health.get(f"{level}_{bound}_frac")
            if frac is not None and what:
                parts.append(f"{level} {sign} {frac:g} × {what}")
    return ", ".join(parts)


def collect_plugins(config: str | None = None) -> dict[str, Any]:
    """What ``metricreg plugins`` shows, as plain data (with ``config`` applied, if given)."""
    from metricreg.config import load_config
    from metricreg.plugins import BUILTIN_PLUGINS, get_plugin_manager
    from metricreg.registry import collect
    from metricreg.spec import CONTEXT_PARAMS

    pm = get_plugin_manager()
    registry = collect(pm, load_config(config))
    rows = registry.describe()
    eps = _entry_points()
    context = set(CONTEXT_PARAMS) | {"shared"}
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["plugin"]] = counts.get(row["plugin"], 0) + 1
    plugins = []
    for name, plugin in pm.list_name_plugin():
        if plugin is None:
            continue
        if name in BUILTIN_PLUGINS:
            source = "built-in"
        elif name in eps:
            dist = eps[name]["distribution"]
            source = f"entry point {eps[name]['value']}" + (f" ({dist})" if dist else "")
        else:
            source = "user"
        plugins.append({"name": name, "source": source, "metrics": counts.get(name, 0)})
    metrics = []
    for row in rows:
        health = row.get("health") or {}
        metrics.append(
            {
                **row,
                "tag": tag_pattern(row),
                "inputs": [p for p in row["inputs"] if p not in context],
                "optional_inputs": [p for p in row["optional_inputs"] if p not in context],
                "categories": sorted({h["category"] for h in health.values()}),
            }
        )
    derived = [{"name": d.name, "plugin": d.plugin, "inputs": list(d.params)} for d in registry.derived.values()]
    inputs = [{"name": k, "description": v} for k, v in sorted(registry.step_inputs.items())]
    return {"plugins": plugins, "metrics": metrics, "derived_inputs": derived, "step_inputs": inputs}


def cmd_plugins(args: argparse.Namespace) -> int:
    if args.config is not None and not os.path.isfile(args.config):
        raise UsageError(f"config file {args.config!r} does not exist")
    data = collect_plugins(args.config)
    if args.json:
        print(_dump(data))
        return EXIT_OK
    out = [f"Plugins ({len(data['plugins'])}):"]
    width = max((len(p["name"]) for p in data["plugins"]), default=10)
    for p in data["plugins"]:
        out.append(f"  {p['name']:<{width}}  {p['source']}, {p['metrics']} metric(s)")
    out.append("")
    out.append(f"Metrics ({len(data['metrics'])}):")
    for m in data["metrics"]:
        out.append(f"  {m['name']}  [{m['plugin']}]")
        out.append(f"      tag:       {m['tag']}" + ("/<member>" if len(m["health"]) > 1 else ""))
        out.append(
            f"      kind:      {m['kind']}, {m['schedule']}" + (f", reduce={m['reduce']}" if m["reduce"] else "")
        )
        inputs = ", ".join(m["inputs"]) or "-"
        if m["optional_inputs"]:
            inputs += f" (optional: {', '.join(m['optional_inputs'])})"
        out.append(f"      inputs:    {inputs}")
        for member, health in m["health"].items():
            label = member or "value"
            rule = _thresholds(health) or "no thresholds"
            out.append(f"      health:    {label}: {health['category']}, {rule}")
    out.append("")
    out.append("Step inputs (mon.step(name=...)):")
    width = max((len(i["name"]) for i in data["step_inputs"]), default=10)
    for i in data["step_inputs"]:
        out.append(f"  {i['name']:<{width}}  {i['description']}")
    if data["derived_inputs"]:
        out.append("")
        out.append("Derived inputs (computed from other inputs when a due metric needs them):")
        for d in data["derived_inputs"]:
            out.append(f"  {d['name']}  [{d['plugin']}] from {', '.join(d['inputs']) or '-'}")
    print("\n".join(out))
    return EXIT_OK


# --- metricreg report ----------------------------------------------------------------------------


def _run_report(verdict: Any) -> dict[str, Any]:
    from metricreg.manifest import category_title

    full = verdict.to_dict()
    metrics = []
    for category in full["categories"]:
        for m in category["metrics"]:
            metrics.append(
                {
                    k: m[k]
                    for k in ("tag", "metric", "category", "status", "last_step", "last_value", "thresholds", "points")
                    if k in m
                }
            )
    extra = {"reason": verdict.reason} if verdict.reason is not None else {}
    return {
        "run": verdict.run,
        "status": verdict.status,
        **extra,
        "has_manifest": verdict.has_manifest,
        "last_step": verdict.last_step,
        "dropped": verdict.dropped,
        "categories": [{"name": n, "title": category_title(n), "status": s} for n, s, _ in verdict.categories],
        "alerts": [a.to_dict() for a in verdict.alerts],
        "errors": list(verdict.errors),
        "metrics": metrics,
    }


def build_report(
    logdir: str, smoothing: float | None = None, runs: Sequence[str] = (), mapping: Any = None
) -> dict[str, Any]:
    """Judge every run under ``logdir`` with the Health tab's rules; raises UsageError for a bad logdir.

    ``mapping`` is a :class:`metricreg.mapping.TagMapping` (None: the logdir's ``metricreg.toml``
    or ``$METRICREG_MAPPING``, if any). A run that cannot be read is reported as "unreadable".
    """
    from metricreg.health import worst
    from metricreg.mapping import find_mapping, load_mapping
    from metricreg.reader import borrow_validation, find_runs, read_run
    from metricreg.verdict import UNREADABLE, has_conventional_tags, keras_siblings

    _check_logdir(logdir)
    if mapping is None:
        mapping = load_mapping(find_mapping(logdir))
    found = every_run = find_runs(logdir)
    if not found:
        raise UsageError(f"no runs under {logdir!r}: it holds no TensorBoard event files")
    if runs:
        found = {name: path for name, path in found.items() if any(fnmatch.fnmatchcase(name, p) for p in runs)}
        if not found:
            raise UsageError(f"no run under {logdir!r} matches --run {' '.join(runs)}")
    reports = []
    skipped = []
    siblings = keras_siblings(every_run)
    for name, path in found.items():
        data = read_run(path, name)
        sibling = siblings.get(name)
        if sibling is not None:  # Keras: <dir>/train judged with <dir>/validation's series
            borrow_validation(data, read_run(every_run[sibling], sibling))
        if not data.has_manifest and not data.problems and not has_conventional_tags(data.series, mapping):
            skipped.append(name)
            continue
        report = _run_report(data.evaluate(smoothing, mapping=mapping))
        report["cost"] = _run_costs(data.series)
        reports.append(report)
    if not reports:
        raise UsageError(f"no run under {logdir!r} has metricreg health data (runs without it: {', '.join(skipped)})")
    status = worst(r["status"] for r in reports if r["status"] not in ("none", UNREADABLE)) or "none"
    unreadable = [r["run"] for r in reports if r["status"] == UNREADABLE]
    return {"logdir": logdir, "status": status, "runs": reports, "skipped": skipped, "unreadable": unreadable}


def _run_costs(series: dict[str, Any]) -> list[dict[str, Any]]:
    """Each metric's latest mean training-thread milliseconds per call (``_metricreg/cost/<metric>``), costliest first."""
    from metricreg.cost import run_costs

    return run_costs(series)


_MARK = {"ok": "ok", "warn": "WARN", "critical": "CRITICAL", "none": "no rules", "unreadable": "UNREADABLE"}


def format_report(report: dict[str, Any], max_alerts: int = 10) -> str:
    """The terminal report: per run, category statuses, active alerts, what to do, metric errors."""
    out = []
    for run in report["runs"]:
        details = [f"last step {run['last_step']}" if run["last_step"] is not None else "no points yet"]
        if not run["has_manifest"]:
            details.append("no manifest: conventional tags only")
        if run["dropped"]:
            details.append(f"{run['dropped']} records dropped")
        name = run["run"] if run["run"] != "." else report["logdir"]  # the logdir is itself the run
        if run.get("reason") is not None:
            out.append(f"{name}: UNREADABLE  ({run['reason']})")
            out.append("")
            continue
        out.append(f"{name}: {_MARK.get(run['status'], run['status'])}  ({', '.join(details)})")
        judged = [c for c in run["categories"] if c["status"] != "none"]
        width = max((len(c["name"]) for c in judged), default=8)
        for c in judged:
            out.append(f"  {c['name']:<{width}}  {_MARK.get(c['status'], c['status'])}")
        active = [a for a in run["alerts"] if a["active"]]
        if active:
            levels = [f"{sum(a['level'] == lvl for a in active)} {lvl}" for lvl in reversed(LEVELS)]
            out.append(f"  active alerts ({', '.join(levels)}):")
            shown = active if max_alerts <= 0 else active[:max_alerts]
            for a in shown:
                out.append(f"    {a['level'].upper():<8} {a['category']:<{width}}  {a['message']}")
            if len(shown) < len(active):
                out.append(f"    ... and {len(active) - len(shown)} more (--max-alerts 0 or --json shows all)")
            remedies: dict[tuple[str, str], None] = {}
            for a in active:
                if a.get("remedy"):
                    remedies[(a["category"], a["remedy"])] = None
            if remedies:
                out.append("  what to do:")
                for category, remedy in remedies:
                    out.append(f"    {category}: {remedy}")
        resolved = len(run["alerts"]) - len(active)
        if resolved:
            out.append(f"  {resolved} earlier alert(s) resolved since")
        if run["errors"]:
            out.append("  metric errors:")
            for e in run["errors"]:
                state = ", disabled" if e.get("disabled") else ""
                where = f" from step {e['first_step']}" if e.get("first_step") is not None else ""
                out.append(
                    f"    {e['metric']} (plugin {e.get('plugin')}): {e.get('count', 1)} failure(s){where}{state}: "
                    f"{e.get('last_message', '')}"
                )
        if run.get("cost"):
            out.append("  training-thread time per metric call (mean; costliest first):")
            for c in run["cost"][:5]:
                out.append(f"    {c['metric']}  {c['mean_ms']:.3f} ms")
        out.append("")
    if report["skipped"]:
        out.append(f"without health data (not judged): {', '.join(report['skipped'])}")
    out.append(f"overall: {_MARK.get(report['status'], report['status'])} ({len(report['runs'])} run(s))")
    return "\n".join(out)


def _failing(report: dict[str, Any], fail_on: str | None) -> list[str]:
    if fail_on is None:
        return []
    from metricreg.health import _RANK

    return [r["run"] for r in report["runs"] if _RANK.get(r["status"], -1) >= _RANK[fail_on]]


def cmd_report(args: argparse.Namespace) -> int:
    smoothing = args.smoothing
    if smoothing is not None and not (math.isfinite(smoothing) and 0.0 <= smoothing < 1.0):
        raise UsageError(f"--smoothing must be in [0, 1), got {smoothing}")
    from metricreg.mapping import find_mapping, load_mapping

    if args.mapping is not None and not os.path.isfile(args.mapping):
        raise UsageError(f"mapping file {args.mapping!r} does not exist")
    _check_logdir(args.logdir)
    mapping = load_mapping(find_mapping(args.logdir, args.mapping))
    report = build_report(args.logdir, smoothing, args.run or (), mapping)
    failing = _failing(report, args.fail_on)
    if args.json:
        print(_dump({**report, "fail_on": args.fail_on, "failing": failing}))
    else:
        print(format_report(report, args.max_alerts))
        if args.fail_on:
            verdict = f"FAIL: {', '.join(failing)}" if failing else "pass"
            print(f"--fail-on {args.fail_on}: {verdict}")
    if report["unreadable"]:
        print(f"metricreg report: cannot read run(s): {', '.join(report['unreadable'])}", file=sys.stderr)
        return EXIT_UNREADABLE  # the gate cannot vouch for runs it could not read
    return EXIT_FAILING if failing else EXIT_OK


# --- metricreg demo ------------------------------------------------------------------------------


def cmd_demo(args: argparse.Namespace) -> int:
    _check_logdir(args.logdir, must_exist=False)
    if args.steps is not None and args.steps < 1:
        raise UsageError(f"--steps must be a positive integer, got {args.steps}")
    try:
        from metricreg import demo
    except ImportError as exc:  # pragma: no cover
        raise UsageError(f"the demo cannot start: {exc}") from None
    try:
        import torch  # noqa: F401
    except ImportError:
        raise UsageError('the demo trains a small PyTorch model: pip install "metricreg[torch]"') from None
    variants = tuple(args.variant or demo.VARIANTS)
    unknown = [v for v in variants if v not in demo.VARIANTS]
    if unknown:
        raise UsageError(f"unknown variant {unknown[0]!r}; choose from {', '.join(demo.VARIANTS)}")
    bar = demo.ProgressBar(sys.stderr)
    print(f"Training {len(variants)} example run(s) into {args.logdir}/ ...", file=sys.stderr)
    demo.run_all(args.logdir, steps=args.steps, variants=variants, progress=bar)
    report = build_report(args.logdir, runs=variants)
    print("")
    for run in sorted(report["runs"], key=lambda r: variants.index(r["run"]) if r["run"] in variants else 99):
        bad = [c["name"] for c in run["categories"] if c["status"] in LEVELS]
        detail = f" ({', '.join(bad)})" if bad else ""
        print(f"  {run['run']:<12} {_MARK.get(run['status'], run['status'])}{detail}")
    print("")
    print("View them in TensorBoard's Health tab:")
    print(f"  tensorboard --logdir {args.logdir}")
    print(f"or judge them here: metricreg report {args.logdir}")
    return EXIT_OK


# --- entry point ---------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    from metricreg import __version__

    parser = _Parser(prog="metricreg", description="Metric plugins for training loops, and their health.")
    parser.add_argument("--version", action="version", version=f"metricreg {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser("plugins", help="list the loaded plugins and every metric they declare")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.add_argument("--config", metavar="FILE", help="apply a TOML/YAML config file (schedules, enabled metrics)")
    p.set_defaults(func=cmd_plugins)

    p = sub.add_parser(
        "report",
        help="judge the runs under a log directory with the Health tab's rules",
        description="Judge every run under LOGDIR with the Health tab's rules. Exit status: 0, or 1 when "
        "--fail-on is given and some run's current status reaches that level; 2 for input it cannot read "
        "(bad arguments, no runs, an unreadable mapping file or run); 3 for an internal error.",
    )
    p.add_argument("logdir", metavar="LOGDIR", help="the directory given to tensorboard --logdir (or one run)")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.add_argument("--fail-on", choices=LEVELS, help="exit with status 1 when a run's status reaches this level")
    p.add_argument(
        "--smoothing",
        type=float,
        metavar="W",
        help="accepted for old scripts and ignored: the verdict always uses each rule's own smoothing and "
        "persistence, the same as the live alerts and the Health tab (display smoothing never changes it)",
    )
    p.add_argument("--run", action="append", metavar="PATTERN", help="only runs matching this glob (repeatable)")
    p.add_argument(
        "--mapping",
        metavar="FILE",
        help="TOML tag mapping: rules for your own tag names (default: $METRICREG_MAPPING, else "
        "LOGDIR/metricreg.toml; see docs/health-tab.md)",
    )
    p.add_argument(
        "--max-alerts", type=int, default=10, metavar="N", help="active alerts listed per run in text (0: all)"
    )
    p.set_defaults(func=cmd_report)

    from metricreg.demo import VARIANT_HELP  # no torch import until a run starts

    p = sub.add_parser(
        "demo",
        help="train the example runs (healthy, collapsing, stalled EMA, overfitting) into a log directory",
        description="Train a small JEPA-style model on synthetic data, once per variant, into "
        "LOGDIR/<variant>, then print the command that opens them in TensorBoard. Variants: "
        + "; ".join(f"{name}: {text}" for name, text in VARIANT_HELP.items())
        + ". Needs PyTorch.",
    )
    p.add_argument("logdir", metavar="LOGDIR", help="where to write the runs (one subdirectory per variant)")
    p.add_argument("--steps", type=int, metavar="N", help="training steps per run (default 600; signals need ~400)")
    p.add_argument(
        "--variant",
        action="append",
        metavar="NAME",
        help="train only this variant (repeatable): healthy, collapse, stalled_ema, overfit",
    )
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return int(args.func(args))
    except UsageError as exc:
        print(f"metricreg {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"metricreg {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `metricreg report runs | head`
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
    except Exception as exc:
        from metricreg.config import ConfigError
        from metricreg.mapping import MappingError
        from metricreg.plugins import PluginError
        from metricreg.registry import RegistrationError

        if isinstance(exc, (ConfigError, MappingError)):
            print(f"metricreg {args.command}: error: {exc}", file=sys.stderr)
            return EXIT_USAGE
        if isinstance(exc, (PluginError, RegistrationError)):
            print(f"metricreg {args.command}: error: {exc}", file=sys.stderr)
            return EXIT_FAILING
        import traceback

        traceback.print_exc()
        print(f"metricreg {args.command}: internal error (a bug, please report it): {exc}", file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
