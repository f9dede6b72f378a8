// @vitest-environment jsdom
import { describe, expect, it } from "vitest";

import { parseRunsResponse } from "../src/api";
import { renderOverview } from "../src/view/overview";
import { groupByTag } from "../src/view/sections";
import { AlertsPanel, onePerSeries, PAGE_SIZE, sortAlerts } from "../src/view/alerts";
import { parseAlert } from "../src/api";
import { parseRunDetail } from "../src/api";
import { EVIL, runPayload, runsPayload } from "./fixtures";

describe("overview table", () => {
  const data = parseRunsResponse(runsPayload([EVIL, "healthy", "third"]));

  it("renders a malicious run name as literal text, never as markup", () => {
    const table = renderOverview(document, data.runs, data.categories);
    document.body.replaceChildren(table);
    expect(document.querySelector("img")).toBeNull();
    const row = table.querySelector(`tr[data-run="${EVIL}"]`);
    expect(row).not.toBeNull();
    expect(row!.querySelector("th.run")!.textContent).toContain(EVIL);
    // The category title with markup is text too.
    expect(table.querySelector("b")).toBeNull();
    expect(table.querySelector('th[data-category="weird_custom"]')!.textContent).toBe("Custom <b>stuff</b>");
  });

  it("has one row per run with status and per-category badges", () => {
    const table = renderOverview(document, data.runs, data.categories);
    const rows = table.querySelectorAll("tbody tr[data-run]");
    expect(rows).toHaveLength(3);
    const first = table.querySelector(`tr[data-run="${EVIL}"]`)!;
    expect(first.querySelector("td.status span.badge")!.classList.contains("badge-critical")).toBe(true);
    expect(first.querySelector('td[data-category="collapse"] span.badge')!.className).toBe("badge badge-critical");
    expect(first.querySelector('td[data-category="weird_custom"] span.badge')!.className).toBe("badge badge-none");
    const healthy = table.querySelector('tr[data-run="healthy"]')!;
    expect(healthy.querySelector('td[data-category="generalization"] .badge')!.classList.contains("badge-warn")).toBe(true);
    expect(first.querySelector("td.worst-alert")!.textContent).toContain("is below the critical threshold");
  });

  it("renders 50 runs, one row each (speed is measured in benchmarks/bench_tab_browser.py)", () => {
    const names = Array.from({ length: 50 }, (_, i) => `run_${i}`);
    const big = parseRunsResponse(runsPayload(names));
    const table = renderOverview(document, big.runs, big.categories);
    document.body.replaceChildren(table);
    expect(table.querySelectorAll("tr[data-run]")).toHaveLength(50);
  });
});

describe("alert list", () => {
  it("shows level, tag, run and first step, with data hooks, as text", () => {
    const d = parseRunDetail(runPayload(EVIL, 0));
    const panel = new AlertsPanel(document);
    panel.render(d.alerts, {});
    const ul = panel.list;
    document.body.replaceChildren(panel.el);
    const li = ul.querySelector("li.alert")!;
    expect(li.getAttribute("data-level")).toBe("critical");
    expect(li.getAttribute("data-run")).toBe(EVIL);
    expect(li.getAttribute("data-tag")).toBe("train/collapse/effective_rank");
    expect(li.textContent).toContain("train/collapse/effective_rank");
    expect(li.textContent).toContain("step 300");
    expect(li.textContent).toContain("is below the critical threshold 0.1");
    expect(li.textContent).toContain("active");
    expect(li.textContent).toContain(EVIL);
    expect(document.querySelector("img")).toBeNull();
  });
});

