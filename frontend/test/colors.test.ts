import { describe, expect, it } from "vitest";

import { assignColors, colorForRun, hashString, PALETTE, withAlpha } from "../src/colors";

describe("run colours", () => {
  it("are stable for a name, whatever else is shown", () => {
    const before = colorForRun("healthy");
    for (const other of ["a", "b", "collapsed", "x".repeat(100)]) colorForRun(other);
    expect(colorForRun("healthy")).toBe(before);
    expect(colorForRun("healthy")).toBe(PALETTE[hashString("healthy") % PALETTE.length]);
  });

  it("use a fixed hash (FNV-1a), so colours survive reloads and releases", () => {
    expect(hashString("")).toBe(0x811c9dc5);
    expect(hashString("a")).toBe(0xe40c292c);
    expect(hashString("foobar")).toBe(0xbf9cf968);
  });

  it("spread over the palette", () => {
    const used = new Set(Array.from({ length: 200 }, (_, i) => colorForRun(`run_${i}`)));
    expect(used.size).toBe(PALETTE.length);
    for (const c of used) expect(PALETTE).toContain(c);
  });

  it("make rgba with alpha", () => {
    expect(withAlpha("#0077bb", 0.25)).toBe("rgba(0, 119, 187, 0.25)");
  });
});

describe("assignColors (runs shown together)", () => {
  // Two names whose own colours collide.
  const names = Array.from({ length: 100 }, (_, i) => `run_${i}`);
  const [a, b] = (() => {
    for (const x of names) for (const y of names) if (x < y && colorForRun(x) === colorForRun(y)) return [x, y];
    throw new Error("no collision found");
  })();

  it("keeps each run's own colour when it is free", () => {
    const m = assignColors(["solo", a]);
    expect(m.get("solo")).toBe(colorForRun("solo"));
    expect(m.get(a)).toBe(colorForRun(a));
  });

  it("gives colliding runs different colours, independent of input order", () => {
    const m1 = assignColors([a, b]);
    const m2 = assignColors([b, a]);
    expect(m1.get(a)).not.toBe(m1.get(b));
    expect(m1).toEqual(m2);
  });

  it("uses every colour before repeating", () => {
    const m = assignColors(names.slice(0, PALETTE.length));
    expect(new Set(m.values()).size).toBe(PALETTE.length);
    expect(assignColors(names).size).toBe(100);
  });
});
