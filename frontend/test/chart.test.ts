import { describe, expect, it } from "vitest";

import { buildChartData, countPoints, runXs, thresholdRegions } from "../src/chart";
import type { Thresholds } from "../src/types";

const none: Thresholds = { warn_above: null, warn_below: null, critical_above: null, critical_below: null };

describe("buildChartData", () => {
  it("aligns runs on the union of steps: absent = undefined (spanned), non-finite = null (gap)", () => {
    const { data, points } = buildChartData(
      [
        { run: "a", color: "#000000", steps: [0, 100, 200], values: [1, NaN, 3] },
        { run: "b", color: "#000000", steps: [50, 100], values: [2, 4] },
      ],
      0,
      false,
    );
    expect(data[0]).toEqual([0, 50, 100, 200]);
    expect(data[1]).toEqual([1, undefined, null, 3]); // a raw
    expect(data[3]).toEqual([undefined, 2, 4, undefined]); // b raw
    expect(points).toBe(4);
  });

  it("smooths each run separately with TensorBoard's EMA", () => {
    const { data } = buildChartData([{ run: "a", color: "#000000", steps: [0, 1, 2], values: [1, 2, 3] }], 0.6, false);
    expect(data[1]).toEqual([1, 2, 3]);
    const smooth = data[2] as number[];
    expect(smooth[1]).toBeCloseTo(1.625, 12);
    expect(smooth[2]).toBeCloseTo(1.824 / 0.784, 12);
  });

  it("drops non-positive values on a log scale", () => {
    const { data, points } = buildChartData([{ run: "a", color: "#000000", steps: [0, 1, 2], values: [0, -1, 10] }], 0, true);
    expect(data[1]).toEqual([null, null, 10]);
    expect(points).toBe(1);
  });
});

describe("thresholdRegions", () => {
  it("shades critical below the critical threshold and warn between warn and critical", () => {
    expect(thresholdRegions({ ...none, warn_below: 0.5, critical_below: 0.1 })).toEqual([
      { level: "critical", from: -Infinity, to: 0.1 },
      { level: "warn", from: 0.1, to: 0.5 },
    ]);
  });

  it("handles above-thresholds and a lone warn threshold", () => {
    expect(thresholdRegions({ ...none, warn_above: 10, critical_above: 100 })).toEqual([
      { level: "critical", from: 100, to: Infinity },
      { level: "warn", from: 10, to: 100 },
    ]);
    expect(thresholdRegions({ ...none, warn_above: 1 })).toEqual([{ level: "warn", from: 1, to: Infinity }]);
    expect(thresholdRegions(none)).toEqual([]);
  });
});

describe("x axes", () => {
  const run = { run: "a", color: "#000000", steps: [100, 200, 400], values: [1, 2, 3], wall_times: [1000, 1010, 1040] };
  it("relative time counts seconds from the run's first point; wall time is the epoch", () => {
    expect(runXs(run, "relative")).toEqual([0, 10, 40]);
    expect(runXs(run, "wall")).toEqual([1000, 1010, 1040]);
  });
  it("aligned runs share [0, 1] whatever their length", () => {
    const short = { ...run, steps: [0, 300, 600] };
    const long = { ...run, steps: [0, 3000, 6000] };
    expect(runXs(short, "step", true)).toEqual([0, 0.5, 1]);
    expect(runXs(long, "step", true)).toEqual([0, 0.5, 1]);
    const { data } = buildChartData([short, { ...long, run: "b" }], 0, false, "step", true);
    expect(data[0]).toEqual([0, 0.5, 1]);
    expect(runXs(run, "relative", true)).toEqual([0, 0.25, 1]);
  });
  it("counts drawable points without building the chart", () => {
    expect(countPoints([{ ...run, values: [1, NaN, -1] }], false)).toBe(2);
    expect(countPoints([{ ...run, values: [1, NaN, -1] }], true)).toBe(1);
  });
});

describe("chart specs", () => {
  it("are the same when the data arrays and settings are (a live update without news redraws nothing)", async () => {
    const { sameSpec } = await import("../src/lazy");
    const steps = [0, 1];
    const values = [1, 2];
    const spec = { tag: "t", runs: [{ run: "a", color: "#000000", steps, values }], thresholds: none, smoothing: 0.6, logScale: false };
    expect(sameSpec(spec, { ...spec, runs: [{ ...spec.runs[0] }] })).toBe(true);
    expect(sameSpec(spec, { ...spec, runs: [{ ...spec.runs[0], values: [1, 2] }] })).toBe(false);
    expect(sameSpec(spec, { ...spec, logScale: true })).toBe(false);
    expect(sameSpec(spec, { ...spec, xAxis: "wall" })).toBe(false);
  });
});
