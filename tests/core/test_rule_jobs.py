"""The scalar rules' writer-thread job (metricreg.rule_jobs) writes what the inline route writes.

One record per due step carries the host numbers and the rules; the writer runs them in step
order. The same inputs through both routes must give the same values at the same steps (NaN and
Inf included), and a rule that raises in the job must be counted under its own name exactly as
inline, without stopping the other rules of the job.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import metricreg as mr
from metricreg.cli import build_report, format_report
from metricreg.rule_jobs import writer_rule
from tests.core.eventfiles import scalars

torch = pytest.importorskip("torch")

RULES = (
    "loss",
    "accuracy",
    "optimization/grad_norm",
    "optimization/clip_fraction",
    "stability/nonfinite_loss",
    "stability/nonfinite_grads",
    "stability/spikes",
    "stability/progress_lost",
    "stability/plateau",
    "stability/loss_trend",
)


class Plugin:
    def __init__(self, *metrics):
        self.metrics = metrics

    @mr.hookimpl
    def metricreg_register_metrics(self, register):
        for metric in self.metrics:
            register(metric)


def inline(mon: mr.Monitor) -> mr.Monitor:
    """The same Monitor with every rule on the training thread (the route before the job)."""
    for compiled in mon._table:
        compiled.route = False
    return mon


def train_inputs(step: int, rng: np.random.Generator) -> dict:
    loss = 2.0 * math.exp(-step / 300) + 0.05 * rng.random()
    if step in (300, 310, 520):
        loss *= 6.0  # spikes
    if step in (700, 900):
        loss = math.nan
    if step == 910:
        loss = math.inf
    grad = 0.5 + rng.random()
    if step == 800:
        grad = math.nan
    return {
        "loss": torch.tensor(loss, dtype=torch.float32),
        "accuracy": torch.tensor(min(1.0, step / 1000), dtype=torch.float32),
        "grad_norm": torch.tensor(grad, dtype=torch.float32),
        "max_norm": 1.0,
        "warmup": step < 100,
    }


def equal(a: list, b: list) -> bool:
    return len(a) == len(b) and all(
        sa == sb and (va == vb or (va != va and vb != vb)) for (sa, va), (sb, vb) in zip(a, b, strict=True)
    )


def test_the_job_writes_what_the_inline_rules_write(tmp_path):
    runs = {}
    for name in ("job", "inline"):
        mon = mr.Monitor(tmp_path / name)
        if name == "inline":
            inline(mon)
        rng = np.random.default_rng(0)
        for step in range(1200):
            mon.step(step, **train_inputs(step, rng))
        routes = {c.name: c.route for c in mon._table if c.name in RULES}
        mon.close()
        runs[name] = (scalars(tmp_path / name), routes)
    job, inline_run = runs["job"][0], runs["inline"][0]
    assert runs["job"][1] == dict.fromkeys(RULES, True)  # every rule went through the job
    assert runs["inline"][1] == dict.fromkeys(RULES, False)
    timings = ("_metricreg/", "train/system/", "train/performance/")  # clock readings, not values
    tags = {t for t in inline_run if not t.startswith(timings)}
    assert {t for t in job if not t.startswith(timings)} == tags
    assert {"train/stability/spikes/detected", "train/stability/plateau", "train/stability/loss_trend"} <= tags
    for tag in sorted(tags):
        assert equal(job[tag], inline_run[tag]), tag
    assert job["train/stability/spikes/detected"][30][1] == 1.0  # step 300: the data above is not trivially equal
    assert math.isnan(job["train/loss"][70][1])


def test_per_sample_losses_and_device_values_stay_on_the_training_thread(tmp_path):
    with mr.Monitor(tmp_path / "run") as mon:
        mon.step(0, loss=torch.rand(8), grad_norm=torch.tensor(1.0))
        routes = {c.name: c.route for c in mon._table}
    assert routes["stability/spikes"] is False and routes["loss"] is False  # a vector: not one host number
    assert routes["optimization/grad_norm"] is True and routes["stability/nonfinite_grads"] is True


@writer_rule
def fragile(loss, state=None):
    if loss > 1.5:
        raise ZeroDivisionError(f"loss {loss} too big")
    state["n"] = state.get("n", 0) + 1
    return float(state["n"])


@writer_rule
def steady(loss):
    return loss * 2.0


def failing_run(logdir, inline_route: bool):
    plugin = Plugin(mr.Metric("fragile", compute=fragile, every=1), mr.Metric("steady", compute=steady, every=1))
    mon = mr.Monitor(logdir, plugins=[plugin], builtins=False, max_failures=3)
    if inline_route:
        inline(mon)
    losses = [1.0, 2.0, 1.0, 2.0, 2.0, 1.0, 2.0, 2.0, 2.0, 1.0, 1.0]
    for step, loss in enumerate(losses):
        mon.step(step, loss=torch.tensor(loss))
    mon.flush()
    errors = mon.errors
    routes = {c.name: c.route for c in mon._table}
    mon.close()
    return errors, scalars(logdir), routes


def test_a_failing_rule_in_the_job_is_counted_under_its_name_as_inline(tmp_path, caplog):
    job_errors, job_values, routes = failing_run(tmp_path / "job", inline_route=False)
    inline_errors, inline_values, _ = failing_run(tmp_path / "inline", inline_route=True)
    assert routes["fragile"] is True and routes["steady"] is True
    assert job_errors == inline_errors  # count, message, first/last step, disabling: all as inline
    fragile_error = job_errors["fragile"]
    assert fragile_error["count"] == 6 and fragile_error["disabled"] is True  # 3 in a row at steps 6-8
    assert fragile_error["first_step"] == 1 and fragile_error["last_step"] == 8
    assert fragile_error["last_message"] == "ZeroDivisionError: loss 2.0 too big"
    assert "steady" not in job_errors
    assert job_values["train/steady"] == inline_values["train/steady"]  # the other rule ran at every step
    assert [s for s, _ in job_values["train/steady"]] == list(range(11))
    assert job_values["train/fragile"] == inline_values["train/fragile"] == [(0, 1.0), (2, 2.0), (5, 3.0)]
    assert "metric 'fragile'" in caplog.text and "failed at step 1" in caplog.text and "disabled" in caplog.text
    report = build_report(str(tmp_path))  # `metricreg report` shows it under the rule's name, like an inline one
    listed = {run["run"]: {e["metric"]: {**e, "run": None} for e in run["errors"]} for run in report["runs"]}
    assert listed["job"] == listed["inline"]
    assert listed["job"]["fragile"]["count"] == 6 and listed["job"]["fragile"]["disabled"]
    assert "fragile (plugin" in format_report(report) and "6 failure(s) from step 1, disabled" in format_report(report)


PASSES = (
    "optimization/update_snapshot",
    "optimization/update_ratio",
    "optimization/dead_units",
    "optimization/grad_flow",
    "optimization/init_distance",
)


def train(logdir, inline_route: bool, width: int = 64, steps: int = 420):
    """A small torch MLP trained with AdamW (a large learning rate kills some ReLU units)."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(16, width), torch.nn.ReLU(), torch.nn.Linear(width, width), torch.nn.ReLU()
    )
    model.add_module("head", torch.nn.Linear(width, 4))
    opt = torch.optim.AdamW(model.parameters(), lr=3e-2)
    gen = torch.Generator().manual_seed(1)
    mon = mr.Monitor(logdir)
    if inline_route:
        inline(mon)
    for step in range(steps):
        x = torch.randn(32, 16, generator=gen)
        loss = torch.nn.functional.cross_entropy(model(x), (x[:, 0] > 0).long())
        opt.zero_grad()
        loss.backward()
        opt.step()
        mon.step(step, loss=loss.detach(), model=model, optimizer=opt)
    routes = {c.name: c.route for c in mon._table if c.name in PASSES}
    mon.close()
    return scalars(logdir), routes


