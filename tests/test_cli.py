"""The ``metricreg`` command: plugins, report (the CI gate), demo, and its usage errors."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import metricreg as mr
from metricreg.cli import main

ROOT = Path(__file__).resolve().parents[1]
BUILTIN_METRICS = {
    "collapse": "metricreg.builtins.collapse",
    "ema": "metricreg.builtins.ema",
    "gap": "metricreg.builtins.generalization",
    "optimization/grad_norm": "metricreg.builtins.optimization",
    "loss": "metricreg.builtins.loss",
}


def cli_env() -> dict[str, str]:
    return dict(os.environ, METRICREG_DISABLE_PLUGIN_AUTOLOAD="1")


@pytest.fixture(autouse=True)
def hermetic(monkeypatch):
    monkeypatch.setenv("METRICREG_DISABLE_PLUGIN_AUTOLOAD", "1")


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of ``metricreg ARGS``, argparse's own exits included."""
    try:
        code = main(list(args))
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


# --- metricreg demo (also the logdir the report tests judge) ----------------------------------------


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """`python -m metricreg demo LOGDIR --steps 450`: the four example runs, a bit shorter than default."""
    pytest.importorskip("torch")
    logdir = tmp_path_factory.mktemp("demo") / "runs"
    proc = subprocess.run(
        [sys.executable, "-m", "metricreg", "demo", str(logdir), "--steps", "450"],
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    return logdir, proc


@pytest.mark.slow
def test_demo_trains_four_runs_with_a_progress_bar(demo):
    logdir, proc = demo
    assert sorted(p.name for p in logdir.iterdir()) == ["collapse", "healthy", "overfit", "stalled_ema"]
    assert "healthy      [" in proc.stderr and "450/450 steps" in proc.stderr  # the plain-text bar
    assert f"tensorboard --logdir {logdir}" in proc.stdout
    lines = {line.split()[0]: line for line in proc.stdout.splitlines() if line.startswith("  ")}
    assert lines["healthy"].split()[1] == "ok"
    assert "CRITICAL" in lines["collapse"] and "collapse" in lines["collapse"].split("(")[1]
    assert "CRITICAL" in lines["stalled_ema"] and "ema" in lines["stalled_ema"]
    assert "CRITICAL" in lines["overfit"] and "generalization" in lines["overfit"]


def test_demo_usage_errors(capsys, tmp_path):
    (tmp_path / "file").write_text("x")
    code, _, err = run_cli(capsys, "demo", str(tmp_path / "file"))
    assert code == 2 and "is not a directory" in err and err.count("\n") == 1
    code, _, err = run_cli(capsys, "demo", str(tmp_path / "d"), "--variant", "nope")
    assert code == 2 and "unknown variant 'nope'" in err
    code, _, err = run_cli(capsys, "demo", str(tmp_path / "d"), "--steps", "0")
    assert code == 2 and "--steps" in err


def test_demo_replaces_only_metricreg_event_files(tmp_path):
    from metricreg import demo

    run = tmp_path / "healthy"
    run.mkdir()
    (run / "events.out.tfevents.1.host.1.1.metricreg").write_bytes(b"")
    (run / "events.out.tfevents.1.host.1").write_bytes(b"")  # someone else's file: kept
    (run / "notes.txt").write_text("kept")
    removed = demo.remove_previous_run(run)
    assert [Path(p).name for p in removed] == ["events.out.tfevents.1.host.1.1.metricreg"]
    assert sorted(p.name for p in run.iterdir()) == ["events.out.tfevents.1.host.1", "notes.txt"]


# --- metricreg report --------------------------------------------------------------------------------


@pytest.mark.slow
def test_report_json_judges_every_run(demo, capsys):
    logdir, _ = demo
    code, out, _ = run_cli(capsys, "report", str(logdir), "--json")
    assert code == 0  # no --fail-on: a report, not a gate
    report = json.loads(out)
    runs = {r["run"]: r for r in report["runs"]}
    assert sorted(runs) == ["collapse", "healthy", "overfit", "stalled_ema"]
    assert report["status"] == "critical" and report["failing"] == []
    assert runs["healthy"]["status"] == "ok"
    assert [a for a in runs["healthy"]["alerts"] if a["level"] == "critical"] == []

    statuses = {c["name"]: c["status"] for c in runs["collapse"]["categories"]}
    assert statuses["collapse"] == "critical"
    alert = next(a for a in runs["collapse"]["alerts"] if a["category"] == "collapse" and a["level"] == "critical")
    assert isinstance(alert["first_step"], int) and alert["tag"].startswith("train/collapse/")
    assert alert["remedy"] and alert["message"]
    assert {c["name"]: c["status"] for c in runs["stalled_ema"]["categories"]}["ema"] == "critical"
    assert {c["name"]: c["status"] for c in runs["overfit"]["categories"]}["generalization"] == "critical"
    for run in runs.values():
        assert run["errors"] == [], run["errors"]
        assert run["has_manifest"] and run["last_step"] == 449
        metric = next(m for m in run["metrics"] if m["tag"] == "train/collapse/context/rankme")
        assert metric["category"] == "collapse" and metric["thresholds"]["critical_below"] == 1.5
        assert "values" not in metric  # the report carries verdicts, not series


@pytest.mark.slow
def test_report_text(demo, capsys):
    logdir, _ = demo
    code, out, _ = run_cli(capsys, "report", str(logdir))
    assert code == 0
    assert "collapse: CRITICAL" in out and "healthy: ok" in out
    assert "CRITICAL collapse" in out  # an alert line: level, category, message
    assert "what to do:" in out
    assert out.rstrip().endswith("overall: CRITICAL (4 run(s))")


@pytest.mark.slow
def test_fail_on_critical_gates_ci(demo, capsys, tmp_path):
    logdir, _ = demo
    code, out, _ = run_cli(capsys, "report", str(logdir), "--fail-on", "critical")
    assert code == 1
    assert "FAIL: collapse, overfit, stalled_ema" in out
    code, out, _ = run_cli(capsys, "report", str(logdir), "--fail-on", "critical", "--json")
    assert code == 1 and json.loads(out)["failing"] == ["collapse", "overfit", "stalled_ema"]

    healthy_only = tmp_path / "healthy_only"
    shutil.copytree(logdir / "healthy", healthy_only / "healthy")
    code, out, _ = run_cli(capsys, "report", str(healthy_only), "--fail-on", "critical")
    assert code == 0 and "--fail-on critical: pass" in out
    code, _, _ = run_cli(capsys, "report", str(healthy_only), "--fail-on", "warn")
    assert code == 0
    # --run selects runs by glob: the same gate on one run of the full logdir.
    code, _, _ = run_cli(capsys, "report", str(logdir), "--fail-on", "critical", "--run", "health*")
    assert code == 0
    code, _, _ = run_cli(capsys, "report", str(logdir), "--fail-on", "critical", "--run", "coll*")
    assert code == 1


class Flaky:
    @mr.hookimpl
    def metricreg_register_metrics(self, register):
        def explode(loss):
            raise ValueError("boom")

        register(mr.Metric("flaky/metric", compute=explode, every=1))
        register(
            mr.Metric(
                "quality/score",
                compute=lambda loss: loss,
                every=1,
                health=mr.Health(category="prediction", warn_below=0.5, critical_below=0.2, remedy="Do something."),
            )
        )


def test_report_shows_metric_errors_and_warn_gate(tmp_path, capsys):
    with mr.Monitor(tmp_path / "run", plugins=[Flaky()], builtins=False) as mon:
        for step, value in enumerate([0.9, 0.8, 0.4, 0.3]):
            mon.step(step, loss=value)
    code, out, _ = run_cli(capsys, "report", str(tmp_path), "--fail-on", "warn")
    assert code == 1
    assert "run: WARN" in out
    assert "flaky/metric (plugin tests.test_cli.Flaky): 3 failure(s) from step 0, disabled: ValueError: boom" in out
    code, out, _ = run_cli(capsys, "report", str(tmp_path), "--fail-on", "critical", "--json")
    assert code == 0
    (run,) = json.loads(out)["runs"]
    assert run["status"] == "warn"
    assert run["errors"][0]["metric"] == "flaky/metric" and run["errors"][0]["disabled"] is True
    # A run directory given directly is judged as the run ".".
    code, out, _ = run_cli(capsys, "report", str(tmp_path / "run"), "--json")
    assert code == 0 and [r["run"] for r in json.loads(out)["runs"]] == ["."]


def test_report_without_manifest_uses_conventional_tags(tmp_path, capsys):
    from metricreg import events

    path = tmp_path / "plain" / "events.out.tfevents.0.host"
    path.parent.mkdir()
    records = [events.tfrecord(events.file_version_event(0.0))]
    enc = events.ScalarEncoder()
    for step in range(0, 100, 10):
        records.append(events.tfrecord(events.event(step, 1.0 + step, [enc.value("train/loss", 1.0 / (1 + step))])))
        records.append(events.tfrecord(events.event(step, 1.0 + step, [enc.value("val/loss", 0.5 + step / 50)])))
    path.write_bytes(b"".join(records))
    code, out, _ = run_cli(capsys, "report", str(tmp_path), "--fail-on", "critical")
    assert "no manifest: conventional tags only" in out
    assert "generalization" in out
    assert code == 1  # val loss keeps rising while train loss falls


# --- usage errors: one line on stderr, exit status 2 -----------------------------------------------


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda p: p / "missing", "does not exist"),
        (lambda p: (p / "file.txt").write_text("x") and p / "file.txt", "is not a directory"),
        (lambda p: (p / "empty").mkdir() or p / "empty", "holds no TensorBoard event files"),
    ],
)
def test_report_bad_logdir(tmp_path, capsys, setup, message):
    path = setup(tmp_path)
    code, out, err = run_cli(capsys, "report", str(path), "--fail-on", "critical")
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("metricreg report: error: ") and message in err


