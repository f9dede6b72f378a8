"""The Health tab as a user sees it: a real TensorBoard, a real Chromium (Playwright).

Skipped when Playwright or Chromium is missing, except under ``CI=true``, where
that is a failure. Screenshots go to ``test-artifacts/`` (gitignored); with
``METRICREG_UPDATE_DOCS_SCREENSHOT=1`` the overview is also saved as
``docs/health-tab.png``.
"""

from __future__ import annotations

import os
import shutil
import time

import pytest

pytestmark = pytest.mark.browser

RANK_TAG = "train/collapse/rankme"
READY = 'body[data-metricreg-ready="1"]'


def _css_string(value: str) -> str:
    """A CSS attribute-selector string literal (run names may hold quotes or backslashes)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\a ") + '"'


def _row(frame, run: str):
    return frame.locator(f"table#overview tr[data-run={_css_string(run)}]")


def _last_json(page, route: str, **params):
    """The JSON body of the last response of ``./<route>`` the tab fetched with these query values."""
    from urllib.parse import parse_qs, urlsplit

    for resp in reversed(page.responses):
        parts = urlsplit(resp.url)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        if parts.path.endswith("/metricreg_health/" + route) and all(query.get(k) == v for k, v in params.items()):
            return resp.json()
    raise AssertionError(f"the tab never fetched ./{route} with {params}")


def _open_tab(page, url: str):
    page.goto(url + "#metricreg_health")
    frame = page.frame_locator("iframe")
    frame.locator(READY).wait_for(state="attached", timeout=30_000)
    return frame


@pytest.mark.parametrize("load_fast", ["false", "true"])
def test_user_sees_the_health_tab(page, tensorboard_server, health_logdir, artifacts, repo_root, load_fast):
    server = tensorboard_server(health_logdir.path, load_fast)
    server.wait_for_tab()
    server.wait_for_runs(health_logdir.listed)
    frame = _open_tab(page, server.url)

    # The tab exists in TensorBoard's own tab bar.
    assert page.get_by_text("Health", exact=True).first.is_visible()
    assert frame.locator("#metricreg-health").count() == 1

    # Overview: one row per health run, the collapsing one critical in "collapse".
    for run in health_logdir.listed:
        assert _row(frame, run).count() == 1, run
    assert _row(frame, health_logdir.unrelated).count() == 0
    collapse_badge = _row(frame, health_logdir.collapse).locator('td[data-category="collapse"] span.badge')
    healthy_badge = _row(frame, health_logdir.healthy).locator('td[data-category="collapse"] span.badge')
    assert "badge-critical" in collapse_badge.get_attribute("class").split()
    healthy_classes = healthy_badge.get_attribute("class").split()
    assert "badge-critical" not in healthy_classes and "badge-ok" in healthy_classes
    status = _row(frame, health_logdir.collapse).locator("td.status span.badge")
    assert "badge-critical" in status.get_attribute("class").split()

    # Charts with data, in the collapse section.
    charts = frame.locator("div.chart[data-points]")
    assert charts.count() > 0
    assert max(int(p) for p in charts.evaluate_all("els => els.map(e => e.dataset.points)")) > 0
    rank_chart = frame.locator(f'section[data-category="collapse"] div.chart[data-tag="{RANK_TAG}"]')
    assert int(rank_chart.first.get_attribute("data-points")) > 0

    # Alerts name the metric tag and the step the problem started, as the backend judged it
    # for the request the tab made (with or without a smoothing override).
    detail = _last_json(page, "run", run=health_logdir.collapse)
    first_step = next(a["first_step"] for a in detail["alerts"] if a["tag"] == RANK_TAG and a["level"] == "critical")
    alert = frame.locator(
        f'ul#alerts li.alert[data-run={_css_string(health_logdir.collapse)}][data-tag="{RANK_TAG}"]'
        '[data-level="critical"]'
    )
    assert alert.count() == 1
    text = alert.inner_text()
    assert RANK_TAG in text and f"step {first_step}" in text
    assert "flaky/score" in frame.locator("ul#errors").inner_text()

    # The XSS run name is text, never markup.
    assert health_logdir.xss in _row(frame, health_logdir.xss).inner_text()
    assert frame.locator("img[src=x]").count() == 0
    assert page.locator("img[src=x]").count() == 0
    assert page.dialogs == []
    assert page.errors == []

    page.screenshot(path=str(artifacts / f"health-tab-{load_fast}.png"), full_page=True)
    if load_fast == "false" and os.environ.get("METRICREG_UPDATE_DOCS_SCREENSHOT") == "1":
        page.screenshot(path=str(repo_root / "docs" / "health-tab.png"))


def test_clicking_the_tab_and_refreshing(page, tensorboard_server, copy_logdir, health_logdir, writers, artifacts):
    logdir = copy_logdir(health_logdir.healthy, health_logdir.collapse)
    server = tensorboard_server(logdir, "true")
    server.wait_for_tab()
    server.wait_for_runs([health_logdir.healthy, health_logdir.collapse])
    page.goto(server.url)
    page.get_by_text("Health", exact=True).first.click()
    frame = page.frame_locator("iframe")
    frame.locator(READY).wait_for(state="attached", timeout=30_000)
    assert _row(frame, health_logdir.collapse).count() == 1
    assert frame.locator("input#smoothing").count() == 1
    assert frame.locator("input#log-scale").count() == 1
    assert frame.locator("input#run-filter").count() == 1

    # A run that appears while the tab is open shows after "Refresh".
    staging = os.path.join(os.path.dirname(logdir), "staging")
    writers.quality(staging, [0.9, 0.8, 0.1])
    shutil.move(staging, os.path.join(logdir, "late"))
    server.wait_for_runs(["late"], timeout=30)
    late = _row(frame, "late")

    def late_is_critical() -> bool:
        return late.count() == 1 and "badge-critical" in late.locator("td.status span.badge").get_attribute("class")

    deadline = time.monotonic() + 30
    while not late_is_critical() and time.monotonic() < deadline:
        frame.locator("button#refresh").click()  # a reload may have taken the manifest before the values
        page.wait_for_timeout(300)
        frame.locator(READY).wait_for(state="attached", timeout=30_000)
    assert late_is_critical()
    assert page.dialogs == [] and page.errors == []
    page.screenshot(path=str(artifacts / "health-tab-refresh.png"), full_page=True)


def test_empty_state(page, tensorboard_server, tmp_path, artifacts):
    """An empty logdir: TensorBoard lists the tab as inactive, the plugin page itself says so."""
    server = tensorboard_server(str(tmp_path), "false")
    page.goto(server.url + "data/plugin_entry.html?name=metricreg_health")
    page.locator(READY).wait_for(state="attached", timeout=30_000)
    assert page.locator("#empty-state").count() == 1
    assert page.locator("table#overview tr[data-run]").count() == 0
    assert page.errors == []
    page.screenshot(path=str(artifacts / "health-tab-empty.png"), full_page=True)