def test_parameter_passes_on_the_writer_write_what_the_inline_passes_write(tmp_path):
    job, routes = train(tmp_path / "job", inline_route=False)
    inline_run, inline_routes = train(tmp_path / "inline", inline_route=True)
    assert routes == dict.fromkeys(PASSES, True) and inline_routes == dict.fromkeys(PASSES, False)
    moved = {t for t in inline_run if t.startswith("train/optimization/") and "/lr" not in t}
    assert {
        "train/optimization/update_ratio",
        "train/optimization/dead_units",
        "train/optimization/init_distance",
        "train/optimization/grad_flow/0",
        "train/optimization/grad_flow/head",
    } <= moved
    for tag in sorted(moved):
        assert job[tag] == inline_run[tag], tag  # bit for bit: the same kernels on a copy of the same values
    assert [s for s, _ in job["train/optimization/update_ratio"]] == [100, 200, 300, 400]
    assert job["train/optimization/update_ratio"][0][1] > 0 and job["train/optimization/init_distance"][-1][1] > 0


def test_a_parameter_set_too_large_to_copy_stays_inline(tmp_path, monkeypatch):
    from metricreg import rule_jobs

    monkeypatch.setattr(rule_jobs, "MAX_COPY_ENTRIES", 1000)
    values, routes = train(tmp_path / "big", inline_route=False, steps=120)
    assert routes == dict.fromkeys(PASSES, False)
    assert [s for s, _ in values["train/optimization/update_ratio"]] == [100]
