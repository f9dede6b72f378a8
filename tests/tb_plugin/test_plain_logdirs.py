"""Any logdir: runs written without metricreg get the verdicts their tags allow.

The runs are written by PyTorch's own ``torch.utils.tensorboard.SummaryWriter`` with the tag
layouts of the common loggers (the integrations' own tests drive the real frameworks):
plain ``train/loss`` + ``val/loss``, PyTorch Lightning's ``train_loss``/``val_loss``, Hugging
Face Trainer's ``train/loss``/``eval/loss`` and Keras' ``epoch_loss``/``epoch_val_loss``; a
``metricreg.toml`` mapping points built-in rules at a user's own tag names.
"""

from __future__ import annotations

import json
import math
import os

import pytest

from metricreg.mapping import builtin_rules

PREFIX = "/data/plugin/metricreg_health/"
LAYOUTS = {
    # run: (train tag, eval tag, extra tags written every step)
    "summarywriter": ("train/loss", "val/loss", ()),
    "lightning": ("train_loss", "val_loss", ("epoch",)),
    "lightning_step": ("train_loss_step", "val_loss", ("train_loss_epoch", "epoch")),
    "hf": ("train/loss", "eval/loss", ("train/learning_rate", "train/grad_norm", "train/epoch")),
    "keras": ("epoch_loss", "epoch_val_loss", ("epoch_learning_rate",)),
}


def _train(step: int) -> float:
    return math.exp(-step / 40) + 0.05


def _val(step: int, overfit: bool) -> float:
    return 0.3 + 0.003 * max(0, step - 60) if overfit else 1.1 * _train(step)  # healthy: tracks training


def write_layout(logdir: str, run: str, train_tag: str, eval_tag: str, extra=(), overfit: bool = True) -> None:
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(os.path.join(logdir, run))
    for step in range(200):
        writer.add_scalar(train_tag, _train(step), step)
        for tag in extra:
            writer.add_scalar(tag, 0.01, step)
        if step % 20 == 19:
            writer.add_scalar(eval_tag, _val(step, overfit), step)
    writer.close()


def write_keras_dirs(logdir: str, run: str = "keras_dirs", overfit: bool = True) -> None:
    """The Keras TensorBoard callback's default: ``<run>/train`` and ``<run>/validation``, tag ``epoch_loss``."""
    from torch.utils.tensorboard import SummaryWriter

    train = SummaryWriter(os.path.join(logdir, run, "train"))
    validation = SummaryWriter(os.path.join(logdir, run, "validation"))
    for epoch in range(20):
        train.add_scalar("epoch_loss", _train(10 * epoch), epoch)
        train.add_scalar("epoch_learning_rate", 0.001, epoch)
        validation.add_scalar("epoch_loss", _val(10 * epoch, overfit), epoch)
        validation.add_scalar("evaluation_loss_vs_iterations", _val(10 * epoch, overfit), 100 * epoch)
    train.close()
    validation.close()


def write_own_tags(logdir: str, run: str = "seeds") -> None:
    """The tags a hand-written training loop might use (the seeds' collapse/std, ema/momentum, ...)."""
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(os.path.join(logdir, run))
    for step in range(100):
        writer.add_scalar("collapse/std", max(0.01, 1.0 - step / 50), step)  # collapses at step ~50
        writer.add_scalar("ema/momentum", 0.996, step)
        writer.add_scalar("grad/global_norm", 1.0 + step, step)  # grows past 10, then 50
        writer.add_scalar("loss/train", _train(step), step)
        if step % 10 == 9:
            writer.add_scalar("loss/validation", _val(2 * step, True), step)
    writer.close()


MAPPING = """
[tags."collapse/std"]
rule = "collapse/std"

[tags."ema/momentum"]
rule = "ema/momentum"

[tags."grad/*_norm"]
category = "stability"
warn_above = 10.0
critical_above = 50.0

[[gap]]
train = "loss/train"
eval = "loss/validation"
name = "loss"
"""


@pytest.fixture(scope="module")
def plain_logdir(tmp_path_factory) -> str:
    pytest.importorskip("torch")
    logdir = str(tmp_path_factory.mktemp("plain"))
    for run, (train_tag, eval_tag, extra) in LAYOUTS.items():
        write_layout(logdir, run, train_tag, eval_tag, extra)
    write_layout(logdir, "keras_healthy", "epoch_loss", "epoch_val_loss", overfit=False)
    write_keras_dirs(logdir)
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(os.path.join(logdir, "unrelated"))  # nothing a rule can judge
    for step in range(5):
        writer.add_scalar("misc/throughput", 100.0 + step, step)
        writer.add_scalar("val_throughput_sps", 100.0, step)
    writer.close()
    return logdir


