"""The Health tab's Cost section as a user sees it: a real Monitor's run, a real TensorBoard, Chromium.

Skipped when Playwright or Chromium is missing, except under ``CI=true`` (see conftest.py).
"""

from __future__ import annotations

import os
import time

import pytest

import metricreg as mr

pytestmark = pytest.mark.browser

READY = 'body[data-metricreg-ready="1"]'


class Plugin:
    """A user's metric plugin with one deliberately slow metric."""

    @mr.hookimpl
    def metricreg_register_metrics(self, register):
        register(mr.Metric("quality/fast", compute=lambda: 0.5, every=1))
        register(mr.Metric("quality/slow", compute=slow, every=1))


def slow() -> float:
    time.sleep(0.02)
    return 1.0


def test_cost_section_shows_the_slow_metric_first_and_flags_it(
    page, tensorboard_server, tmp_path, artifacts, monkeypatch
):
    monkeypatch.setenv("METRICREG_DISABLE_PLUGIN_AUTOLOAD", "1")
    mon = mr.Monitor(os.path.join(tmp_path, "exp"), plugins=[Plugin()], builtins=False, cost_budget=0.01)
    for step in range(4):
        mon.step(step)
    mon.close()

    server = tensorboard_server(str(tmp_path))
    server.wait_for_tab()
    server.wait_for_runs(["exp"])
    page.goto(server.url + "#metricreg_health")
    frame = page.frame_locator("iframe")
    frame.locator(READY).wait_for(state="attached", timeout=30_000)

    block = frame.locator('section#cost details.cost-run[data-run="exp"]')
    block.wait_for(timeout=30_000)
    # Over the 10 ms budget: the block opened itself and the slow metric leads, highlighted.
    assert block.evaluate("el => el.open") is True
    rows = block.locator("tbody tr")
    assert rows.evaluate_all("els => els.map(e => e.dataset.metric)") == ["quality/slow", "quality/fast"]
    first = rows.nth(0)
    assert "over-budget" in first.get_attribute("class").split()
    assert "over-budget" not in rows.nth(1).get_attribute("class").split()
    assert first.is_visible()
    assert float(first.locator("td.ms").inner_text().split()[0]) >= 20.0  # at least the sleep
    assert int(first.locator("td.share").inner_text().rstrip("%")) >= 90
    assert "over the budget of 10 ms" in first.locator("td.note").inner_text()
    assert "1 over budget" in block.locator("summary").inner_text()

    frame.locator("section#cost").screenshot(path=str(artifacts / "cost-section.png"))

    # Collapsible: a click on its summary closes it and hides the table.
    block.locator("summary").click()
    assert block.evaluate("el => el.open") is False
    assert not first.is_visible()
    assert not page.errors, page.errors