describe("alerts panel", () => {
  const mk = (run: string, tag: string, level: string, first_step: number, active = true, extra: Record<string, unknown> = {}) =>
    parseAlert({ run, tag, level, first_step, last_step: first_step + 100, active, value: 1, bound: "above", threshold: 0.5, message: `${tag} ${level}`, ...extra });

  it("orders by severity, then onset; one alert per series", () => {
    const alerts = [
      mk("a", "t/warn_early", "warn", 10),
      mk("a", "t/crit_late", "critical", 900),
      mk("b", "t/crit_early", "critical", 50),
      mk("b", "t/crit_early", "warn", 20, false), // an older, resolved episode of the same series
    ];
    const sorted = sortAlerts(onePerSeries(alerts));
    expect(sorted.map((a) => a.tag)).toEqual(["t/crit_early", "t/crit_late", "t/warn_early"]);
    expect(sorted[0].active).toBe(true);
  });

  it("is paged: thousands of alerts render one page, 'more' adds the next", () => {
    const many = Array.from({ length: 3000 }, (_, i) => mk(`run${i % 50}`, `tag/${i}`, i % 3 ? "warn" : "critical", i));
    const panel = new AlertsPanel(document);
    document.body.replaceChildren(panel.el);
    panel.render(many, {});
    expect(panel.list.querySelectorAll("li.alert")).toHaveLength(PAGE_SIZE);
    expect(document.getElementById("alerts-title")!.textContent).toBe("Active alerts (3000)");
    const more = document.getElementById("alerts-more") as HTMLButtonElement;
    expect(more.hidden).toBe(false);
    more.click();
    expect(panel.list.querySelectorAll("li.alert")).toHaveLength(2 * PAGE_SIZE);
    // A live re-render keeps the page the user reached.
    panel.render(many, {});
    expect(panel.list.querySelectorAll("li.alert")).toHaveLength(2 * PAGE_SIZE);
    // Critical first.
    expect(panel.list.querySelector("li.alert")!.getAttribute("data-level")).toBe("critical");
  });

  it("each alert jumps to its chart; escalations say when they became critical", () => {
    const jumped: string[] = [];
    const panel = new AlertsPanel(document);
    document.body.replaceChildren(panel.el);
    panel.render([mk("r", "train/x", "critical", 100, true, { critical_step: 400, onset_value: 0.7 })], { onJump: (a) => jumped.push(a.tag) });
    const li = panel.list.querySelector("li.alert")!;
    expect(li.textContent).toContain("since step 100");
    expect(li.textContent).toContain("critical since step 400");
    (li.querySelector("button.jump") as HTMLButtonElement).click();
    expect(jumped).toEqual(["train/x"]);
  });

  it("lists resolved alerts only on request", () => {
    const panel = new AlertsPanel(document);
    panel.render([mk("r", "a", "warn", 1, false)], {});
    expect(panel.list.querySelectorAll("li.alert")).toHaveLength(0);
    expect(panel.el.textContent).toContain("1 resolved alert not listed");
    panel.render([mk("r", "a", "warn", 1, false)], { showResolved: true });
    expect(panel.list.querySelectorAll("li.alert.resolved")).toHaveLength(1);
  });
});

describe("overview robustness", () => {
  it("shows an unreadable run with its reason, and __proto__ categories as badges", () => {
    const data = parseRunsResponse(
      JSON.parse(
        '{"runs":[{"run":"bad","status":"unreadable","reason":"errors: count is not a number","categories":{},"alert_count":0},' +
          '{"run":"odd","status":"critical","categories":{"__proto__":"critical","constructor":"warn"}}],"categories":["__proto__","constructor"]}',
      ),
    );
    const table = renderOverview(document, data.runs, data.categories);
    document.body.replaceChildren(table);
    const bad = table.querySelector('tr[data-run="bad"]')!;
    expect(bad.querySelector("td.status .badge")!.textContent).toBe("unreadable");
    expect(bad.querySelector("td.worst-alert")!.textContent).toBe("errors: count is not a number");
    expect(bad.classList.contains("failing")).toBe(true);
    const odd = table.querySelector('tr[data-run="odd"]')!;
    expect(odd.querySelector('td[data-category="__proto__"] .badge')!.className).toBe("badge badge-critical");
    expect(odd.querySelector('td[data-category="constructor"] .badge')!.className).toBe("badge badge-warn");
    expect(bad.querySelector('td[data-category="constructor"] .badge')!.className).toBe("badge badge-none");
  });
});

describe("cards", () => {
  it("put failing cards first in a section (critical, warn, then the backend's order)", () => {
    const payload = runPayload("r", 1);
    const s = (tag: string, status: string) => ({ ...payload.categories[1].metrics[0], tag, status });
    payload.categories[1].metrics = [s("e/ok", "ok"), s("e/warn", "warn"), s("e/none", "none"), s("e/crit", "critical")];
    const d = parseRunDetail(payload);
    const groups = groupByTag("ema", ["r"], new Map([["r", d]]));
    expect(groups.map((g) => g.tag)).toEqual(["e/crit", "e/warn", "e/ok", "e/none"]);
  });
});