def test_report_logdir_without_health_data(tmp_path, capsys):
    from metricreg import events

    run = tmp_path / "other"
    run.mkdir()
    enc = events.ScalarEncoder()
    (run / "events.out.tfevents.0.host").write_bytes(
        events.tfrecord(events.file_version_event(0.0))
        + events.tfrecord(events.event(0, 0.0, [enc.value("misc/throughput", 1.0)]))
    )
    code, _, err = run_cli(capsys, "report", str(tmp_path))
    assert code == 2 and "has metricreg health data" in err and "other" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["report"], "the following arguments are required: LOGDIR"),
        (["report", ".", "--fail-on", "sometimes"], "invalid choice: 'sometimes'"),
        (["report", ".", "--smoothing", "1.5"], "--smoothing must be in [0, 1)"),
        (["report", ".", "--smoothing", "abc"], "invalid float value"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
    ],
)
def test_bad_arguments(capsys, argv, message):
    code, out, err = run_cli(capsys, *argv)
    assert code == 2 and out == ""
    assert message in err and err.count("\n") == 1, err


def test_no_command_prints_help(capsys):
    code, _, err = run_cli(capsys)
    assert code == 2 and "plugins" in err and "report" in err and "demo" in err


# --- metricreg plugins ---------------------------------------------------------------------------------


