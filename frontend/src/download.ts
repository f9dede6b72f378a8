/**
 * CSV and JSON downloads built in the browser from the data the tab already holds (no route):
 * per chart (every run's points of one tag, raw and as smoothed on screen) and per run verdict.
 */
import { classicSmoothing } from "./smoothing";
import type { MetricSeries, RunDetail, RunSummary } from "./types";

export interface ChartSeries {
  run: string;
  series: MetricSeries;
}

/** A CSV field: quoted when needed; text that a spreadsheet would run as a formula is defused. */
export function csvField(v: string | number | boolean | null): string {
  if (v === null) return "";
  if (typeof v === "number") return Number.isFinite(v) ? String(v) : Number.isNaN(v) ? "NaN" : v > 0 ? "Infinity" : "-Infinity";
  let s = String(v);
  if (/^[=+\-@\t\r]/.test(s)) s = "'" + s;
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

export function toCsv(header: readonly string[], rows: Iterable<readonly (string | number | boolean | null)[]>): string {
  const lines = [header.map(csvField).join(",")];
  for (const r of rows) lines.push(r.map(csvField).join(","));
  return lines.join("\r\n") + "\r\n";
}

/** Non-finite numbers as TensorBoard's JSON strings, so the file parses anywhere. */
function jsonNumber(v: number | null): number | string | null {
  if (v === null || Number.isFinite(v)) return v;
  return Number.isNaN(v) ? "NaN" : v > 0 ? "Infinity" : "-Infinity";
}

export function chartCsv(tag: string, items: readonly ChartSeries[], smoothing: number): string {
  const rows: (string | number | null)[][] = [];
  for (const { run, series } of items) {
    const smoothed = classicSmoothing(series.values, smoothing);
    series.steps.forEach((step, i) => rows.push([run, tag, step, series.wall_times[i] ?? null, series.values[i] ?? null, smoothed[i] ?? null]));
  }
  return toCsv(["run", "tag", "step", "wall_time", "value", "smoothed"], rows);
}

export function chartJson(tag: string, items: readonly ChartSeries[], smoothing: number): string {
  return JSON.stringify(
    {
      tag,
      smoothing,
      runs: items.map(({ run, series }) => ({
        run,
        status: series.status,
        thresholds: series.thresholds,
        steps: series.steps,
        wall_times: series.wall_times,
        values: series.values.map(jsonNumber),
        smoothed: classicSmoothing(series.values, smoothing).map(jsonNumber),
      })),
    },
    null,
    1,
  );
}

/** The run's verdict: overall and per category from ./runs, per series and alerts when loaded. */
export function verdictJson(summary: RunSummary, detail: RunDetail | null): string {
  return JSON.stringify(
    {
      run: summary.run,
      status: summary.unreadable ? "unreadable" : summary.status,
      reason: summary.unreadable,
      last_step: summary.last_step,
      categories: { ...summary.categories },
      alert_count: summary.alert_count,
      error_count: summary.error_count,
      series: detail
        ? detail.categories.flatMap((c) =>
            c.metrics.map((m) => ({
              category: c.name,
              tag: m.tag,
              status: m.status,
              last_step: m.last_step,
              last_value: jsonNumber(m.last_value),
              thresholds: m.thresholds,
            })),
          )
        : null,
      alerts: detail ? detail.alerts.map((a) => ({ ...a, value: jsonNumber(a.value) })) : summary.worst_alert ? [summary.worst_alert] : [],
      errors: detail ? detail.errors : null,
    },
    null,
    1,
  );
}

/** One row per series when the run's details are loaded, else one per category. */
export function verdictCsv(summary: RunSummary, detail: RunDetail | null): string {
  const header = ["run", "category", "tag", "status", "last_step", "last_value", "alert_level", "alert_first_step", "alert_message"];
  const rows: (string | number | null)[][] = [];
  if (detail) {
    for (const c of detail.categories) {
      for (const m of c.metrics) {
        const a = detail.alerts.find((x) => x.tag === m.tag && x.active) ?? null;
        rows.push([summary.run, c.name, m.tag, m.status, m.last_step, m.last_value, a?.level ?? null, a?.first_step ?? null, a?.message ?? null]);
      }
    }
  } else {
    for (const [cat, status] of Object.entries(summary.categories)) rows.push([summary.run, cat, null, status, summary.last_step, null, null, null, null]);
  }
  return toCsv(header, rows);
}

/** A file name safe on every OS, from run and tag names. */
export function fileName(...parts: string[]): string {
  return (
    parts
      .join("__")
      .replace(/[^A-Za-z0-9._-]+/g, "_")
      .replace(/^[._]+/, "")
      .slice(0, 150) || "health"
  );
}

/** Offer `text` as a download (an object URL on a temporary <a download>). */
export function saveText(doc: Document, name: string, mime: string, text: string): void {
  const win = doc.defaultView;
  if (!win || typeof win.URL?.createObjectURL !== "function") return;
  const url = win.URL.createObjectURL(new win.Blob([text], { type: mime }));
  const a = doc.createElement("a");
  a.href = url;
  a.download = name;
  a.hidden = true;
  doc.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => win.URL.revokeObjectURL(url), 10_000);
}
