import { describe, expect, it } from "vitest";

import { DEFAULT_VIEW, parseViewHash, writeViewHash } from "../src/hashstate";

describe("view state in TensorBoard's URL hash", () => {
  it("round-trips, keeping TensorBoard's tab and its other keys in place", () => {
    const state = { ...DEFAULT_VIEW, filter: "^a&b=c$", smoothing: 0.9, run: "r/1", onlyFailing: true, xAxis: "wall" as const, align: true, logScale: true };
    const hash = writeViewHash("#metricreg_health&tagFilter=x", state);
    expect(hash.startsWith("#metricreg_health&tagFilter=x&")).toBe(true);
    expect(parseViewHash(hash)).toEqual(state);
  });

  it("writes only what differs from the defaults and replaces its own old keys", () => {
    expect(writeViewHash("#metricreg_health", DEFAULT_VIEW)).toBe("#metricreg_health");
    const once = writeViewHash("#metricreg_health", { ...DEFAULT_VIEW, filter: "a" });
    expect(writeViewHash(once, { ...DEFAULT_VIEW, filter: "b" })).toBe("#metricreg_health&healthFilter=b");
  });

  it("ignores invalid values", () => {
    expect(parseViewHash("#x&healthSmoothing=banana&healthX=sideways&healthFilter=%E0%A4%A")).toMatchObject({
      smoothing: DEFAULT_VIEW.smoothing,
      xAxis: "step",
      filter: "%E0%A4%A",
    });
    expect(parseViewHash("#x&healthSmoothing=7").smoothing).toBe(0.99);
  });
});
