import { describe, expect, it } from "vitest";

import { assignColors, colorAt, TB_PALETTE, withAlpha } from "../src/colors";

describe("run colours", () => {
  it("follow TensorBoard's palette in TensorBoard's run order", () => {
    const order = ["b", "a", "c"];
    const colors = assignColors(order, ["c", "a"]);
    expect(colors.get("b")).toBeUndefined();
    expect(colors.get("a")).toBe(TB_PALETTE[1].light);
    expect(colors.get("c")).toBe(TB_PALETTE[2].light);
    expect(assignColors(order, ["a"], true).get("a")).toBe(TB_PALETTE[1].dark);
    expect(colorAt(0, true)).toBe("#8e98a3"); // slate's dark-mode variant
  });

  it("never repeat within a logdir, even past TensorBoard's 7 colours and our old 11", () => {
    const runs = Array.from({ length: 60 }, (_, i) => `run_${String(i).padStart(2, "0")}`);
    for (const dark of [false, true]) {
      const colors = assignColors(runs, runs, dark);
      expect(new Set(colors.values()).size).toBe(60);
      for (const c of colors.values()) expect(c).toMatch(/^#[0-9a-f]{6}$/);
    }
  });

  it("do not depend on which runs are shown; runs TensorBoard does not list follow by name", () => {
    const order = ["x", "y"];
    expect(assignColors(order, ["y"]).get("y")).toBe(assignColors(order, ["x", "y", "z"]).get("y"));
    const noOrder = assignColors(null, ["b", "a"]);
    expect(noOrder.get("a")).toBe(TB_PALETTE[0].light);
    expect(noOrder.get("b")).toBe(TB_PALETTE[1].light);
  });

  it("make rgba with alpha", () => {
    expect(withAlpha("#0077bb", 0.25)).toBe("rgba(0, 119, 187, 0.25)");
  });
});
