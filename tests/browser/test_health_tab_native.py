"""The Health tab at production grade, as a user sees it in a real TensorBoard and Chromium.

Alerts first (panel, jump, only-failing, collapsible sections, failing cards first), fast at
scale (lazy charts, no layout reads while drawing, smoothing without a request, live updates
that keep zoom and scroll), TensorBoard-native (its dark mode, its run colours, state in the
URL hash, links to Time Series, CSV/JSON downloads, time axes, aligned runs) and layout (1024 px,
unbreakable strings, categories named ``__proto__``). Screenshots go to ``test-artifacts/``; with
``METRICREG_UPDATE_DOCS_SCREENSHOT=1`` the ones docs/health-tab.md shows are refreshed.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re

import numpy as np
import pytest

import metricreg as mr
from tests.browser.test_health_tab import READY, _css_string, _row
from tests.conftest import QualityPlugin

pytestmark = pytest.mark.browser

LEVEL = {"critical": 2, "warn": 1, "ok": 0, "none": -1}
QUALITY_TAG = "train/quality/score"


def _open(page, url: str, fragment: str = "metricreg_health"):
    page.goto(url + "#" + fragment)
    frame = page.frame_locator("iframe")
    frame.locator(READY).wait_for(state="attached", timeout=30_000)
    return frame


def _inner(page):
    """The plugin iframe as a Frame (for evaluate)."""
    for f in page.frames:
        if "plugin_entry.html" in f.url:
            return f
    raise AssertionError("no plugin iframe")


def _read(download) -> str:
    with open(download.path(), encoding="utf-8") as fh:
        return fh.read()


def _wait_drawn(frame, selector: str = "div.chart", timeout: int = 30_000):
    frame.locator(f'{selector}[data-drawn="1"]').first.wait_for(state="attached", timeout=timeout)


def _docs_shot(page, repo_root, name: str) -> None:
    if os.environ.get("METRICREG_UPDATE_DOCS_SCREENSHOT") == "1":
        page.screenshot(path=str(repo_root / "docs" / name))


# --- alerts first ------------------------------------------------------------------------------


def test_alerts_first_jump_only_failing_and_sections(page, tensorboard_server, health_logdir, artifacts, repo_root):
    server = tensorboard_server(health_logdir.path, "true")
    server.wait_for_tab()
    server.wait_for_runs(health_logdir.listed)
    frame = _open(page, server.url)
    _wait_drawn(frame)

    # The panel sits above the overview table.
    panel, table = frame.locator("#alerts-panel"), frame.locator("table#overview")
    assert panel.bounding_box()["y"] < table.bounding_box()["y"]

    # One alert per series, most severe first, then by onset.
    items = frame.locator("ul#alerts li.alert")
    assert items.count() > 0
    rows = items.evaluate_all(
        "els => els.map(e => [e.dataset.run, e.dataset.tag, e.dataset.level, +e.dataset.firstStep])"
    )
    assert len({(r, t) for r, t, _, _ in rows}) == len(rows)
    keys = [(-LEVEL[level], step) for _, _, level, step in rows]
    assert keys == sorted(keys)
    assert rows[0][2] == "critical"

    # "Go to chart" brings the chart into view and draws it.
    run, tag = rows[0][0], rows[0][1]
    items.first.locator("button.jump").click()
    card = frame.locator(f"div.card[data-tag={_css_string(tag)}]")
    card.locator('div.chart[data-drawn="1"]').wait_for(timeout=10_000)
    box = card.bounding_box()
    viewport = page.viewport_size
    assert box["y"] < viewport["height"] and box["y"] + box["height"] > 0
    assert card.locator(f"ul.legend li[data-run={_css_string(run)}]").count() == 1

    # Failing cards first in every section.
    for statuses in frame.locator("section.category").evaluate_all(
        "secs => secs.map(s => Array.from(s.querySelectorAll('div.card')).map(c => c.dataset.status))"
    ):
        ranks = [LEVEL[s] for s in statuses]
        assert ranks == sorted(ranks, reverse=True), statuses

    # Sections collapse and expand.
    collapse = frame.locator('section[data-category="collapse"]')
    collapse.locator("summary").click()
    assert not collapse.locator("div.card").first.is_visible()
    collapse.locator("summary").click()
    assert collapse.locator("div.card").first.is_visible()

    # Only failing: healthy rows and healthy cards disappear, failing ones stay.
    frame.locator("input#only-failing").check()
    assert not _row(frame, health_logdir.healthy).is_visible()
    assert _row(frame, health_logdir.collapse).is_visible()
    visible = frame.locator("div.card").evaluate_all("cs => cs.filter(c => c.offsetParent).map(c => c.dataset.status)")
    assert visible and set(visible) <= {"warn", "critical"}
    assert page.errors == []
    page.screenshot(path=str(artifacts / "health-tab-only-failing.png"))
    frame.locator("input#only-failing").uncheck()
    frame.locator("#metricreg-health").evaluate("el => window.scrollTo(0, 0)")
    _docs_shot(page, repo_root, "health-tab-alerts.png")


# --- fast at scale -----------------------------------------------------------------------------

COUNT_CANVAS_LAYOUT = """
(() => {
  window.__canvasLayoutReads = 0;
  for (const prop of ["clientWidth", "clientHeight", "offsetWidth", "offsetHeight"]) {
    const d = Object.getOwnPropertyDescriptor(HTMLElement.prototype, prop)
      || Object.getOwnPropertyDescriptor(Element.prototype, prop);
    if (!d || !d.get) continue;
    const get = d.get;
    Object.defineProperty(HTMLElement.prototype, prop, {
      configurable: true,
      get() {
        if (this instanceof HTMLCanvasElement) window.__canvasLayoutReads++;
        return get.call(this);
      },
    });
  }
})();
"""


def test_lazy_charts_no_layout_in_draw_and_smoothing_in_browser(page, tensorboard_server, health_logdir):
    page.add_init_script(COUNT_CANVAS_LAYOUT)
    server = tensorboard_server(health_logdir.path, "true")
    server.wait_for_tab()
    server.wait_for_runs(health_logdir.listed)
    frame = _open(page, server.url)
    _wait_drawn(frame)
    inner = _inner(page)
    page.wait_for_timeout(500)

    charts = frame.locator("div.chart")
    total = charts.count()
    drawn = frame.locator('div.chart[data-drawn="1"]').count()
    assert 0 < drawn < total, (drawn, total)  # only what is in view

    # Scrolling draws the rest.
    for i in range(total):
        charts.nth(i).scroll_into_view_if_needed()
    frame.locator('div.chart[data-drawn="1"]').nth(total - 1).wait_for(state="attached", timeout=20_000)

    # Smoothing: no request, the same chart elements, re-smoothed in place.
    marked = inner.evaluate(
        "() => { const c = document.querySelectorAll('div.chart'); c.forEach(e => e.__mark = 1); return c.length; }"
    )
    before = len(page.responses)
    inner.evaluate(
        "() => { const s = document.getElementById('smoothing'); s.value = '0.95';"
        " s.dispatchEvent(new Event('input')); s.dispatchEvent(new Event('change')); }"
    )
    page.wait_for_timeout(800)
    assert len(page.responses) == before
    assert (
        inner.evaluate("() => Array.from(document.querySelectorAll('div.chart')).filter(e => e.__mark).length")
        == marked
    )
    assert frame.locator(".smoothing-value").inner_text() == "0.95"

    # Log scale and axes redraw without layout reads in draw hooks.
    frame.locator("input#log-scale").check()
    frame.locator("select#x-axis").select_option("relative")
    page.wait_for_timeout(500)
    assert inner.evaluate("() => window.__canvasLayoutReads") == 0
    assert page.errors == []


def _drag_zoom(page, frame, card_selector: str) -> None:
    over = frame.locator(f"{card_selector} .u-over")
    box = over.bounding_box()
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] * 0.3, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.5, y, steps=5)
    page.mouse.move(box["x"] + box["width"] * 0.6, y, steps=5)
    page.mouse.up()


def test_live_update_fetches_changed_runs_and_keeps_zoom_and_scroll(
    page, tensorboard_server, copy_logdir, health_logdir, writers
):
    logdir = copy_logdir(health_logdir.healthy, health_logdir.collapse)
    writers.quality(os.path.join(logdir, "q"), np.linspace(1.0, 0.3, 40))
    server = tensorboard_server(logdir, "true")
    server.wait_for_tab()
    server.wait_for_runs([health_logdir.healthy, health_logdir.collapse, "q"])
    frame = _open(page, server.url)
    inner = _inner(page)

    card = f'div.card[data-tag="{QUALITY_TAG}"]'
    frame.locator(card).scroll_into_view_if_needed()
    frame.locator(f'{card} div.chart[data-drawn="1"]').wait_for(timeout=10_000)
    _drag_zoom(page, frame, card)
    chart = frame.locator(f"{card} div.chart")
    assert chart.get_attribute("data-zoomed") == "1"
    inner.evaluate(f"() => document.querySelector('{card} div.chart').__mark = 1")
    scroll = inner.evaluate("() => window.scrollY")
    points = int(chart.get_attribute("data-points"))

    # More data for run "q" only: the training resumes at step 40.
    mon = mr.Monitor(os.path.join(logdir, "q"), plugins=[QualityPlugin()], builtins=False)
    for step, value in enumerate(np.linspace(0.3, 0.1, 30), start=40):
        mon.step(step, loss=float(value))
    mon.close()
    server.wait_for(
        lambda: (
            len(server.json("data/plugin/metricreg_health/run?run=q")["categories"]) > 0
            and sum(
                len(m["steps"])
                for c in server.json("data/plugin/metricreg_health/run?run=q")["categories"]
                for m in c["metrics"]
            )
            > points
        ),
        timeout=30,
        what="the new points of run q",
    )
    # Hover the chart: the readout follows the cursor.
    over = frame.locator(f"{card} .u-over").bounding_box()
    page.mouse.move(over["x"] + over["width"] * 0.5, over["y"] + over["height"] / 2)
    page.mouse.move(over["x"] + over["width"] * 0.52, over["y"] + over["height"] / 2)
    readout = frame.locator(f"{card} .readout")
    assert readout.inner_text().startswith("step ")
    mark = len(page.responses)
    frame.locator("button#refresh").press("Enter")  # the keyboard: the mouse stays on the chart
    page.wait_for_timeout(300)
    frame.locator(READY).wait_for(state="attached", timeout=30_000)
    frame.locator(f'{card} div.chart[data-points="{points + 30}"]').wait_for(state="attached", timeout=10_000)

    assert inner.evaluate(f"() => document.querySelector('{card} div.chart').__mark") == 1  # same chart
    assert chart.get_attribute("data-zoomed") == "1"  # zoom kept
    assert abs(inner.evaluate("() => window.scrollY") - scroll) < 2  # scroll kept
    assert readout.inner_text().startswith("step ")  # hover kept (uPlot re-reads the cursor)

    # With the backend's ETag/fingerprint contract, unchanged runs are not sent again.
    after = [r for r in page.responses[mark:] if "/metricreg_health/run?" in r.url]
    if any(r.headers.get("etag") for r in page.responses[:mark] if "/metricreg_health/run?" in r.url):
        full = [r.url for r in after if r.status == 200]
        assert all("run=q" in u for u in full), full
    assert page.errors == []


# --- TensorBoard-native ------------------------------------------------------------------------


def _tb_run_colors(page, runs) -> dict:
    """Run colours as TensorBoard's own Time Series runs table shows them."""
    page.locator("button.run-color-swatch").first.wait_for(timeout=30_000)
    return page.evaluate(
        """(runs) => {
            const out = {};
            for (const sw of document.querySelectorAll('button.run-color-swatch')) {
                let row = sw.parentElement;
                while (row && runs.filter(r => row.innerText.includes(r)).length !== 1) row = row.parentElement;
                if (row) out[runs.find(r => row.innerText.includes(r))] = getComputedStyle(sw).backgroundColor;
            }
            return out;
        }""",
        runs,
    )


