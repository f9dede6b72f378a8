/**
 * Fetch wrappers for the Health tab routes. URLs are RELATIVE ("./runs"): the plugin iframe's
 * base URL is `<tb>/data/plugin/metricreg_health/`, which keeps --path_prefix and proxies working.
 * Every response is normalised: TensorBoard's "NaN"/"Infinity"/"-Infinity" strings become numbers,
 * and missing optional fields get defaults, so the views never see raw JSON.
 */
import type {
  Alert,
  Bound,
  CategoryInfo,
  CostRow,
  Level,
  MetricError,
  MetricSeries,
  RunCategory,
  RunCost,
  RunDetail,
  RunSummary,
  RunsResponse,
  Status,
  Thresholds,
} from "./types";

export type FetchLike = (input: string, init?: RequestInit) => Promise<Response>;

export class ApiError extends Error {
  constructor(
    readonly url: string,
    readonly status: number,
    detail: string,
  ) {
    super(`${url}: HTTP ${status}${detail ? `: ${detail}` : ""}`);
    this.name = "ApiError";
  }
}

type Json = Record<string, unknown>;

const isObject = (v: unknown): v is Json => typeof v === "object" && v !== null && !Array.isArray(v);

/** A JSON number, or one of TensorBoard's non-finite strings, as a number (NaN when unusable). */
export function parseNumber(v: unknown): number {
  if (typeof v === "number") return v;
  if (typeof v === "string") {
    switch (v) {
      case "NaN":
        return NaN;
      case "Infinity":
      case "+Infinity":
        return Infinity;
      case "-Infinity":
        return -Infinity;
      default: {
        const trimmed = v.trim();
        return trimmed === "" ? NaN : Number(trimmed);
      }
    }
  }
  return NaN;
}

/** Like parseNumber, but null/undefined stay null (thresholds, optional values). */
export function parseNullableNumber(v: unknown): number | null {
  return v === null || v === undefined ? null : parseNumber(v);
}

export function parseNumberArray(v: unknown): number[] {
  return Array.isArray(v) ? v.map(parseNumber) : [];
}

const STATUSES: readonly string[] = ["ok", "warn", "critical", "none"];
const LEVELS: readonly string[] = ["ok", "warn", "critical"];
const BOUNDS: readonly string[] = ["below", "above", "nonfinite"];

export function parseStatus(v: unknown): Status {
  return typeof v === "string" && STATUSES.includes(v) ? (v as Status) : "none";
}

function parseLevel(v: unknown): Level {
  return typeof v === "string" && LEVELS.includes(v) ? (v as Level) : "warn";
}

const str = (v: unknown, dflt = ""): string => (typeof v === "string" ? v : v == null ? dflt : String(v));
const strOrNull = (v: unknown): string | null => (v === null || v === undefined ? null : str(v));
const int = (v: unknown, dflt = 0): number => {
  const n = parseNumber(v);
  return Number.isFinite(n) ? n : dflt;
};
const intOrNull = (v: unknown): number | null => {
  const n = parseNullableNumber(v);
  return n === null || !Number.isFinite(n) ? null : n;
};

export function parseThresholds(v: unknown): Thresholds {
  const t = isObject(v) ? v : {};
  return {
    warn_above: parseNullableNumber(t.warn_above),
    warn_below: parseNullableNumber(t.warn_below),
    critical_above: parseNullableNumber(t.critical_above),
    critical_below: parseNullableNumber(t.critical_below),
  };
}

export function parseAlert(v: unknown, run = ""): Alert {
  const a = isObject(v) ? v : {};
  const bound = str(a.bound);
  return {
    run: str(a.run, run),
    tag: str(a.tag),
    metric: strOrNull(a.metric),
    category: str(a.category, "other"),
    level: parseLevel(a.level),
    bound: (BOUNDS.includes(bound) ? bound : "above") as Bound,
    threshold: parseNullableNumber(a.threshold),
    value: parseNumber(a.value),
    first_step: int(a.first_step),
    last_step: int(a.last_step),
    active: a.active !== false,
    description: str(a.description),
    remedy: str(a.remedy),
    message: str(a.message),
    onset_value: a.onset_value === undefined ? null : parseNullableNumber(a.onset_value),
    critical_step: intOrNull(a.critical_step),
  };
}