def test_plugins_text_lists_builtin_metrics(capsys):
    code, out, _ = run_cli(capsys, "plugins")
    assert code == 0
    assert "metricreg.builtins.collapse" in out and "built-in" in out
    for name, plugin in BUILTIN_METRICS.items():
        assert f"  {name}  [{plugin}]" in out, name
    assert "tag:       train/collapse[/<embeddings key>]/<member>" in out
    assert "health:    effective_rank_ratio: collapse, no thresholds" in out
    assert "health:    rankme_ratio: collapse, no thresholds" in out
    assert "health:    std: collapse, critical < 0.01, critical < 0.25 × previous point" in out
    assert "inputs:    model, ema_model (optional: momentum, student_out, teacher_out, momentum_target)" in out


def test_plugins_json(capsys):
    code, out, _ = run_cli(capsys, "plugins", "--json")
    assert code == 0
    data = json.loads(out)
    plugins = {p["name"]: p for p in data["plugins"]}
    assert plugins["metricreg.builtins.ema"]["source"] == "built-in"
    metrics = {m["name"]: m for m in data["metrics"]}
    for name, plugin in BUILTIN_METRICS.items():
        assert metrics[name]["plugin"] == plugin
    collapse = metrics["collapse"]
    assert collapse["inputs"] == ["embeddings"] and collapse["fan_out"] == "embeddings"
    assert collapse["schedule"] == "every 100 steps" and collapse["categories"] == ["collapse"]
    assert collapse["health"]["rankme"]["critical_below"] == 1.5
    assert metrics["gap"]["event"] == "eval"
    assert {"grads", "grad_norm"} <= {d["name"] for d in data["derived_inputs"]}
    assert "embeddings" in {i["name"] for i in data["step_inputs"]}