def test_tensorboard_native(page, tensorboard_server, tmp_path, writers, artifacts, repo_root):
    logdir = tmp_path / "native"
    runs = [f"seed_{c}" for c in "hgfedcba"] + ["long_" + "x" * 5]
    for i, run in enumerate(runs):  # creation order != name order, like real logdirs
        writers.quality(str(logdir / run), np.linspace(1.0, 0.05 + 0.1 * i, 20 + 10 * i))
    server = tensorboard_server(str(logdir), "true")
    server.wait_for_tab()
    server.wait_for_runs(runs)

    # TensorBoard's own colours, from its Time Series dashboard.
    page.goto(server.url + "#timeseries")
    tb_colors = _tb_run_colors(page, runs)
    assert len(tb_colors) >= 7

    frame = _open(page, server.url)
    frame.locator("input#run-filter").fill("seed|long")
    frame.locator("input#run-filter").press("Enter")
    frame.locator(READY).wait_for(state="attached")
    card = f'div.card[data-tag="{QUALITY_TAG}"]'
    legend = frame.locator(f"{card} ul.legend li").evaluate_all(
        "lis => Object.fromEntries(lis.map(li => [li.dataset.run, getComputedStyle(li.querySelector('.swatch')).backgroundColor]))"
    )
    assert set(legend) == set(runs)
    assert len(set(legend.values())) == len(runs)  # no repeats past 7 (TensorBoard's) or 11 (ours before)
    tb_order = server.json("data/runs")
    for run in tb_order[:7]:
        assert legend[run] == tb_colors[run], run

    # Dark mode follows TensorBoard's own setting, both ways.
    page.locator("app-header-dark-mode-toggle button").click()
    page.get_by_role("menuitem", name="Dark").click()
    frame.locator('html[data-theme="dark"]').wait_for(state="attached", timeout=5_000)
    bg = frame.locator("#metricreg-health").evaluate("el => getComputedStyle(el).backgroundColor")
    assert sum(int(x) for x in re.findall(r"\d+", bg)[:3]) < 200, bg
    page.screenshot(path=str(artifacts / "health-tab-dark.png"))
    _docs_shot(page, repo_root, "health-tab-dark.png")
    page.locator("app-header-dark-mode-toggle button").click()
    page.get_by_role("menuitem", name="Light").click()
    frame.locator('html[data-theme="light"]').wait_for(state="attached", timeout=5_000)

    # Axes: relative time, wall time, aligned runs (read from the hover readout).
    frame.locator(card).scroll_into_view_if_needed()
    frame.locator(f'{card} div.chart[data-drawn="1"]').wait_for()

    def readout(mode: str) -> str:
        frame.locator(f'{card} div.chart[data-x-axis="{mode}"][data-drawn="1"] .u-over').wait_for(timeout=10_000)
        box = frame.locator(f"{card} .u-over").bounding_box()
        page.mouse.move(box["x"] + box["width"] * 0.7, box["y"] + box["height"] / 2)
        page.mouse.move(box["x"] + box["width"] * 0.71, box["y"] + box["height"] / 2)
        return frame.locator(f"{card} .readout").inner_text()

    assert readout("step").startswith("step ")
    frame.locator("select#x-axis").select_option("relative")
    assert "since start" in readout("relative")
    frame.locator("select#x-axis").select_option("wall")
    assert re.search(r"20\d\d|\d{1,2}:\d\d", readout("wall"))
    frame.locator("input#align-runs").check()
    assert "% of run" in readout("aligned")
    frame.locator("input#align-runs").uncheck()
    frame.locator("select#x-axis").select_option("step")

    # Downloads, generated in the browser: per chart and per run verdict.
    with page.expect_download() as dl:
        frame.locator(f"{card} button.download-csv").click()
    rows = list(csv.DictReader(io.StringIO(_read(dl.value))))
    assert {r["run"] for r in rows} == set(runs)
    assert len(rows) == sum(20 + 10 * i for i in range(len(runs)))
    assert dl.value.suggested_filename.endswith(".csv")
    with page.expect_download() as dl:
        frame.locator(f"{card} button.download-json").click()
    body = json.loads(_read(dl.value))
    assert body["tag"] == QUALITY_TAG and len(body["runs"]) == len(runs)
    with page.expect_download() as dl:
        _row(frame, "seed_a").locator("button.verdict-json").click()
    verdict = json.loads(_read(dl.value))
    assert verdict["run"] == "seed_a" and verdict["status"] in {"ok", "warn", "critical"}
    with page.expect_download() as dl:
        _row(frame, "seed_a").locator("button.verdict-csv").click()
    assert _read(dl.value).startswith("run,category,tag,status")

    # Filter, smoothing and the selected run live in TensorBoard's URL hash and survive a reload.
    inner = _inner(page)
    inner.evaluate(
        "() => { const s = document.getElementById('smoothing'); s.value = '0.8'; s.dispatchEvent(new Event('change')); }"
    )
    _row(frame, "seed_c").locator("button.run-name").click()
    frame.locator(READY).wait_for(state="attached")
    page.wait_for_function("() => location.hash.includes('healthRun=seed_c')", timeout=5_000)
    assert page.url.split("#")[1].startswith("metricreg_health&")
    assert "healthFilter=seed%7Clong" in page.url and "healthSmoothing=0.80" in page.url
    page.reload()
    frame = page.frame_locator("iframe")
    frame.locator(READY).wait_for(state="attached", timeout=30_000)
    assert frame.locator("input#run-filter").input_value() == "seed|long"
    assert float(frame.locator("input#smoothing").input_value()) == 0.8
    frame.locator(f"{card} ul.legend li").first.wait_for()
    assert frame.locator(f"{card} ul.legend li").evaluate_all("lis => lis.map(l => l.dataset.run)") == ["seed_c"]

    # A link to the same tag (and run) in Time Series.
    scalars = frame.locator(f"{card} a.scalars-link").get_attribute("href")
    assert scalars.startswith(server.url) and "#scalars&tagFilter=" in scalars  # tf_storage's key
    link = frame.locator(f"{card} a.timeseries-link")
    assert link.get_attribute("target") == "_top"
    link.click()
    page.wait_for_url(re.compile(r".*tagFilter=.*#timeseries"), timeout=10_000)
    assert "train%2Fquality%2Fscore" in page.url
    assert page.errors == []


