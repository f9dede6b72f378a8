"""One verdict everywhere: the live alerts, `metricreg report` and the Health tab's routes agree.

A rule with its own smoothing and persistence judges a noisy series that crosses both
thresholds; the alerts the live `metricreg_on_alert` hook saw must be, field for field, the
ones `metricreg report --json` reads back from the event file, whatever display smoothing
the report is asked for.
"""

from __future__ import annotations

import json
import math
import random

import metricreg as mr
from metricreg.cli import main


class _Plugin:
    def __init__(self, metric):
        self.metric = metric

    @mr.hookimpl
    def metricreg_register_metrics(self, register):
        register(self.metric)


def _key(alert: dict) -> tuple:
    return (alert["tag"], alert["level"], alert["first_step"], alert["critical_step"], alert["active"])


def test_live_alerts_equal_the_report_at_any_display_smoothing(tmp_path, capsys):
    health = mr.Health(
        category="stability",
        warn_above=1.0,
        critical_above=2.0,
        smoothing=0.6,
        persistence=2,
        direction="lower_is_better",
    )
    metric = mr.Metric("noisy", compute=lambda value: value, every=1, health=health)
    live = []

    class Watcher:
        @mr.hookimpl
        def metricreg_on_alert(self, alert, monitor):
            live.append(alert)

    rng = random.Random(7)
    run = tmp_path / "run"
    with mr.Monitor(run, plugins=[_Plugin(metric), Watcher()], builtins=False, inputs=["value"]) as mon:
        for step in range(300):
            level = 0.5 + 2.5 * math.sin(step / 40.0) ** 2  # excursions past both thresholds
            mon.step(step, value=level + rng.gauss(0, 0.3))
    episodes = {id(a): a for a in live}.values()  # the hook sees each episode open, escalate, clear
    expected = sorted(_key(a.to_dict()) for a in episodes)
    assert expected and any(k[1] == "critical" for k in expected)
    assert len(expected) < 15  # hysteresis: one alert per excursion, not one per threshold crossing
    for smoothing in (None, "0.0", "0.9"):
        args = ["report", str(tmp_path), "--json"] + ([] if smoothing is None else ["--smoothing", smoothing])
        main(args)
        report = json.loads(capsys.readouterr().out)
        (row,) = report["runs"]
        assert sorted(_key(a) for a in row["alerts"]) == expected, smoothing
