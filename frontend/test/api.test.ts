import { describe, expect, it } from "vitest";

import {
  ApiError,
  HealthApi,
  parseNumber,
  parseRunDetail,
  parseRunsResponse,
  runUrl,
  type FetchLike,
} from "../src/api";

describe("parseNumber", () => {
  it("turns TensorBoard's non-finite strings into numbers", () => {
    expect(Number.isNaN(parseNumber("NaN"))).toBe(true);
    expect(parseNumber("Infinity")).toBe(Infinity);
    expect(parseNumber("-Infinity")).toBe(-Infinity);
  });

  it("keeps numbers and rejects junk", () => {
    expect(parseNumber(0.06)).toBe(0.06);
    expect(parseNumber(-3)).toBe(-3);
    expect(Number.isNaN(parseNumber(null))).toBe(true);
    expect(Number.isNaN(parseNumber("abc"))).toBe(true);
    expect(Number.isNaN(parseNumber(""))).toBe(true);
  });
});

const detailJson = {
  run: "R",
  status: "critical",
  smoothing: 0.6,
  categories: [
    {
      name: "collapse",
      title: "Representation collapse",
      status: "critical",
      metrics: [
        {
          tag: "train/collapse/effective_rank",
          metric: "collapse/effective_rank",
          member: null,
          key: null,
          split: "train",
          title: "effective_rank",
          description: "d",
          remedy: "r",
          direction: "higher_is_better",
          smoothing: 0.0,
          persistence: 1,
          thresholds: { warn_above: null, warn_below: 0.5, critical_above: null, critical_below: 0.1 },
          status: "critical",
          last_step: 500,
          last_value: "NaN",
          steps: [0, 100, 200, 300],
          values: [15.9, "NaN", "Infinity", "-Infinity"],
          wall_times: [1.7e9, 1.7e9, 1.7e9, 1.7e9],
        },
      ],
    },
  ],
  alerts: [
    {
      run: "R",
      tag: "train/collapse/effective_rank",
      metric: "collapse/effective_rank",
      category: "collapse",
      level: "critical",
      bound: "nonfinite",
      threshold: null,
      value: "NaN",
      first_step: 100,
      last_step: 300,
      active: true,
      description: "d",
      remedy: "r",
      message: "m",
    },
  ],
  errors: [{ run: "R", metric: "my/metric", plugin: "p", count: 3, consecutive: 3, last_message: "ValueError", disabled: true, first_step: 10, last_step: 30 }],
};

describe("parseRunDetail", () => {
  it("parses series values, including non-finite strings", () => {
    const d = parseRunDetail(detailJson);
    const s = d.categories[0].metrics[0];
    expect(s.steps).toEqual([0, 100, 200, 300]);
    expect(s.values[0]).toBe(15.9);
    expect(Number.isNaN(s.values[1])).toBe(true);
    expect(s.values[2]).toBe(Infinity);
    expect(s.values[3]).toBe(-Infinity);
    expect(Number.isNaN(s.last_value!)).toBe(true);
    expect(s.thresholds).toEqual({ warn_above: null, warn_below: 0.5, critical_above: null, critical_below: 0.1 });
    expect(Number.isNaN(d.alerts[0].value)).toBe(true);
    expect(d.alerts[0].bound).toBe("nonfinite");
    expect(d.errors[0]).toMatchObject({ metric: "my/metric", count: 3, disabled: true });
  });

  it("tolerates missing fields", () => {
    const d = parseRunDetail({ categories: [{ name: "x", metrics: [{ tag: "t" }] }] }, "fallback");
    expect(d.run).toBe("fallback");
    expect(d.status).toBe("none");
    const s = d.categories[0].metrics[0];
    expect(s.title).toBe("t");
    expect(s.values).toEqual([]);
    expect(s.thresholds.warn_below).toBeNull();
  });
});

describe("parseRunsResponse", () => {
  it("parses runs and adds categories that only appear in a run's map", () => {
    const r = parseRunsResponse({
      runs: [{ run: "a", status: "warn", last_step: 5, categories: { collapse: "ok", weird: "warn" }, worst_alert: null, alert_count: 1, error_count: 0 }],
      categories: [{ name: "collapse", title: "Representation collapse" }],
    });
    expect(r.categories.map((c) => c.name)).toEqual(["collapse", "weird"]);
    expect(r.runs[0]).toMatchObject({ run: "a", status: "warn", alert_count: 1 });
  });

  it("maps unknown statuses to none", () => {
    expect(parseRunsResponse({ runs: [{ run: "a", status: "???" }] }).runs[0].status).toBe("none");
  });
});