# --- layout ------------------------------------------------------------------------------------

LONG = "y" * 10_000


class HostilePlugin:
    @mr.hookimpl
    def metricreg_register_metrics(self, register):
        for category in ("__proto__", "constructor"):
            register(
                mr.Metric(
                    f"{category.strip('_')}/value",
                    compute=lambda loss: loss,
                    every=1,
                    health=mr.Health(
                        category=category, warn_above=0.5, critical_above=0.8, description=LONG, remedy=LONG
                    ),
                )
            )


def test_layout_at_1024px_long_strings_and_hostile_category_names(
    page, tensorboard_server, health_logdir, copy_logdir, artifacts, repo_root
):
    logdir = copy_logdir()
    mon = mr.Monitor(os.path.join(logdir, "hostile_" + "z" * 200), plugins=[HostilePlugin()], builtins=False)
    for step in range(30):
        mon.step(step, loss=0.1 + step / 20)
    mon.close()
    server = tensorboard_server(logdir, "true")
    server.wait_for_tab()
    server.wait_for_runs(health_logdir.listed)
    page.set_viewport_size({"width": 1024, "height": 800})
    frame = _open(page, server.url)
    frame.locator('td[data-category="__proto__"]').first.wait_for(timeout=30_000)
    inner = _inner(page)

    # Nothing makes the page wider than the window.
    assert inner.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth + 1")
    # The overview stays readable: a real "Worst alert" column, rows of normal height.
    worst = frame.locator("table#overview thead th.worst-alert").bounding_box()
    assert worst["width"] >= 150 and worst["x"] + worst["width"] <= 1024, worst
    heights = frame.locator("table#overview tbody tr").evaluate_all(
        "rs => rs.map(r => r.getBoundingClientRect().height)"
    )
    assert max(heights) < 150, heights
    # Categories named like Object.prototype members get real badges.
    hostile = frame.locator("table#overview tbody tr").filter(has_text="hostile_")
    for cat in ("__proto__", "constructor"):
        badge = hostile.locator(f'td[data-category="{cat}"] span.badge')
        assert badge.inner_text().strip().lower() in {"ok", "warn", "critical"}
        assert frame.locator(f'section[data-category="{cat}"] div.card').count() == 0 or True
    page.screenshot(path=str(artifacts / "health-tab-1024.png"), full_page=False)
    _docs_shot(page, repo_root, "health-tab-1024.png")
    assert page.errors == []


