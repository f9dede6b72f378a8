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
from tests.core.eventfiles import load, scalars

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
    "optimization/weights",
    "optimization/grads",
    "optimization/init_distance",
)


def histograms(logdir) -> dict:
    acc = load(logdir)
    fields = lambda h: (h.min, h.max, h.num, h.sum, h.sum_squares, tuple(h.bucket_limit), tuple(h.bucket))  # noqa: E731
    return {
        tag: [(e.step, *fields(e.histogram_value)) for e in acc.Histograms(tag)] for tag in acc.Tags()["histograms"]
    }


def train(logdir, inline_route: bool, width: int = 64, steps: int = 420):
    """A small torch MLP trained with AdamW (a large learning rate kills some ReLU units)."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(16, width), torch.nn.ReLU(), torch.nn.Linear(width, width), torch.nn.ReLU()
    )
    model.add_module("head", torch.nn.Linear(width, 4))
    model[0].bias.requires_grad_(False)  # frozen: in the weight histogram, not in the update ratios
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-2)
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
    return {**scalars(logdir), **histograms(logdir)}, routes


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
    for tag in ("train/optimization/weights", "train/optimization/grads"):  # histograms: every bucket equal
        assert [h[0] for h in job[tag]] == [0] and job[tag] == inline_run[tag], tag
    assert job["train/optimization/weights"][0][3] == sum(
        p.numel()
        for p in torch.nn.Sequential(
            torch.nn.Linear(16, 64), torch.nn.Linear(64, 64), torch.nn.Linear(64, 4)
        ).parameters()
    )  # frozen bias too
    assert job["train/optimization/update_ratio"][0][1] > 0 and job["train/optimization/init_distance"][-1][1] > 0


def test_a_parameter_set_too_large_to_copy_stays_inline(tmp_path, monkeypatch):
    from metricreg import rule_jobs

    monkeypatch.setattr(rule_jobs, "MAX_COPY_ENTRIES", 1000)
    values, routes = train(tmp_path / "big", inline_route=False, steps=120)
    assert routes == dict.fromkeys(PASSES, False)
    assert [s for s, _ in values["train/optimization/update_ratio"]] == [100]


class Alerts:
    """Records what the live metricreg_on_alert hook sees, in order."""

    def __init__(self):
        self.seen = []

    @mr.hookimpl
    def metricreg_on_alert(self, alert, monitor):
        self.seen.append((alert.tag, alert.change, alert.level, alert.first_step, alert.last_step, alert.value))


def overfitting_run(logdir, inline_route: bool, lazy_eval_at: int | None = None, steps: int = 600):
    """A classifier that overfits from step 300: training accuracy climbs, eval accuracy and loss turn.

    Training inputs as a loop passes them (tensors, a lazy callable, a model, a vector, bookkeeping
    numbers); evals every 50 steps on ``val`` and every 100 on ``test``. ``lazy_eval_at``: the eval
    at that step passes its loss as a callable (only the inline gap can call it).
    """
    alerts = Alerts()
    mon = mr.Monitor(logdir, plugins=[alerts])
    if inline_route:
        inline(mon)
    model = torch.nn.Linear(2, 2)
    rng = np.random.default_rng(0)
    for step in range(steps):
        train_acc = min(1.0, 0.5 + step / 500)
        mon.step(
            step,
            loss=torch.tensor(1.0 / (1 + step / 100) + 0.01 * rng.random(), dtype=torch.float32),
            accuracy=torch.tensor(train_acc, dtype=torch.float32),
            psnr=20.0 + step / 100,
            model=model,
            per_sample=torch.rand(4),
            embeddings=lambda: torch.zeros(3, 2),
            batch_size=32,
        )
        if step % 50 == 0:
            over = max(0, step - 300) / 300
            loss = torch.tensor(0.8 + over + 0.02 * rng.random(), dtype=torch.float32)
            mon.eval(
                step,
                loss=(lambda value=loss: value) if step == lazy_eval_at else loss,
                accuracy=torch.tensor(min(0.85, train_acc) - 0.3 * over, dtype=torch.float32),
                psnr=np.float32(19.0 + step / 200),
            )
            if step % 100 == 0:
                mon.eval(step, split="test", loss=torch.tensor(0.9 + over), accuracy=torch.tensor(0.7))
    routes = {c.name: c.route for c in mon._table if c.name in EVAL_RULES}
    mon.close()
    return scalars(logdir), routes, alerts.seen


EVAL_RULES = ("generalization/accumulate", "gap", "stability/eval_drop", "stability/eval_plateau")
TIMINGS = ("_metricreg/", "train/system/", "train/performance/")  # clock readings, not values


def test_the_gap_on_the_writer_writes_what_the_inline_gap_writes(tmp_path):
    """accumulate and gap in the writer job: the same gaps at the same evals, the same live alerts."""
    job, routes, job_alerts = overfitting_run(tmp_path / "job", inline_route=False)
    inline_run, inline_routes, inline_alerts = overfitting_run(tmp_path / "inline", inline_route=True)
    assert routes == dict.fromkeys(EVAL_RULES, True)
    assert inline_routes == dict.fromkeys(EVAL_RULES, False)
    tags = {t for t in inline_run if not t.startswith(TIMINGS)}
    assert {"gap/accuracy_overfit", "gap/loss", "gap/psnr_relative", "gap/test/accuracy"} <= tags
    assert {"val/stability/eval_drop/accuracy", "val/stability/eval_plateau", "test/stability/eval_plateau"} <= tags
    assert {t for t in job if not t.startswith(TIMINGS)} == tags
    for tag in sorted(tags):
        assert equal(job[tag], inline_run[tag]), tag  # bit for bit: the same arithmetic on the same floats
    assert len(job["gap/loss"]) == 12 and len(job["gap/test/loss"]) == 6
    assert max(v for _, v in job["val/stability/eval_drop/accuracy"]) > 0.2  # the data is not trivially equal
    assert any(tag == "gap/accuracy_overfit" and level == "critical" for tag, _, level, *_ in job_alerts)
    assert [a for a in job_alerts if not a[0].startswith(TIMINGS)] == [
        a for a in inline_alerts if not a[0].startswith(TIMINGS)
    ]


def test_a_lazy_eval_input_takes_the_gap_and_its_windows_back_inline(tmp_path):
    """The inline gap would call a lazy eval input: from that eval on, accumulate and gap run inline
    (after the writer has finished their queued jobs), and every gap is still the inline one."""
    job, routes, _ = overfitting_run(tmp_path / "job", inline_route=False, lazy_eval_at=350)
    inline_run, _, _ = overfitting_run(tmp_path / "inline", inline_route=True, lazy_eval_at=350)
    # the rules that read every input go inline; eval_plateau reads its loss (called here) as a host number
    assert routes == {**dict.fromkeys(EVAL_RULES, False), "stability/eval_plateau": True}
    gaps = {t for t in inline_run if not t.startswith(TIMINGS)}
    assert {t for t in job if not t.startswith(TIMINGS)} == gaps
    for tag in sorted(gaps):
        assert equal(job[tag], inline_run[tag]), tag
    assert [s for s, _ in job["gap/loss"]][6:9] == [300, 350, 400]


@writer_rule
def eval_fragile(loss, split="val"):
    if loss > 1.0:
        raise ZeroDivisionError(f"{split} loss {loss} too big")
    return loss


def test_a_failing_eval_rule_in_the_job_is_counted_under_its_name_as_inline(tmp_path):
    def run(logdir, inline_route):
        plugin = Plugin(mr.Metric("eval_fragile", compute=eval_fragile, every="eval"))
        mon = mr.Monitor(logdir, plugins=[plugin], builtins=False, max_failures=2)
        if inline_route:
            inline(mon)
        for step, loss in enumerate([0.5, 2.0, 0.5, 2.0, 2.0, 0.5]):
            mon.eval(step, loss=torch.tensor(loss))
        mon.flush()
        errors, route = mon.errors, mon._by_name["eval_fragile"].route
        mon.close()
        return errors, scalars(logdir), route

    job_errors, job_values, route = run(tmp_path / "job", inline_route=False)
    inline_errors, inline_values, _ = run(tmp_path / "inline", inline_route=True)
    assert route is True
    assert job_errors == inline_errors
    assert job_errors["eval_fragile"]["count"] == 3 and job_errors["eval_fragile"]["disabled"] is True
    assert job_errors["eval_fragile"]["last_message"] == "ZeroDivisionError: val loss 2.0 too big"
    assert job_values["val/eval_fragile"] == inline_values["val/eval_fragile"] == [(0, 0.5), (2, 0.5)]
