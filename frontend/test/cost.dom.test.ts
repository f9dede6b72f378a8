// @vitest-environment jsdom
import { describe, expect, it } from "vitest";

import { parseRunDetail } from "../src/api";
import { CostView, costNote, formatShare } from "../src/view/cost";
import { EVIL } from "./fixtures";

/** A `/run` body's cost fields as tb_plugin/plugin.py sends them (metricreg/cost.py cost_view). */
function body(run: string, extra: Record<string, unknown> = {}) {
  return {
    run,
    status: "ok",
    categories: [],
    alerts: [],
    errors: [],
    cost: [
      { metric: "quality/slow", plugin: "user", mean_ms: 20.4, step: 3, share: 0.975, over_budget: { step: 0, ms: 21.2 }, hung: null },
      { metric: "quality/fast", plugin: "user", mean_ms: 0.52, step: 3, share: 0.025, over_budget: null, hung: null },
    ],
    cost_ms_total: 20.92,
    cost_budget_ms: 10,
    cost_hang_after_s: 60,
    ...extra,
  };
}

describe("cost parsing", () => {
  it("keeps the backend's order and the over-budget report, and tolerates backends without cost", () => {
    const cost = parseRunDetail(body("exp")).cost;
    expect(cost.rows.map((r) => r.metric)).toEqual(["quality/slow", "quality/fast"]);
    expect(cost.rows[0].over_budget).toEqual({ step: 0, ms: 21.2 });
    expect(cost.total_ms).toBeCloseTo(20.92);
    const old = parseRunDetail({ run: "old", categories: [], alerts: [], errors: [] }).cost;
    expect(old).toEqual({ rows: [], total_ms: 0, budget_ms: null, hang_after_s: null, problem: null });
    // Junk rows are dropped, not rendered as "undefined".
    expect(parseRunDetail({ run: "x", cost: [null, 5, { mean_ms: 1 }, { metric: "ok", mean_ms: "NaN" }] }).cost.rows).toHaveLength(1);
  });
});

describe("cost section", () => {
  it("shows the slow metric first with its ms, share and the over-budget note, highlighted", () => {
    const view = new CostView(document);
    view.render([{ run: "exp", cost: parseRunDetail(body("exp")).cost }]);
    document.body.replaceChildren(view.el);
    const block = view.el.querySelector<HTMLDetailsElement>('details.cost-run[data-run="exp"]')!;
    expect(block.open).toBe(true); // a metric over budget opens it
    const rows = Array.from(block.querySelectorAll("tbody tr"));
    expect(rows.map((r) => (r as HTMLElement).dataset.metric)).toEqual(["quality/slow", "quality/fast"]);
    expect(rows[0].classList.contains("over-budget")).toBe(true);
    expect(rows[1].classList.contains("over-budget")).toBe(false);
    expect(rows[0].querySelector("td.ms")!.textContent).toBe("20.4 ms");
    expect(rows[0].querySelector("td.share")!.textContent).toBe("98%");
    expect(rows[0].querySelector("td.note")!.textContent).toBe("over the budget of 10 ms: 21.2 ms at step 0");
    expect(block.querySelector("summary")!.textContent).toContain("20.92 ms per due call of every metric · 1 over budget");
  });

  it("puts a metric that blocks training now first, and keeps a quiet run closed", () => {
    const hung = body("stuck", {
      cost: [
        { metric: "quality/stuck", plugin: "user", mean_ms: null, step: null, share: null, over_budget: null, hung: { step: 7, seconds: 61, returned: false } },
        { metric: "quality/fast", plugin: "user", mean_ms: 0.5, step: 6, share: 1, over_budget: null, hung: null },
      ],
      cost_ms_total: 0.5,
    });
    const quiet = body("quiet", { cost: [{ metric: "quality/fast", mean_ms: 0.5, step: 6, share: 1, over_budget: null, hung: null }] });
    const view = new CostView(document);
    view.render([
      { run: "stuck", cost: parseRunDetail(hung).cost },
      { run: "quiet", cost: parseRunDetail(quiet).cost },
    ]);
    const stuck = view.el.querySelector<HTMLDetailsElement>('details[data-run="stuck"]')!;
    const first = stuck.querySelector("tbody tr")!;
    expect(first.classList.contains("hung-now")).toBe(true);
    expect(first.querySelector("td.ms")!.textContent).toBe("—");
    expect(first.querySelector("td.note")!.textContent).toBe("blocking training at step 7 (inside it for over 61 s)");
    expect(stuck.querySelector("summary")!.textContent).toContain("1 blocking training now");
    expect(view.el.querySelector<HTMLDetailsElement>('details[data-run="quiet"]')!.open).toBe(false);
  });

  it("remembers a user's choice to close a run across re-renders", () => {
    const view = new CostView(document);
    const entries = [{ run: "exp", cost: parseRunDetail(body("exp")).cost }];
    view.render(entries);
    view.el.querySelector<HTMLElement>('details[data-run="exp"] > summary')!.click();
    view.render(entries); // a poll brought the same data
    expect(view.el.querySelector<HTMLDetailsElement>('details[data-run="exp"]')!.open).toBe(false);
  });

  it("renders hostile run and metric names as text, and says so when there is no cost data", () => {
    const view = new CostView(document);
    view.render([{ run: EVIL, cost: parseRunDetail(body(EVIL, { cost: [{ metric: EVIL, mean_ms: 1, share: 1 }] })).cost }]);
    expect(view.el.querySelector("img")).toBeNull();
    expect(view.el.querySelector("tbody th.metric")!.textContent).toBe(EVIL);
    view.render([{ run: "plain", cost: parseRunDetail({ run: "plain" }).cost }]);
    expect(view.el.querySelector("p.none")!.textContent).toContain("No cost data");
  });

  it("words shares and notes compactly", () => {
    expect(formatShare(0.004)).toBe("<1%");
    expect(formatShare(null)).toBe("—");
    const row = parseRunDetail(body("x")).cost.rows[0];
    expect(costNote({ ...row, hung: { step: 2, seconds: 75, returned: true } }, null)).toBe(
      "hung 75 s at step 2, then returned; over the budget: 21.2 ms at step 0",
    );
  });
});
