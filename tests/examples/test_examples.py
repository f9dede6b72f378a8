"""Every example, run as a user runs it (a subprocess; one flag test in-process), then judged.

Runs are read with metricreg.reader and judged with metricreg.verdict: the rules the
Health tab and ``metricreg report`` apply. Examples run with
METRICREG_DISABLE_PLUGIN_AUTOLOAD=1 (hermetic) except the plugin-package test, which needs
entry points.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from metricreg.reader import read_logdir

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
TIMEOUT = 300

# A meta-path finder that makes `import torch` / `import jax` fail, installed before the example runs.
BLOCK_FRAMEWORKS = """
import runpy, sys
class Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "jax", "jaxlib"):
            raise ImportError(f"{name} is blocked in this test")
        return None
sys.meta_path.insert(0, Blocker())
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def env(**changes: str | None) -> dict[str, str]:
    out = dict(os.environ, METRICREG_DISABLE_PLUGIN_AUTOLOAD="1", PYTHONUNBUFFERED="1")
    for key, value in changes.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = value
    return out


def run(*args: str, environ: dict[str, str] | None = None, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env=environ or env(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    if check:
        assert proc.returncode == 0, f"{args} exited {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return proc


def judge(logdir: Path) -> dict:
    """{run: RunVerdict} for every run under logdir."""
    return {name: data.evaluate() for name, data in read_logdir(logdir).items()}


def alerts(verdict, category: str, level: str | None = None) -> list:
    return [a for a in verdict.alerts if a.category == category and (level is None or a.level == level)]


# --- JEPA -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def jepa_runs(tmp_path_factory) -> Path:
    """`make demo`'s command: the four variants, default length."""
    pytest.importorskip("torch")
    logdir = tmp_path_factory.mktemp("jepa")
    run(str(EXAMPLES / "jepa_train.py"), "--logdir", str(logdir), "--all")
    return logdir


@pytest.mark.slow
def test_jepa_all_writes_four_runs_without_metric_errors(jepa_runs):
    data = read_logdir(jepa_runs)
    assert sorted(data) == ["collapse", "healthy", "overfit", "stalled_ema"]
    for name, run_data in data.items():
        assert run_data.has_manifest, name
        assert run_data.errors == {}, (name, run_data.errors)
        tags = set(run_data.series)
        # Per-encoder, per-level collapse (embeddings given as a dict fan out by key).
        for key in ("context", "target", "context_l1", "target_l1"):
            assert f"train/collapse/{key}/rankme" in tags, (name, key)
        for tag in ("train/ema/rel_distance", "val/loss", "train/optimization/grad_norm", "train/jepa/loss/h0"):
            assert tag in tags, (name, tag)
        assert any(t.startswith("gap/") for t in tags), name
        assert any(t.startswith("train/performance/") for t in tags), name


@pytest.mark.slow
def test_jepa_healthy_run_stays_ok(jepa_runs):
    verdict = judge(jepa_runs)["healthy"]
    assert verdict.status == "ok", [a.message for a in verdict.alerts]
    for category in ("collapse", "ema", "generalization"):
        assert verdict.category_status[category] == "ok"
        assert alerts(verdict, category) == [], [a.message for a in alerts(verdict, category)]
    assert [a for a in verdict.alerts if a.level == "critical"] == []


@pytest.mark.slow
def test_jepa_collapse_is_a_critical_collapse_alert(jepa_runs):
    verdict = judge(jepa_runs)["collapse"]
    assert verdict.category_status["collapse"] == "critical"
    critical = [a for a in alerts(verdict, "collapse", "critical") if a.active]
    assert {a.tag.split("/")[2] for a in critical} >= {"context", "target"}
    assert any(a.metric == "collapse" and a.tag.endswith("/rankme") for a in critical)
    metric = next(m for m in verdict.metrics if m.tag == "train/collapse/context/rankme")
    assert metric.last_value < 1.5  # complete collapse: RankMe → 1


@pytest.mark.slow
def test_jepa_stalled_ema_is_an_ema_alert(jepa_runs):
    verdict = judge(jepa_runs)["stalled_ema"]
    assert verdict.category_status["ema"] == "critical"
    assert any(a.tag == "train/ema/stalled" and a.active for a in alerts(verdict, "ema", "critical"))
    assert verdict.category_status["collapse"] == "ok"


@pytest.mark.slow
def test_jepa_overfit_is_a_generalization_alert(jepa_runs):
    verdict = judge(jepa_runs)["overfit"]
    assert verdict.category_status["generalization"] == "critical"
    assert any(a.active for a in alerts(verdict, "generalization", "critical"))
    assert verdict.category_status["collapse"] == "ok"


def load_example(name: str):
    """An example script as a module, to call its main() in this process (no interpreter start-up)."""
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_jepa_flags_name_the_run(tmp_path, capsys):
    pytest.importorskip("torch")
    jepa = load_example("jepa_train")
    assert jepa.main(["--logdir", str(tmp_path), "--ema-momentum", "1.0", "--steps", "350"]) == 0
    assert "tensorboard --logdir" in capsys.readouterr().out
    verdict = judge(tmp_path)["stalled_ema"]
    assert any(a.tag == "train/ema/stalled" for a in alerts(verdict, "ema", "critical"))
    # Running it again replaces the run instead of adding a second event file.
    assert jepa.main(["--logdir", str(tmp_path), "--run", "stalled_ema", "--steps", "5"]) == 0
    assert len(list((tmp_path / "stalled_ema").glob("events.out.tfevents.*"))) == 1


def test_jepa_rejects_bad_arguments(tmp_path):
    pytest.importorskip("torch")
    proc = run(str(EXAMPLES / "jepa_train.py"), "--logdir", str(tmp_path), "--ema-momentum", "2", check=False)
    assert proc.returncode == 2
    assert "--ema-momentum" in proc.stderr


# --- numpy, without torch or JAX ------------------------------------------------------------------


def test_numpy_example_runs_with_torch_and_jax_blocked(tmp_path):
    logdir = tmp_path / "numpy"
    proc = run("-c", BLOCK_FRAMEWORKS, str(EXAMPLES / "numpy_train.py"), "--logdir", str(logdir))
    assert "torch imported: False, jax imported: False" in proc.stdout
    data = read_logdir(logdir)["."]
    assert data.has_manifest and data.errors == {}
    tags = set(data.series)
    for tag in ("train/loss", "val/loss", "train/accuracy", "train/collapse/rankme", "train/optimization/grad_norm"):
        assert tag in tags, tag
    assert any(t.startswith("gap/") and t.endswith("/loss_relative") for t in tags)
    verdict = data.evaluate()
    assert verdict.status == "ok", [a.message for a in verdict.alerts]


def test_the_blocker_really_blocks_torch(tmp_path):
    script = tmp_path / "try_torch.py"
    script.write_text("try:\n    import torch\n    print('imported')\nexcept ImportError:\n    print('blocked')\n")
    assert run("-c", BLOCK_FRAMEWORKS, str(script)).stdout.strip() == "blocked"


# --- JAX ------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_jax_example_logs_pytrees(tmp_path):
    pytest.importorskip("jax")
    logdir = tmp_path / "jax"
    run(str(EXAMPLES / "jax_train.py"), "--logdir", str(logdir), "--steps", "120")
    data = read_logdir(logdir)["."]
    assert data.errors == {}
    tags = set(data.series)
    for tag in (
        "train/loss",
        "train/collapse/rankme",
        "train/ema/rel_distance",
        "train/optimization/grad_flow/encoder",
    ):
        assert tag in tags, tag
    verdict = data.evaluate()
    assert verdict.status in ("ok", "warn"), [a.message for a in verdict.alerts]
    assert [a for a in verdict.alerts if a.level == "critical"] == []


# --- torch.distributed ----------------------------------------------------------------------------


@pytest.mark.slow
def test_distributed_example_one_writer_and_reduced_metrics(tmp_path):
    torch = pytest.importorskip("torch")
    if not torch.distributed.is_available():
        pytest.skip("torch.distributed is not available")
    logdir = tmp_path / "ddp"
    proc = run(str(EXAMPLES / "distributed_train.py"), "--logdir", str(logdir), "--steps", "60")
    assert "1 event file(s) from 2 ranks" in proc.stdout
    assert len(list(logdir.glob("events.out.tfevents.*"))) == 1
    data = read_logdir(logdir)["."]
    assert data.errors == {}
    steps_max, values_max, _ = data.series["train/dist/loss_max"]
    steps_r0, values_r0, _ = data.series["train/dist/loss_rank0"]
    assert list(steps_max) == list(steps_r0)
    assert all(m >= r - 1e-6 for m, r in zip(values_max, values_r0, strict=True))  # max over ranks >= rank 0
    assert any(m > r + 1e-6 for m, r in zip(values_max, values_r0, strict=True))  # rank 1 sometimes worse
    manifest = data.manifest.metrics
    assert manifest["dist/loss_max"]["reduce"] == "max"
    assert manifest["loss"]["reduce"] == "mean"


# --- the installable plugin package ---------------------------------------------------------------


@pytest.fixture(scope="module")
def plugin_target(tmp_path_factory) -> Path:
    """examples/plugin_package installed into a private directory (never into the shared venv)."""
    base = tmp_path_factory.mktemp("plugin")
    source = base / "src"
    # Build from a copy so the build leaves no build/ or *.egg-info in the repository.
    shutil.copytree(EXAMPLES / "plugin_package", source)
    target = base / "site"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--disable-pip-version-check",
            "--target",
            str(target),
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    if proc.returncode != 0:
        pytest.fail(f"pip install of the example plugin failed:\n{proc.stdout}\n{proc.stderr}")
    assert (target / "metricreg_example_plugin" / "__init__.py").exists()
    return target


def plugin_env(target: Path, **changes: str | None) -> dict[str, str]:
    path = os.pathsep.join([str(target), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    settings: dict[str, str | None] = {"METRICREG_DISABLE_PLUGIN_AUTOLOAD": None, "METRICREG_PLUGINS": None}
    return env(PYTHONPATH=path, **{**settings, **changes})


def test_plugin_package_metrics_reach_manifest_verdict_and_health_tab(plugin_target, tmp_path):
    logdir = tmp_path / "plugin"
    proc = run(str(EXAMPLES / "plugin_package" / "try_it.py"), str(logdir), environ=plugin_env(plugin_target))
    assert "plugin loaded: True" in proc.stdout
    assert "data quality alert" in proc.stderr  # the plugin's metricreg_on_alert hook ran

    data = read_logdir(logdir)["."]
    entry = data.manifest.metrics["data_quality/duplicates"]
    assert entry["plugin"] == "example"
    assert entry["health"][""]["category"] == "data_quality"
    assert data.manifest.metrics["data_quality/label_entropy"]["inputs"] == ["labels", "num_classes"]

    verdict = data.evaluate()
    assert verdict.category_status["data_quality"] == "critical"
    assert {a.tag for a in alerts(verdict, "data_quality", "critical")} == {
        "train/data_quality/duplicates",
        "train/data_quality/label_entropy",
    }

    # The Health tab's own route, through TensorBoard's WSGI app and data provider.
    from metricreg_tensorboard.plugin import HealthPlugin
    from tensorboard.backend import application
    from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer
    from tensorboard.plugins import base_plugin
    from werkzeug import test as wtest
    from werkzeug import wrappers

    mux = plugin_event_multiplexer.EventMultiplexer()
    mux.AddRunsFromDirectory(str(logdir))
    mux.Reload()
    provider = data_provider.MultiplexerDataProvider(mux, str(logdir))
    context = base_plugin.TBContext(logdir=str(logdir), multiplexer=mux, data_provider=provider)
    client = wtest.Client(application.TensorBoardWSGI([HealthPlugin(context)]), wrappers.Response)
    resp = client.get("/data/plugin/metricreg_health/run", query_string={"run": "."})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    body = json.loads(resp.get_data(as_text=True))
    section = next(c for c in body["categories"] if c["name"] == "data_quality")
    assert section["title"] == "Data quality" and section["status"] == "critical"
    series = {m["tag"]: m for m in section["metrics"]}
    assert series["train/data_quality/duplicates"]["thresholds"]["critical_above"] == 0.25
    assert "sampler" in series["train/data_quality/duplicates"]["remedy"]


def test_plugin_package_shows_in_metricreg_plugins(plugin_target):
    proc = run("-m", "metricreg", "plugins", "--json", environ=plugin_env(plugin_target))
    listing = json.loads(proc.stdout)
    plugin = next(p for p in listing["plugins"] if p["name"] == "example")
    assert plugin["source"].startswith("entry point metricreg_example_plugin")
    assert plugin["metrics"] == 2
    metric = next(m for m in listing["metrics"] if m["name"] == "data_quality/label_entropy")
    assert metric["plugin"] == "example" and metric["categories"] == ["data_quality"]
    assert metric["health"][""]["critical_below"] == 0.2

    # The switches: autoload off, or an allow-list without it.
    for switch in ({"METRICREG_DISABLE_PLUGIN_AUTOLOAD": "1"}, {"METRICREG_PLUGINS": "something_else"}):
        proc = run("-m", "metricreg", "plugins", "--json", environ=plugin_env(plugin_target, **switch))
        assert "example" not in {p["name"] for p in json.loads(proc.stdout)["plugins"]}, switch