export function parseMetricError(v: unknown, run = ""): MetricError {
  const e = isObject(v) ? v : {};
  return {
    run: str(e.run, run),
    metric: str(e.metric),
    plugin: str(e.plugin),
    count: int(e.count),
    consecutive: int(e.consecutive),
    last_message: str(e.last_message),
    disabled: e.disabled === true,
    first_step: intOrNull(e.first_step),
    last_step: intOrNull(e.last_step),
  };
}

export function parseSeries(v: unknown): MetricSeries {
  const s = isObject(v) ? v : {};
  const tag = str(s.tag);
  return {
    tag,
    metric: strOrNull(s.metric),
    member: strOrNull(s.member),
    key: strOrNull(s.key),
    split: strOrNull(s.split),
    title: str(s.title) || tag,
    description: str(s.description),
    remedy: str(s.remedy),
    direction: strOrNull(s.direction),
    smoothing: parseNullableNumber(s.smoothing),
    persistence: parseNullableNumber(s.persistence),
    thresholds: parseThresholds(s.thresholds),
    status: parseStatus(s.status),
    last_step: intOrNull(s.last_step),
    last_value: parseNullableNumber(s.last_value),
    steps: parseNumberArray(s.steps),
    values: parseNumberArray(s.values),
    wall_times: parseNumberArray(s.wall_times),
  };
}

function parseCategoryInfo(v: unknown): CategoryInfo | null {
  if (typeof v === "string") return { name: v, title: v };
  if (!isObject(v) || typeof v.name !== "string") return null;
  return { name: v.name, title: str(v.title) || v.name };
}

export function parseRunSummary(v: unknown): RunSummary {
  const r = isObject(v) ? v : {};
  // Null prototype: a category named "__proto__" or "constructor" is just a key.
  const cats = Object.create(null) as Record<string, Status>;
  if (isObject(r.categories)) {
    for (const [name, status] of Object.entries(r.categories)) cats[name] = parseStatus(status);
  }
  const run = str(r.run);
  const unreadable = r.status === "unreadable" ? str(r.reason) || "unreadable" : null;
  return {
    run,
    status: parseStatus(r.status),
    has_manifest: r.has_manifest !== false,
    last_step: intOrNull(r.last_step),
    categories: cats,
    worst_alert: isObject(r.worst_alert) ? parseAlert(r.worst_alert, run) : null,
    alert_count: int(r.alert_count),
    error_count: int(r.error_count),
    fingerprint: typeof r.fingerprint === "string" ? r.fingerprint : null,
    unreadable,
  };
}

export function parseRunsResponse(v: unknown): RunsResponse {
  const body = isObject(v) ? v : {};
  const runs = Array.isArray(body.runs) ? body.runs.map(parseRunSummary) : [];
  const categories: CategoryInfo[] = [];
  const seen = new Set<string>();
  if (Array.isArray(body.categories)) {
    for (const c of body.categories) {
      const info = parseCategoryInfo(c);
      if (info && !seen.has(info.name)) {
        seen.add(info.name);
        categories.push(info);
      }
    }
  }
  // Tolerate a category that only appears in a run's map.
  for (const r of runs) {
    for (const name of Object.keys(r.categories)) {
      if (!seen.has(name)) {
        seen.add(name);
        categories.push({ name, title: name });
      }
    }
  }
  return { runs, categories };
}

export function parseCostRow(v: unknown): CostRow | null {
  if (!isObject(v) || typeof v.metric !== "string") return null;
  const over = isObject(v.over_budget) ? v.over_budget : null;
  const hung = isObject(v.hung) ? v.hung : null;
  return {
    metric: v.metric,
    plugin: strOrNull(v.plugin),
    mean_ms: parseNullableNumber(v.mean_ms),
    step: intOrNull(v.step),
    share: parseNullableNumber(v.share),
    over_budget: over ? { step: intOrNull(over.step), ms: parseNullableNumber(over.ms) } : null,
    hung: hung ? { step: intOrNull(hung.step), seconds: parseNullableNumber(hung.seconds), returned: hung.returned === true } : null,
  };
}

/** The Cost section of a `/run` body (absent from older backends: an empty one). */
export function parseRunCost(d: Json): RunCost {
  const rows = Array.isArray(d.cost) ? d.cost.map(parseCostRow).filter((r): r is CostRow => r !== null) : [];
  const total = parseNullableNumber(d.cost_ms_total);
  return {
    rows,
    total_ms: total !== null && Number.isFinite(total) ? total : 0,
    budget_ms: parseNullableNumber(d.cost_budget_ms),
    hang_after_s: parseNullableNumber(d.cost_hang_after_s),
    problem: d.cost_problem === undefined || d.cost_problem === null ? null : str(d.cost_problem),
  };
}

