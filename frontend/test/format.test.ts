import { describe, expect, it } from "vitest";

import {
  alertStepsText,
  alertValueText,
  formatNumber,
  formatStep,
  thresholdParts,
  thresholdText,
  worstStatus,
} from "../src/format";
import type { Thresholds } from "../src/types";

const none: Thresholds = { warn_above: null, warn_below: null, critical_above: null, critical_below: null };

describe("thresholds", () => {
  it("formats below-thresholds most severe first", () => {
    expect(thresholdText({ ...none, warn_below: 0.5, critical_below: 0.1 })).toBe("< 0.1 critical, < 0.5 warn");
  });

  it("formats above-thresholds", () => {
    expect(thresholdText({ ...none, warn_above: 10, critical_above: 100 })).toBe("> 100 critical, > 10 warn");
    expect(thresholdParts({ ...none, warn_above: 0.25 })).toEqual([{ level: "warn", text: "> 0.25 warn" }]);
  });

  it("says when there are none", () => {
    expect(thresholdText(none)).toBe("no thresholds");
    expect(thresholdParts(none)).toEqual([]);
  });

  it("keeps a zero threshold", () => {
    expect(thresholdText({ ...none, critical_below: 0 })).toBe("< 0 critical");
  });
});

describe("numbers", () => {
  it("formats to 4 significant digits", () => {
    expect(formatNumber(0.0612345)).toBe("0.06123");
    expect(formatNumber(15.9)).toBe("15.9");
    expect(formatNumber(123456)).toBe("123500");
    expect(formatNumber(-2.5)).toBe("-2.5");
    expect(formatNumber(0)).toBe("0");
  });

  it("uses exponents for tiny and huge magnitudes", () => {
    expect(formatNumber(1.234e-7)).toBe("1.23e-7");
    expect(formatNumber(5e-5)).toBe("5e-5");
    expect(formatNumber(2.5e9)).toBe("2.5e+9");
  });

  it("shows non-finite and missing values", () => {
    expect(formatNumber(NaN)).toBe("NaN");
    expect(formatNumber(Infinity)).toBe("Infinity");
    expect(formatNumber(-Infinity)).toBe("-Infinity");
    expect(formatNumber(null)).toBe("—");
  });

  it("formats steps as plain integers", () => {
    expect(formatStep(300)).toBe("300");
    expect(formatStep(1234567)).toBe("1234567");
    expect(formatStep(null)).toBe("—");
  });
});

describe("alerts", () => {
  it("shows value vs threshold", () => {
    expect(alertValueText({ bound: "below", value: 0.06, threshold: 0.1 })).toBe("0.06 < 0.1");
    expect(alertValueText({ bound: "above", value: 12, threshold: 10 })).toBe("12 > 10");
    expect(alertValueText({ bound: "nonfinite", value: NaN, threshold: null })).toBe("NaN (non-finite)");
  });

  it("describes the steps of an episode", () => {
    expect(alertStepsText({ first_step: 300, last_step: 500, active: true })).toBe("since step 300");
    expect(alertStepsText({ first_step: 300, last_step: 500, active: false })).toBe("step 300 to 500");
  });

  it("picks the worst status", () => {
    expect(worstStatus(["ok", "critical", "warn"])).toBe("critical");
    expect(worstStatus(["none", "ok"])).toBe("ok");
    expect(worstStatus([])).toBe("none");
  });
});