def _by_run(body: dict) -> dict:
    return {row["run"]: row for row in body["runs"]}


def _wait_enabled(h) -> dict:
    import time

    for _ in range(50):  # is_active answers from a background look at the logdir
        entry = h.json("/data/plugins_listing")["metricreg_health"]
        if entry["enabled"]:
            return entry
        time.sleep(0.1)
    raise AssertionError("the Health tab never became active for a plain logdir")


def test_plain_layouts_get_verdicts_and_enable_the_tab(make_harness, plain_logdir):
    h = make_harness(plain_logdir)
    _wait_enabled(h)
    rows = _by_run(h.runs())
    assert set(rows) == {*LAYOUTS, "keras_healthy", "keras_dirs/train"}  # not "unrelated", not a validation run
    for run in LAYOUTS:
        assert rows[run]["has_manifest"] is False, run
        assert rows[run]["categories"] == {"generalization": "critical"}, run
        assert rows[run]["worst_alert"]["tag"].startswith("gap/loss"), run
    assert rows["keras_healthy"]["status"] == "ok" and rows["keras_healthy"]["alert_count"] == 0
    assert rows["keras_dirs/train"]["categories"] == {"generalization": "critical"}


def test_keras_train_run_borrows_its_validation_sibling(make_harness, plain_logdir):
    h = make_harness(plain_logdir)
    detail = h.run("keras_dirs/train")
    (category,) = detail["categories"]
    metrics = {m["tag"]: m for m in category["metrics"]}
    assert metrics["gap/loss"]["derived_from"] == ["epoch_loss", "epoch_val_loss"]
    assert metrics["epoch_val_loss"]["values"][-1] == pytest.approx(_val(190, True), rel=1e-6)
    assert len(metrics["epoch_val_loss"]["steps"]) == 20
    assert h.get(PREFIX + "run", query_string={"run": "keras_dirs/validation"}).status_code == 404


@pytest.mark.parametrize("run", sorted(LAYOUTS))
def test_gap_is_derived_from_each_layout(make_harness, plain_logdir, run):
    h = make_harness(plain_logdir)
    detail = h.run(run)
    train_tag, eval_tag, extra = LAYOUTS[run]
    (category,) = detail["categories"]
    metrics = {m["tag"]: m for m in category["metrics"]}
    assert set(metrics) == {train_tag, eval_tag, "gap/loss", "gap/loss_relative", "gap/loss_gl"}
    assert not set(extra) & set(metrics)  # unrelated tags of that logger stay out of the tab
    gap = metrics["gap/loss"]
    assert gap["derived_from"] == [train_tag, eval_tag]
    assert gap["values"][-1] > 0  # validation loss above the training loss: positive = worse


def test_a_logdir_without_judgeable_tags_leaves_the_tab_inactive(make_harness, tmp_path):
    pytest.importorskip("torch")
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(tmp_path / "run"))
    writer.add_scalar("misc/throughput", 1.0, 0)
    writer.close()
    h = make_harness(str(tmp_path))
    assert h.json("/data/plugins_listing")["metricreg_health"]["enabled"] is False
    assert h.runs()["runs"] == []


def test_mapping_file_points_rules_at_own_tags(make_harness, tmp_path):
    pytest.importorskip("torch")
    logdir = str(tmp_path)
    write_own_tags(logdir)
    h = make_harness(logdir)
    assert h.runs()["runs"] == []  # without a mapping none of these tags means anything
    with open(os.path.join(logdir, "metricreg.toml"), "w") as handle:
        handle.write(MAPPING)
    row = _by_run(h.runs())["seeds"]
    assert row["has_manifest"] is False
    assert set(row["categories"]) == {"collapse", "ema", "generalization", "stability"}
    assert row["categories"]["collapse"] == "critical"  # std falls to 0.01
    assert row["categories"]["generalization"] == "critical" and row["categories"]["stability"] == "critical"
    detail = h.run("seeds")
    std = next(m for c in detail["categories"] for m in c["metrics"] if m["tag"] == "collapse/std")
    builtin = builtin_rules()["collapse/std"]  # the built-in rule as installed, not a copy
    assert std["thresholds"]["critical_below"] == builtin.critical_below and std["description"] == builtin.description
    # Editing the mapping changes the verdict at once (the fingerprint covers the file).
    with open(os.path.join(logdir, "metricreg.toml"), "w") as handle:
        handle.write(MAPPING.replace("critical_above = 50.0", "critical_above = 500.0"))
    assert _by_run(h.runs())["seeds"]["categories"]["stability"] == "warn"