export function parseRunDetail(v: unknown, runName = ""): RunDetail {
  const d = isObject(v) ? v : {};
  const run = str(d.run, runName);
  const categories: RunCategory[] = Array.isArray(d.categories)
    ? d.categories.filter(isObject).map((c) => ({
        name: str(c.name, "other"),
        title: str(c.title) || str(c.name, "other"),
        status: parseStatus(c.status),
        metrics: Array.isArray(c.metrics) ? c.metrics.map(parseSeries) : [],
      }))
    : [];
  return {
    run,
    status: parseStatus(d.status),
    smoothing: parseNullableNumber(d.smoothing),
    categories,
    alerts: Array.isArray(d.alerts) ? d.alerts.map((a) => parseAlert(a, run)) : [],
    errors: Array.isArray(d.errors) ? d.errors.map((e) => parseMetricError(e, run)) : [],
    cost: parseRunCost(d),
  };
}

/**
 * The routes judge every series with its own rule's smoothing: display smoothing never changes a
 * verdict, so the tab never sends `smoothing=` and never refetches when the slider moves.
 */
export const RUNS_URL = "./runs";

export function runUrl(run: string): string {
  return "./run?" + new URLSearchParams({ run }).toString();
}

/** A parsed body with the validator it came with (the ETag, or null when the server sent none). */
export interface Versioned<T> {
  value: T;
  etag: string | null;
  /** true when the server answered 304 and `value` is the previous one */
  notModified: boolean;
}

async function getJson(fetchImpl: FetchLike, url: string, etag: string | null, signal?: AbortSignal): Promise<Versioned<unknown> | null> {
  const headers: Record<string, string> = {};
  if (etag) headers["If-None-Match"] = etag;
  // no-store: the browser cache must not turn our 304 into a silent 200 (nor serve stale data).
  const resp = await fetchImpl(url, { credentials: "same-origin", cache: "no-store", headers, signal });
  const tag = typeof resp.headers?.get === "function" ? resp.headers.get("ETag") : null;
  if (resp.status === 304) return null;
  if (!resp.ok) {
    let detail = "";
    try {
      detail = (await resp.text()).slice(0, 300);
    } catch {
      /* body unreadable: the status says enough */
    }
    throw new ApiError(url, resp.status, detail.trim());
  }
  return { value: await resp.json(), etag: tag, notModified: false };
}

function notModified<T>(url: string, prev: Versioned<T> | null): Versioned<T> {
  if (!prev) throw new ApiError(url, 304, "Not Modified without a cached copy");
  return { ...prev, notModified: true };
}

export class HealthApi {
  constructor(private readonly fetchImpl: FetchLike) {}

  /** `./runs`; with `prev`, a conditional request that returns `prev` on 304. */
  async runs(prev: Versioned<RunsResponse> | null = null, signal?: AbortSignal): Promise<Versioned<RunsResponse>> {
    const got = await getJson(this.fetchImpl, RUNS_URL, prev?.etag ?? null, signal);
    if (!got) return notModified(RUNS_URL, prev);
    return { value: parseRunsResponse(got.value), etag: got.etag, notModified: false };
  }

  /** `./run?run=R`; with `prev`, a conditional request that returns `prev` on 304. */
  async run(run: string, prev: Versioned<RunDetail> | null = null, signal?: AbortSignal): Promise<Versioned<RunDetail>> {
    const got = await getJson(this.fetchImpl, runUrl(run), prev?.etag ?? null, signal);
    if (!got) return notModified(runUrl(run), prev);
    return { value: parseRunDetail(got.value, run), etag: got.etag, notModified: false };
  }

  /**
   * TensorBoard's own run list (`<tb>/data/runs`, two levels above the plugin's routes), in the
   * order TensorBoard assigns its run colours. Null when unavailable (page opened elsewhere).
   */
  async tensorboardRuns(): Promise<string[] | null> {
    try {
      const resp = await this.fetchImpl("../../runs", { credentials: "same-origin" });
      if (!resp.ok) return null;
      const body: unknown = await resp.json();
      return Array.isArray(body) ? body.filter((r): r is string => typeof r === "string") : null;
    } catch {
      return null;
    }
  }
}