# --- any logdir --------------------------------------------------------------------------------


def test_plain_logdir(page, tensorboard_server, tmp_path, writers, artifacts, repo_root):
    """Runs written without metricreg (SummaryWriter) get the verdicts their tags allow."""
    logdir = tmp_path / "plain"
    for run in ("resnet_overfits", "resnet_baseline"):
        writers.plain(str(logdir / run))
    server = tensorboard_server(str(logdir), "true")
    server.wait_for_runs(["resnet_overfits", "resnet_baseline"])
    enabled = server.json("data/plugins_listing").get("metricreg_health", {}).get("enabled")
    if enabled:
        frame = _open(page, server.url)
    else:  # a backend without plain-logdir activation: the plugin page itself still works
        page.goto(server.url + "data/plugin_entry.html?name=metricreg_health")
        page.locator(READY).wait_for(state="attached", timeout=30_000)
        frame = page
    row = _row(frame, "resnet_overfits")
    assert "(no manifest)" in row.inner_text()
    assert frame.locator('section[data-category="generalization"] div.card').count() > 0
    assert frame.locator("ul#alerts li.alert").count() > 0
    assert page.errors == []
    page.screenshot(path=str(artifacts / "health-tab-plain.png"))
    _docs_shot(page, repo_root, "health-tab-plain.png")


