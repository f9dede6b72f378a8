/** Route payloads shaped like docs/ARCHITECTURE.md "Health tab routes" (JSON, as the server sends them). */

export const EVIL = "<img src=x onerror=alert(1)>";

const thresholdsBelow = { warn_above: null, warn_below: 0.5, critical_above: null, critical_below: 0.1 };

export function series(tag: string, status: string, values: unknown[], extra: Record<string, unknown> = {}) {
  return {
    tag,
    metric: tag.split("/").slice(1).join("/"),
    member: null,
    key: null,
    split: "train",
    title: tag.split("/").pop(),
    description: `description of ${tag}`,
    remedy: `remedy for ${tag}`,
    direction: "higher_is_better",
    smoothing: 0.0,
    persistence: 1,
    thresholds: thresholdsBelow,
    status,
    last_step: (values.length - 1) * 100,
    last_value: values[values.length - 1],
    steps: values.map((_, i) => i * 100),
    values,
    wall_times: values.map(() => 1.7e9),
    ...extra,
  };
}

export function alert(run: string, tag: string, level: string, first_step: number) {
  return {
    run,
    tag,
    metric: tag,
    category: "collapse",
    level,
    bound: "below",
    threshold: 0.1,
    value: 0.06,
    first_step,
    last_step: 500,
    active: true,
    description: `alert description ${EVIL}`,
    remedy: "lower the learning rate",
    message: `${tag} = 0.06 is below the ${level} threshold 0.1 (since step ${first_step})`,
  };
}

export const CATEGORIES = [
  { name: "weird_custom", title: "Custom <b>stuff</b>" },
  { name: "generalization", title: "Generalization gap" },
  { name: "collapse", title: "Representation collapse" },
  { name: "ema", title: "EMA" },
];

export function runsPayload(runNames: string[]) {
  return {
    runs: runNames.map((run, i) => ({
      run,
      status: i === 0 ? "critical" : i === 1 ? "warn" : "ok",
      has_manifest: true,
      last_step: 500,
      categories: { collapse: i === 0 ? "critical" : "ok", ema: "ok", generalization: i === 1 ? "warn" : "ok", weird_custom: "none" },
      worst_alert: i === 0 ? alert(run, "train/collapse/effective_rank", "critical", 300) : null,
      alert_count: i === 0 ? 1 : 0,
      error_count: 0,
    })),
    categories: CATEGORIES,
  };
}

export function runPayload(run: string, i: number) {
  return {
    run,
    status: i === 0 ? "critical" : "ok",
    smoothing: 0.6,
    categories: [
      {
        name: "collapse",
        title: "Representation collapse",
        status: i === 0 ? "critical" : "ok",
        metrics: [series("train/collapse/effective_rank", i === 0 ? "critical" : "ok", [15.9, 8, "NaN", 0.06, 0.05, 0.04])],
      },
      { name: "ema", title: "EMA", status: "ok", metrics: [series("train/ema/drift", "ok", [1, 1.1, 1.2], { thresholds: { warn_above: 5, warn_below: null, critical_above: 10, critical_below: null } })] },
      { name: "generalization", title: "Generalization gap", status: "ok", metrics: [series("gap/generalization/loss_gap", "ok", [0.1, 0.2])] },
      { name: "weird_custom", title: "Custom <b>stuff</b>", status: "none", metrics: [] },
    ],
    alerts: i === 0 ? [alert(run, "train/collapse/effective_rank", "critical", 300)] : [],
    errors: i === 0 ? [{ run, metric: "my/metric", plugin: "my_plugin", count: 3, consecutive: 3, last_message: `ValueError: ${EVIL}`, disabled: true, first_step: 10, last_step: 30 }] : [],
  };
}

export interface FakeServer {
  fetch: (url: string, init?: RequestInit) => Promise<Response>;
  /** the plugin route URLs fetched ("./..."), in order */
  urls: string[];
  /** how each of those was answered (200, 304, 404) */
  statuses: number[];
  /** change a run's data: its fingerprint and ETag change with it */
  touch(run: string): void;
}

export interface FakeOptions {
  /** answer ETag / If-None-Match and put fingerprints in ./runs (the new backend contract) */
  etags?: boolean;
  /** TensorBoard's /data/runs (for the colour order); absent: 404 */
  tbRuns?: string[];
}

export function fakeServer(runNames: string[], opts: FakeOptions = {}): FakeServer {
  const urls: string[] = [];
  const statuses: number[] = [];
  const versions = new Map<string, number>(runNames.map((r) => [r, 0]));
  const print = (run: string) => `${run.length}-${versions.get(run)}`;
  const respond = (init: RequestInit | undefined, body: unknown, etag: string | null) => {
    const headers: Record<string, string> = { "Content-Type": "application/json" };
    if (etag !== null && opts.etags) {
      headers.ETag = `"${etag}"`;
      const sent = new Headers(init?.headers).get("If-None-Match");
      if (sent === `"${etag}"`) {
        statuses.push(304);
        return new Response(null, { status: 304, headers });
      }
    }
    statuses.push(200);
    return new Response(JSON.stringify(body), { status: 200, headers });
  };
  return {
    urls,
    statuses,
    touch(run: string) {
      versions.set(run, (versions.get(run) ?? 0) + 1);
    },
    fetch: async (url: string, init?: RequestInit) => {
      if (url.startsWith("../")) {
        if (url === "../../runs" && opts.tbRuns) return new Response(JSON.stringify(opts.tbRuns), { headers: { "Content-Type": "application/json" } });
        return new Response("Not found", { status: 404 });
      }
      urls.push(url);
      const u = new URL(url, "http://tb/data/plugin/metricreg_health/");
      if (u.pathname.endsWith("/runs")) {
        const body = runsPayload(runNames);
        if (opts.etags) body.runs.forEach((r) => Object.assign(r, { fingerprint: print(r.run) }));
        return respond(init, body, runNames.map(print).join(","));
      }
      if (u.pathname.endsWith("/run")) {
        const run = u.searchParams.get("run");
        const i = runNames.indexOf(run ?? "");
        if (i < 0) {
          statuses.push(404);
          return new Response("Not found", { status: 404 });
        }
        const body = runPayload(run!, i);
        const v = versions.get(run!) ?? 0;
        if (v) body.categories[0].metrics[0].values.push(0.01 * v);
        if (v) body.categories[0].metrics[0].steps.push(1000 + v);
        return respond(init, body, print(run!));
      }
      statuses.push(404);
      return new Response("Not found", { status: 404 });
    },
  };
}