describe("HealthApi", () => {
  it("fetches relative URLs and never sends smoothing (display never changes a verdict)", async () => {
    const urls: string[] = [];
    const fake: FetchLike = async (url) => {
      urls.push(url);
      return new Response(JSON.stringify(url.startsWith("./runs") ? { runs: [], categories: [] } : detailJson), {
        headers: { "Content-Type": "application/json" },
      });
    };
    const api = new HealthApi(fake);
    await api.runs();
    await api.run("a b&c");
    expect(urls).toEqual(["./runs", "./run?run=a+b%26c"]);
    expect(runUrl("x")).toBe("./run?run=x");
  });

  it("asks conditionally with the ETag it got, and keeps its copy on 304", async () => {
    const sent: (string | null)[] = [];
    const fake: FetchLike = async (_url, init) => {
      const inm = new Headers(init?.headers).get("If-None-Match");
      sent.push(inm);
      expect(init?.cache).toBe("no-store");
      if (inm === '"v1"') return new Response(null, { status: 304, headers: { ETag: '"v1"' } });
      return new Response(JSON.stringify(detailJson), { headers: { ETag: '"v1"' } });
    };
    const api = new HealthApi(fake);
    const first = await api.run("r");
    expect(first.etag).toBe('"v1"');
    expect(first.notModified).toBe(false);
    const second = await api.run("r", first);
    expect(second.notModified).toBe(true);
    expect(second.value).toBe(first.value);
    expect(sent).toEqual([null, '"v1"']);
  });

  it("without an ETag (older backend) always fetches in full", async () => {
    let calls = 0;
    const api = new HealthApi(async () => {
      calls++;
      return new Response(JSON.stringify({ runs: [], categories: [] }));
    });
    const a = await api.runs();
    expect(a.etag).toBeNull();
    const b = await api.runs(a);
    expect(b.notModified).toBe(false);
    expect(calls).toBe(2);
  });

  it("raises ApiError with the status on HTTP errors", async () => {
    const api = new HealthApi(async () => new Response("Not found: run", { status: 404 }));
    await expect(api.run("nope")).rejects.toBeInstanceOf(ApiError);
    await expect(api.run("nope")).rejects.toMatchObject({ status: 404 });
  });

  it("reads TensorBoard's run list for the colour order, null when unavailable", async () => {
    const ok = new HealthApi(async (url) => new Response(url === "../../runs" ? JSON.stringify(["b", "a", 3]) : "[]"));
    expect(await ok.tensorboardRuns()).toEqual(["b", "a"]);
    const missing = new HealthApi(async () => new Response("no", { status: 404 }));
    expect(await missing.tensorboardRuns()).toBeNull();
  });
});

describe("hostile names", () => {
  it("keeps categories named __proto__ and constructor as plain keys", () => {
    const body = JSON.parse('{"runs":[{"run":"r","status":"warn","categories":{"__proto__":"critical","constructor":"warn"}}],"categories":[]}');
    const r = parseRunsResponse(body);
    const cats = r.runs[0].categories;
    expect(Object.keys(cats).sort()).toEqual(["__proto__", "constructor"]);
    expect(cats["__proto__"]).toBe("critical");
    expect(cats["constructor"]).toBe("warn");
    expect(r.categories.map((c) => c.name).sort()).toEqual(["__proto__", "constructor"]);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it("reads an unreadable run's reason and the fingerprint", () => {
    const r = parseRunsResponse({
      runs: [
        { run: "bad", status: "unreadable", reason: "manifest: category is 5, not a string", has_manifest: true, categories: {}, alert_count: 0 },
        { run: "good", status: "ok", fingerprint: "abc" },
      ],
    }).runs;
    expect(r[0].unreadable).toBe("manifest: category is 5, not a string");
    expect(r[0].fingerprint).toBeNull();
    expect(r[1].unreadable).toBeNull();
    expect(r[1].fingerprint).toBe("abc");
  });
});
