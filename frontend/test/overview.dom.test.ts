// @vitest-environment jsdom
import { describe, expect, it } from "vitest";

import { parseRunsResponse } from "../src/api";
import { renderOverview } from "../src/view/overview";
import { renderAlerts } from "../src/view/alerts";
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

  it("renders 50 runs quickly", () => {
    const names = Array.from({ length: 50 }, (_, i) => `run_${i}`);
    const big = parseRunsResponse(runsPayload(names));
    const t0 = performance.now();
    const table = renderOverview(document, big.runs, big.categories);
    document.body.replaceChildren(table);
    const ms = performance.now() - t0;
    expect(table.querySelectorAll("tr[data-run]")).toHaveLength(50);
    expect(ms).toBeLessThan(250);
  });
});

describe("alert list", () => {
  it("shows level, tag, run and first step, with data hooks, as text", () => {
    const d = parseRunDetail(runPayload(EVIL, 0));
    const ul = renderAlerts(document, d.alerts);
    document.body.replaceChildren(ul);
    const li = ul.querySelector("li.alert")!;
    expect(li.getAttribute("data-level")).toBe("critical");
    expect(li.getAttribute("data-run")).toBe(EVIL);
    expect(li.getAttribute("data-tag")).toBe("train/collapse/effective_rank");
    expect(li.textContent).toContain("train/collapse/effective_rank");
    expect(li.textContent).toContain("step 300");
    expect(li.textContent).toContain("0.06 < 0.1");
    expect(li.textContent).toContain("active");
    expect(li.textContent).toContain(EVIL);
    expect(document.querySelector("img")).toBeNull();
  });
});