def test_python_dash_m_and_console_script():
    proc = subprocess.run(
        [sys.executable, "-m", "metricreg", "--version"], env=cli_env(), capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0 and proc.stdout.strip() == f"metricreg {mr.__version__}"
    script = Path(sys.executable).with_name("metricreg")
    if not script.exists():
        pytest.skip("the console script is not installed next to this interpreter")
    proc = subprocess.run([str(script), "plugins"], env=cli_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "Metrics (" in proc.stdout


def test_plugins_with_a_config_file(tmp_path, capsys):
    config = tmp_path / "metricreg.toml"
    config.write_text('[metrics."collapse"]\nevery = 500\n\n[metrics."system*"]\nenabled = false\n')
    code, out, _ = run_cli(capsys, "plugins", "--json", "--config", str(config))
    assert code == 0
    metrics = {m["name"]: m for m in json.loads(out)["metrics"]}
    assert metrics["collapse"]["schedule"] == "every 500 steps"
    assert not any(name.startswith("system") for name in metrics)

    config.write_text('[metrics."nope*"]\nevery = 5\n')
    code, out, err = run_cli(capsys, "plugins", "--config", str(config))
    assert code == 2 and out == "" and "matches no registered metric" in err and err.count("\n") == 1
    code, _, err = run_cli(capsys, "plugins", "--config", str(tmp_path / "missing.toml"))
    assert code == 2 and "does not exist" in err


# --- unreadable input: exit status 2, never the verdict's 1 ------------------------------------------


def test_report_on_hostile_runs_exits_2_and_judges_the_rest(tmp_path, capsys):
    """The fuzz logdir of the Health tab's tests: one bad run never hides the verdicts of the others."""
    from tests.tb_plugin.hostile import CONTROL, write_cases

    cases = write_cases(str(tmp_path), mutations=20)
    code, out, err = run_cli(capsys, "report", str(tmp_path), "--fail-on", "critical", "--json")
    assert code == 2, err
    report = json.loads(out)
    runs = {r["run"]: r for r in report["runs"]}
    assert set(runs) == set(cases)
    assert runs[CONTROL]["status"] == "critical" and CONTROL in report["failing"]
    assert runs["category_5"]["status"] == "unreadable"
    assert "category must be a string, got 5" in runs["category_5"]["reason"]
    assert "count must be a number, got 'abc'" in runs["errors_count_abc"]["reason"]
    assert set(report["unreadable"]) == {r for r, row in runs.items() if row["status"] == "unreadable"}
    assert "Traceback" not in err and "cannot read run(s): " in err
    code, out, _ = run_cli(capsys, "report", str(tmp_path))
    assert code == 2
    assert "category_5: UNREADABLE  (unreadable manifest at step 0: " in out


def test_fail_on_exits_1_only_for_a_real_verdict(tmp_path, capsys):
    from tests.tb_plugin.hostile import write_cases

    write_cases(str(tmp_path), mutations=0)
    # Only the valid (critical) control run: a verdict at the --fail-on level is exit 1 ...
    code, _, _ = run_cli(capsys, "report", str(tmp_path), "--run", "control", "--fail-on", "critical")
    assert code == 1
    # ... only the unreadable one: exit 2, whatever --fail-on says.
    for extra in ([], ["--fail-on", "warn"]):
        code, out, err = run_cli(capsys, "report", str(tmp_path), "--run", "category_5", *extra)
        assert code == 2 and "UNREADABLE" in out and "cannot read run(s): category_5" in err


def test_report_on_a_damaged_event_file_is_exit_2(tmp_path, capsys):
    from tests.tb_plugin.hostile import write_cases

    write_cases(str(tmp_path), mutations=0)
    (tmp_path / "control" / "events.out.tfevents.1.fuzz").write_bytes(b"\x00" * 7)  # truncated record header
    code, out, err = run_cli(capsys, "report", str(tmp_path), "--run", "control", "--run", "constructor")
    # TensorBoard reads a truncated file as empty: the run has no health data, nothing crashes.
    assert code == 0 and "Traceback" not in err
    assert "constructor: CRITICAL" in out and "without health data (not judged): control" in out
    code, _, err = run_cli(capsys, "report", str(tmp_path), "--run", "control")
    assert code == 2 and "has metricreg health data" in err


def test_report_plain_layouts_and_mapping(tmp_path, capsys):
    pytest.importorskip("torch")
    from tests.tb_plugin.test_plain_logdirs import LAYOUTS, MAPPING, write_keras_dirs, write_layout, write_own_tags

    for run, (train_tag, eval_tag, extra) in LAYOUTS.items():
        write_layout(str(tmp_path), run, train_tag, eval_tag, extra)
    write_keras_dirs(str(tmp_path))
    write_own_tags(str(tmp_path))
    code, out, _ = run_cli(capsys, "report", str(tmp_path), "--json", "--fail-on", "critical")
    report = json.loads(out)
    assert code == 1 and sorted(report["failing"]) == sorted([*LAYOUTS, "keras_dirs/train"])
    # Its own tag names mean nothing without a mapping; Keras' validation run is judged with its train run.
    assert report["skipped"] == ["keras_dirs/validation", "seeds"]
    mapping = tmp_path.parent / "mapping.toml"
    mapping.write_text(MAPPING)
    code, out, _ = run_cli(capsys, "report", str(tmp_path), "--json", "--mapping", str(mapping), "--run", "seeds")
    (seeds,) = json.loads(out)["runs"]
    assert {c["name"]: c["status"] for c in seeds["categories"]}["collapse"] == "critical"
    mapping.write_text('[tags."x"]\nwarn_abov = 1\n')
    code, out, err = run_cli(capsys, "report", str(tmp_path), "--mapping", str(mapping))
    assert code == 2 and out == "" and "unknown key(s) warn_abov" in err and err.count("\n") == 1
    code, _, err = run_cli(capsys, "report", str(tmp_path), "--mapping", str(tmp_path / "nope.toml"))
    assert code == 2 and "does not exist" in err
