import { describe, expect, it } from "vitest";

import { parseRunDetail, parseRunsResponse } from "../src/api";
import { chartCsv, chartJson, csvField, fileName, verdictCsv, verdictJson } from "../src/download";
import { EVIL, runPayload, runsPayload } from "./fixtures";

describe("downloads", () => {
  const detail = parseRunDetail(runPayload(EVIL, 0));
  const summary = parseRunsResponse(runsPayload([EVIL])).runs[0];
  const series = detail.categories[0].metrics[0];

  it("CSV fields are quoted, and text a spreadsheet would execute is defused", () => {
    expect(csvField('a,"b"')).toBe('"a,""b"""');
    expect(csvField("=HYPERLINK(1)")).toBe("'=HYPERLINK(1)");
    expect(csvField(-1.5)).toBe("-1.5");
    expect(csvField(NaN)).toBe("NaN");
    expect(csvField(null)).toBe("");
  });

  it("a chart's CSV has every point, raw and smoothed as drawn", () => {
    const csv = chartCsv(series.tag, [{ run: EVIL, series }], 0.6).trim().split("\r\n");
    expect(csv[0]).toBe("run,tag,step,wall_time,value,smoothed");
    expect(csv).toHaveLength(1 + series.steps.length);
    expect(csv[1]).toBe(`${EVIL},${series.tag},0,1700000000,15.9,15.9`);
    expect(csv[3].split(",")[4]).toBe("NaN");
  });

  it("a chart's JSON parses, with non-finite values as TensorBoard's strings", () => {
    const j = JSON.parse(chartJson(series.tag, [{ run: EVIL, series }], 0));
    expect(j.runs[0].values[2]).toBe("NaN");
    expect(j.runs[0].run).toBe(EVIL);
  });

  it("a run's verdict: per series when loaded, per category otherwise", () => {
    const full = JSON.parse(verdictJson(summary, detail));
    expect(full.status).toBe("critical");
    expect(full.alerts[0].first_step).toBe(300);
    expect(full.series.map((s: { tag: string }) => s.tag)).toContain(series.tag);
    const rows = verdictCsv(summary, detail).trim().split("\r\n");
    expect(rows[1]).toContain(`${series.tag},critical`);
    const light = verdictCsv(summary, null).trim().split("\r\n");
    expect(light).toHaveLength(1 + Object.keys(summary.categories).length);
  });

  it("file names are safe", () => {
    expect(fileName("../../etc/passwd", "a b")).toBe("etc_passwd__a_b");
    expect(fileName(EVIL)).toMatch(/^[A-Za-z0-9._-]+$/);
  });
});