def test_bad_mapping_file_is_reported_not_a_500(make_harness, tmp_path, monkeypatch):
    pytest.importorskip("torch")
    write_own_tags(str(tmp_path / "logs"))
    bad = tmp_path / "mapping.toml"
    bad.write_text('[tags."collapse/std"]\nrule = "collapse/sdt"\n')
    monkeypatch.setenv("METRICREG_MAPPING", str(bad))  # the environment variable wins over the logdir
    h = make_harness(str(tmp_path / "logs"))
    body = h.runs()
    assert "no built-in rule named 'collapse/sdt'" in body["mapping_error"]
    assert "did you mean collapse/std" in body["mapping_error"]
    bad.write_text(MAPPING)
    body = h.runs()
    assert "mapping_error" not in body and _by_run(body)["seeds"]["status"] == "critical"
    assert json.dumps(body)  # plain JSON


@pytest.mark.parametrize("load_fast", ["false", "true"])
def test_plain_logdir_on_a_real_server(tensorboard_server, plain_logdir, load_fast):
    from tests.tb_plugin.test_real_server import _skip_without_rustboard

    _skip_without_rustboard(load_fast)
    server = tensorboard_server(plain_logdir, load_fast)
    server.wait_for_tab()
    rows = _by_run(server.wait_for_runs([*LAYOUTS, "keras_healthy", "keras_dirs/train"]))
    assert "unrelated" not in rows and "keras_dirs/validation" not in rows
    assert rows["keras_dirs/train"]["categories"] == {"generalization": "critical"}
    for run in LAYOUTS:
        assert rows[run]["categories"] == {"generalization": "critical"}, (load_fast, run)
    assert rows["keras_healthy"]["status"] == "ok"


def test_mapping_flag_on_a_real_server(tensorboard_server, tmp_path):
    """``tensorboard --metricreg_mapping FILE``: the flag comes from the plugin's entry point."""
    pytest.importorskip("torch")
    write_own_tags(str(tmp_path / "logs"))
    mapping = tmp_path / "tags.toml"
    mapping.write_text(MAPPING)
    server = tensorboard_server(str(tmp_path / "logs"), "false", "--metricreg_mapping", str(mapping))
    server.wait_for_tab()
    row = _by_run(server.wait_for_runs(["seeds"]))["seeds"]
    assert row["categories"]["collapse"] == "critical" and row["has_manifest"] is False


def test_mapping_flag_names_a_missing_file(tmp_path):
    from tensorboard import default, program
    from tensorboard.plugins import base_plugin

    tb = program.TensorBoard(plugins=default.get_plugins())
    with pytest.raises(base_plugin.FlagsError, match="--metricreg_mapping: no such file: .*nope.toml"):
        tb.configure(argv=[None, "--logdir", str(tmp_path), "--metricreg_mapping", str(tmp_path / "nope.toml")])


@pytest.mark.parametrize("gap_db", [1.0, 8.0])
def test_psnr_gap_of_a_plain_run_is_judged_in_db(make_harness, tmp_path, gap_db):
    """A reconstruction run logged with SummaryWriter gets the built-in 5 dB rule on its PSNR gap."""
    pytest.importorskip("torch")
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(tmp_path / "nerv"))
    for step in range(200):
        psnr = 20.0 + 10.0 * step / 200
        writer.add_scalar("train/loss", _train(step), step)
        writer.add_scalar("train/psnr", psnr, step)
        if step % 20 == 19:
            writer.add_scalar("val/loss", 1.1 * _train(step), step)
            writer.add_scalar("val/psnr", psnr - gap_db, step)
    writer.close()
    detail = make_harness(str(tmp_path)).run("nerv")
    metrics = {m["tag"]: m for c in detail["categories"] for m in c["metrics"]}
    gap = metrics["gap/psnr"]
    assert gap["derived_from"] == ["train/psnr", "val/psnr"]
    assert gap["thresholds"]["critical_above"] == 5.0
    assert gap["status"] == ("critical" if gap_db > 5 else "ok")
