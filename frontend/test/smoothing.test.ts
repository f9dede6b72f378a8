import { describe, expect, it } from "vitest";

import { clampSmoothing, classicSmoothing, DEFAULT_SMOOTHING } from "../src/smoothing";

describe("classicSmoothing (TensorBoard's debiased EMA)", () => {
  it("defaults to TensorBoard's 0.6", () => {
    expect(DEFAULT_SMOOTHING).toBe(0.6);
    expect(classicSmoothing([1, 2, 3])).toEqual(classicSmoothing([1, 2, 3], 0.6));
  });

  it("matches hand-computed values for w = 0.6", () => {
    // n=1: last = 0.4*1 = 0.4              -> 0.4 / (1 - 0.6)    = 1
    // n=2: last = 0.24 + 0.4*2 = 1.04       -> 1.04 / (1 - 0.36)  = 1.625
    // n=3: last = 0.624 + 0.4*3 = 1.824     -> 1.824 / (1 - 0.216) = 2.3265306...
    const out = classicSmoothing([1, 2, 3], 0.6);
    expect(out[0]).toBeCloseTo(1, 12);
    expect(out[1]).toBeCloseTo(1.625, 12);
    expect(out[2]).toBeCloseTo(1.824 / 0.784, 12);
  });

  it("matches metricreg.health.smooth (the backend's rule) on a noisy series", () => {
    const ys = [0.3, 2.5, -1.0, 4.0, 0.7, 10.0, 3.3];
    // Produced by `metricreg.health.smooth(ys, w)` in Python.
    const expected06 = [0.3, 1.675, 0.310204081632653, 2.0058823529411764, 1.4394864677307426, 5.031270139634802, 4.31881798309147];
    const expected09 = [0.3, 1.4578947368421051, 0.5509225092250923, 1.5538528642047105, 1.3453468779761177, 3.192425500310526, 3.2130453700581807];
    classicSmoothing(ys, 0.6).forEach((v, i) => expect(v).toBeCloseTo(expected06[i], 12));
    classicSmoothing(ys, 0.9).forEach((v, i) => expect(v).toBeCloseTo(expected09[i], 12));
  });

  it("the first point is always the raw value (debiasing)", () => {
    for (const w of [0.1, 0.5, 0.9, 0.99]) expect(classicSmoothing([7.25, 1], w)[0]).toBeCloseTo(7.25, 12);
  });

  it("weight 0 returns the raw values", () => {
    expect(classicSmoothing([0.3, 2.5, -1], 0)).toEqual([0.3, 2.5, -1]);
  });

  it("returns a constant series unchanged, bit for bit", () => {
    // Without the constant check the EMA path gives 0.1 * 0.4 / 0.4 = 0.10000000000000002.
    const ys = [0.1, 0.1, 0.1, 0.1];
    const viaEma = 0.1 * (1 - 0.6) / (1 - 0.6);
    expect(viaEma).not.toBe(0.1);
    const out = classicSmoothing(ys, 0.6);
    expect(out).toEqual(ys);
    out.forEach((v) => expect(Object.is(v, 0.1)).toBe(true));
  });

  it("passes NaN and infinities through without touching the state", () => {
    const out = classicSmoothing([1, NaN, 3], 0.6);
    expect(out[0]).toBeCloseTo(1, 12);
    expect(Number.isNaN(out[1])).toBe(true);
    // The NaN is skipped: 3 is the 2nd accumulated point -> (0.24 + 1.2) / 0.64 = 2.25.
    expect(out[2]).toBeCloseTo(2.25, 12);

    const inf = classicSmoothing([1, Infinity, -Infinity, 3], 0.6);
    expect(inf[1]).toBe(Infinity);
    expect(inf[2]).toBe(-Infinity);
    expect(inf[3]).toBeCloseTo(2.25, 12);
  });

  it("weight 1 outputs the undebiased state", () => {
    expect(classicSmoothing([1, 2], 1)).toEqual([0, 0]);
  });

  it("handles empty input and does not mutate its input", () => {
    expect(classicSmoothing([], 0.6)).toEqual([]);
    const ys = [1, 2, 3];
    classicSmoothing(ys, 0.6);
    expect(ys).toEqual([1, 2, 3]);
  });

  it("clamps slider values", () => {
    expect(clampSmoothing(-1)).toBe(0);
    expect(clampSmoothing(5)).toBe(0.99);
    expect(clampSmoothing(NaN)).toBe(0.6);
    expect(clampSmoothing(0.25)).toBe(0.25);
  });
});
