import { describe, expect, it } from "vitest";

import { mergeCategories, orderCategories } from "../src/categories";
import { mapLimit } from "../src/pool";
import { DEFAULT_CAP, runMatcher, selectionNote, selectRuns } from "../src/selection";
import type { RunSummary, Status } from "../src/types";

const run = (name: string, status: Status): RunSummary => ({
  run: name,
  status,
  has_manifest: true,
  last_step: 0,
  categories: {},
  worst_alert: null,
  alert_count: 0,
  error_count: 0,
  fingerprint: null,
  unreadable: null,
});

describe("run selection", () => {
  const runs = Array.from({ length: 50 }, (_, i) => run(`run_${String(i).padStart(2, "0")}`, i % 10 === 3 ? "critical" : i % 10 === 5 ? "warn" : i % 10 === 7 ? "none" : "ok"));

  it("caps the default selection at 20, most severe first", () => {
    const sel = selectRuns(runs, "");
    expect(sel.runs).toHaveLength(DEFAULT_CAP);
    expect(sel.capped).toBe(true);
    expect(sel.runs.slice(0, 5)).toEqual(["run_03", "run_13", "run_23", "run_33", "run_43"]);
    expect(sel.runs.slice(5, 10)).toEqual(["run_05", "run_15", "run_25", "run_35", "run_45"]);
    expect(selectionNote(sel)).toMatch(/Use the run filter/);
  });

  it("filters by regex, case-insensitively, or by substring when not a regex", () => {
    expect(selectRuns(runs, "RUN_4[0-2]").runs.sort()).toEqual(["run_40", "run_41", "run_42"]);
    expect(runMatcher("a[")("xa[y")).toBe(true);
    expect(runMatcher("a[")("xay")).toBe(false);
    expect(selectRuns(runs, "nothing-matches").runs).toEqual([]);
  });
});

describe("categories", () => {
  it("orders Collapse, EMA, Generalization gap first, then the rest in backend order", () => {
    const order = orderCategories([
      { name: "zeta", title: "Zeta" },
      { name: "generalization", title: "Generalization gap" },
      { name: "alpha", title: "Alpha" },
      { name: "ema", title: "EMA" },
      { name: "collapse", title: "Representation collapse" },
    ]).map((c) => c.name);
    expect(order).toEqual(["collapse", "ema", "generalization", "zeta", "alpha"]);
  });

  it("merges without duplicates, keeping the first title", () => {
    expect(mergeCategories([{ name: "a", title: "A" }], [{ name: "a", title: "other" }, { name: "b", title: "b" }])).toEqual([
      { name: "a", title: "A" },
      { name: "b", title: "b" },
    ]);
  });
});

describe("mapLimit", () => {
  it("keeps at most N calls in flight and preserves order", async () => {
    let inFlight = 0;
    let peak = 0;
    const out = await mapLimit(Array.from({ length: 20 }, (_, i) => i), 6, async (i) => {
      inFlight++;
      peak = Math.max(peak, inFlight);
      await new Promise((r) => setTimeout(r, 1 + (i % 3)));
      inFlight--;
      return i * 2;
    });
    expect(out).toEqual(Array.from({ length: 20 }, (_, i) => i * 2));
    expect(peak).toBe(6);
  });
});