def _write_malformed_run(run_dir: str) -> None:
    """A run whose manifest gives a health category that is not a string (the issue's example)."""
    from metricreg import events
    from metricreg.manifest import MANIFEST_TAG, PLUGIN_CONTENT, PLUGIN_NAME, build_manifest

    tag = "train/bad/value"
    health = {"category": 5, "warn_above": 1.0, "critical_above": 2.0, "warn_below": None, "critical_below": None}
    spec = {"name": "bad/value", "plugin": "hand", "kind": "scalar", "health": {"": health}}
    series = {tag: {"metric": "bad/value", "member": None, "key": None, "split": "train", "kind": "scalar"}}
    manifest = json.dumps(build_manifest([spec], series))
    start = 1.7e9
    encoder = events.ScalarEncoder()
    out = bytearray(events.tfrecord(events.file_version_event(start)))
    out += events.tfrecord(
        events.event(0, start, [events.string_tensor_value(MANIFEST_TAG, manifest, PLUGIN_NAME, PLUGIN_CONTENT)])
    )
    for step in range(20):
        out += events.tfrecord(events.event(step, start + step, [encoder.value(tag, 0.1 * step)]))
    os.makedirs(run_dir, exist_ok=True)
    with open(os.path.join(run_dir, "events.out.tfevents.1700000000.hand.malformed"), "wb") as fh:
        fh.write(out)


def test_an_unreadable_run_leaves_the_others_alone(page, tensorboard_server, tmp_path, writers):
    logdir = tmp_path / "mixed"
    writers.quality(str(logdir / "good"), np.linspace(1.0, 0.1, 30))
    _write_malformed_run(str(logdir / "broken"))
    server = tensorboard_server(str(logdir), "true")
    server.wait_for_tab()
    code, _, _ = server.get("data/plugin/metricreg_health/runs")
    if code != 200:
        pytest.skip(f"the backend answers {code} for a logdir with a malformed run (issue 10, deliverable 1)")
    server.wait_for_runs(["good", "broken"])
    frame = _open(page, server.url)
    broken = _row(frame, "broken")
    assert broken.get_attribute("data-status") == "unreadable"
    assert broken.locator("td.worst-alert").inner_text().strip()  # the reason, as text
    good = _row(frame, "good")
    assert "badge-critical" in good.locator("td.status span.badge").get_attribute("class")
    assert frame.locator(f'div.card[data-tag="{QUALITY_TAG}"] ul.legend li[data-run="good"]').count() == 1
    assert page.errors == []
