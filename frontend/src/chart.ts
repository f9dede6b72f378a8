/**
 * One uPlot line chart per metric tag, overlaying several runs like TensorBoard's scalar cards:
 * for each run a faint raw line and a solid smoothed line in the run's stable colour, over
 * threshold bands (warn region amber, critical region red) painted in a `drawAxes` hook, i.e.
 * above the grid and below the series. The y scale can be logarithmic.
 */
import type uPlot from "uplot";

import { withAlpha } from "./colors";
import { formatDuration, formatNumber, formatPercent, formatStep } from "./format";
import { classicSmoothing } from "./smoothing";
import type { Thresholds } from "./types";

export interface ChartRun {
  run: string;
  color: string;
  steps: readonly number[];
  values: readonly number[];
  /** seconds since the epoch, one per step (may be empty: only the step axis then) */
  wall_times?: readonly number[];
}

export type XAxis = "step" | "relative" | "wall";

export interface ChartSpec {
  tag: string;
  runs: readonly ChartRun[];
  thresholds: Thresholds;
  smoothing: number;
  logScale: boolean;
  /** what x is: the step, seconds since the run's first point, or wall-clock time */
  xAxis?: XAxis;
  /** x as a fraction of each run's own length, so runs of different lengths overlay */
  align?: boolean;
}

export interface ChartTheme {
  axis: string;
  grid: string;
  bandWarn: string;
  bandCritical: string;
  lineWarn: string;
  lineCritical: string;
}

export const DEFAULT_THEME: ChartTheme = {
  axis: "#616161",
  grid: "rgba(0, 0, 0, 0.08)",
  bandWarn: "rgba(255, 193, 7, 0.16)",
  bandCritical: "rgba(244, 67, 54, 0.14)",
  lineWarn: "rgba(255, 160, 0, 0.8)",
  lineCritical: "rgba(229, 57, 53, 0.8)",
};

export const CHART_HEIGHT = 220;
export const FALLBACK_WIDTH = 480;
const MIN_WIDTH = 200;

type Cell = number | null | undefined;

export interface ChartData {
  /** [x, raw run 0, smoothed run 0, raw run 1, smoothed run 1, ...] */
  data: uPlot.AlignedData;
  /** Finite raw points drawn (positive ones only on a log scale). */
  points: number;
}

/** The x values of one run under the chosen axis (NaN where the run has no such value). */
export function runXs(r: ChartRun, xAxis: XAxis = "step", align = false): number[] {
  const n = Math.min(r.steps.length, r.values.length);
  const wall = r.wall_times ?? [];
  let xs: number[];
  if (xAxis === "step") xs = r.steps.slice(0, n) as number[];
  else {
    const t0 = wall.length ? wall[0] : NaN;
    xs = Array.from({ length: n }, (_, i) => (i < wall.length ? (xAxis === "wall" && !align ? wall[i] : wall[i] - t0) : NaN));
  }
  if (!align) return xs;
  let lo = Infinity;
  let hi = -Infinity;
  for (const x of xs) {
    if (!Number.isFinite(x)) continue;
    if (x < lo) lo = x;
    if (x > hi) hi = x;
  }
  if (xAxis === "step") lo = Math.min(lo, 0);
  const span = hi - lo;
  return xs.map((x) => (span > 0 ? (x - lo) / span : 0));
}

/** Finite raw values a chart would draw, without building it (cards show it before drawing). */
export function countPoints(runs: readonly ChartRun[], logScale: boolean): number {
  let n = 0;
  for (const r of runs) {
    const m = Math.min(r.steps.length, r.values.length);
    for (let i = 0; i < m; i++) {
      const y = r.values[i];
      if (Number.isFinite(y) && (!logScale || y > 0)) n++;
    }
  }
  return n;
}

/**
 * Align the runs on the union of their x values. An absent x is `undefined` (uPlot connects
 * across it); a non-finite value, or a non-positive one on a log scale, is `null` (a gap).
 */
export function buildChartData(runs: readonly ChartRun[], smoothing: number, logScale: boolean, xAxis: XAxis = "step", align = false): ChartData {
  const perRun = runs.map((r) => runXs(r, xAxis, align));
  const xSet = new Set<number>();
  for (const xs of perRun) for (const x of xs) if (Number.isFinite(x)) xSet.add(x);
  const xs = Float64Array.from(xSet).sort();
  const index = new Map<number, number>();
  xs.forEach((x, i) => index.set(x, i));
  const drawable = (y: number): boolean => Number.isFinite(y) && (!logScale || y > 0);

  const columns: Cell[][] = [];
  let points = 0;
  runs.forEach((r, k) => {
    const raw = new Array<Cell>(xs.length).fill(undefined);
    const smooth = new Array<Cell>(xs.length).fill(undefined);
    const rx = perRun[k];
    const n = rx.length;
    const smoothed = classicSmoothing(r.values.slice(0, n), smoothing);
    for (let i = 0; i < n; i++) {
      const idx = index.get(rx[i]);
      if (idx === undefined) continue;
      const y = r.values[i];
      const counted = typeof raw[idx] === "number";
      raw[idx] = drawable(y) ? y : null;
      if (drawable(y) && !counted) points++;
      if (!drawable(y) && counted) points--;
      smooth[idx] = drawable(smoothed[i]) ? smoothed[i] : null;
    }
    columns.push(raw, smooth);
  });
  return { data: [Array.from(xs), ...columns] as uPlot.AlignedData, points };
}

export interface Region {
  level: "warn" | "critical";
  from: number;
  to: number;
}

/** The value ranges to shade: critical beyond the critical thresholds, warn between warn and critical. */
export function thresholdRegions(t: Thresholds): Region[] {
  const ok = (v: number | null): v is number => v !== null && !Number.isNaN(v);
  const regions: Region[] = [];
  if (ok(t.critical_below)) regions.push({ level: "critical", from: -Infinity, to: t.critical_below });
  if (ok(t.warn_below)) {
    const from = ok(t.critical_below) ? t.critical_below : -Infinity;
    if (t.warn_below > from) regions.push({ level: "warn", from, to: t.warn_below });
  }
  if (ok(t.critical_above)) regions.push({ level: "critical", from: t.critical_above, to: Infinity });
  if (ok(t.warn_above)) {
    const to = ok(t.critical_above) ? t.critical_above : Infinity;
    if (t.warn_above < to) regions.push({ level: "warn", from: t.warn_above, to });
  }
  return regions;
}

type UPlotCtor = typeof uPlot;
let UPlot: UPlotCtor | null = null;

/**
 * Load uPlot. It is imported lazily (esbuild inlines it into the same file, wrapped so that its
 * module code runs only now): uPlot's top level queries window.matchMedia, and importing
 * index.js must not touch the DOM.
 */
export async function loadChartLibrary(): Promise<void> {
  if (!UPlot) UPlot = (await import("uplot")).default;
}

let canvasOk: boolean | null = null;

/** Whether this document can draw on a canvas (false under jsdom). */
export function canvasSupported(doc: Document = document): boolean {
  if (canvasOk === null) {
    try {
      canvasOk = !!doc.createElement("canvas").getContext("2d");
    } catch {
      canvasOk = false;
    }
  }
  return canvasOk;
}

/** For tests. */
export function resetCanvasCheck(): void {
  canvasOk = null;
}

export interface ChartHandle {
  readonly el: HTMLElement;
  readonly points: number;
  /** Re-smooth in place (no fetch, zoom kept). */
  setSmoothing(w: number): void;
  /** New data in place, keeping zoom and cursor; false when the chart must be recreated instead. */
  update(spec: ChartSpec): boolean;
  destroy(): void;
}

function bandsHook(spec: ChartSpec, theme: ChartTheme): (u: uPlot) => void {
  const regions = thresholdRegions(spec.thresholds);
  return (u: uPlot) => {
    if (!regions.length) return;
    const { ctx, bbox } = u;
    const top = bbox.top;
    const bottom = bbox.top + bbox.height;
    const yPix = (v: number): number => {
      if (v === Infinity) return top;
      if (v === -Infinity || (spec.logScale && v <= 0)) return bottom;
      return u.valToPos(v, "y", true);
    };
    const clamp = (p: number): number => Math.min(Math.max(p, top), bottom);
    ctx.save();
    for (const r of regions) {
      const y1 = clamp(yPix(r.to));
      const y2 = clamp(yPix(r.from));
      if (!(y2 > y1)) continue;
      ctx.fillStyle = r.level === "critical" ? theme.bandCritical : theme.bandWarn;
      ctx.fillRect(bbox.left, y1, bbox.width, y2 - y1);
    }
    // A dashed line at each finite threshold that is inside the plot.
    ctx.setLineDash([4 * devicePixelRatioOf(u), 4 * devicePixelRatioOf(u)]);
    ctx.lineWidth = devicePixelRatioOf(u);
    for (const r of regions) {
      for (const v of [r.from, r.to]) {
        if (!Number.isFinite(v)) continue;
        const y = yPix(v);
        if (y < top || y > bottom) continue;
        ctx.strokeStyle = r.level === "critical" ? theme.lineCritical : theme.lineWarn;
        ctx.beginPath();
        ctx.moveTo(bbox.left, Math.round(y) + 0.5);
        ctx.lineTo(bbox.left + bbox.width, Math.round(y) + 0.5);
        ctx.stroke();
      }
    }
    ctx.restore();
  };
}

/** uPlot's own device pixel ratio: reading the canvas' CSS size here would force a layout per draw. */
function devicePixelRatioOf(_u: uPlot): number {
  return UPlot?.pxRatio || 1;
}

function readoutHook(spec: ChartSpec, readout: HTMLElement): (u: uPlot) => void {
  return (u: uPlot) => {
    const idx = u.cursor.idx;
    readout.replaceChildren();
    if (idx === null || idx === undefined) return;
    const doc = readout.ownerDocument;
    readout.append(doc.createTextNode(xLabel(spec, u.data[0][idx])));
    spec.runs.forEach((r, i) => {
      const smooth = u.data[2 + 2 * i][idx];
      const raw = u.data[1 + 2 * i][idx];
      if (smooth === undefined && raw === undefined) return;
      const item = doc.createElement("span");
      item.className = "readout-item";
      const sw = doc.createElement("span");
      sw.className = "swatch";
      sw.style.background = r.color;
      item.append(sw, doc.createTextNode(`${r.run}: ${formatNumber(smooth)} (raw ${formatNumber(raw)})`));
      readout.append(item);
    });
  };
}

function xLabel(spec: ChartSpec, x: number): string {
  if (spec.align) return `${formatPercent(x)} of run`;
  if (spec.xAxis === "relative") return `${formatDuration(x)} since start`;
  if (spec.xAxis === "wall") return new Date(x * 1000).toLocaleString();
  return `step ${formatStep(x)}`;
}

function xTick(spec: ChartSpec): ((v: number) => string) | null {
  if (spec.align) return formatPercent;
  if (spec.xAxis === "relative") return formatDuration;
  if (spec.xAxis === "wall") return null; // uPlot's date ticks
  return formatStep;
}

/** Mark the chart element while the x axis is zoomed in (`data-zoomed`): a DOM write, no layout read. */
function zoomHook(el: HTMLElement): (u: uPlot, key: string) => void {
  return (u, key) => {
    if (key !== "x") return;
    const xs = u.data[0];
    const { min, max } = u.scales.x;
    const zoomed = xs.length > 0 && min != null && max != null && (min > xs[0] || max < xs[xs.length - 1]);
    if ((el.dataset.zoomed === "1") !== zoomed) el.dataset.zoomed = zoomed ? "1" : "0";
  };
}

function buildOptions(spec: ChartSpec, theme: ChartTheme, width: number, readout: HTMLElement, el: HTMLElement): uPlot.Options {
  const axis = (size?: number): uPlot.Axis => ({
    stroke: theme.axis,
    grid: { stroke: theme.grid, width: 1 },
    ticks: { stroke: theme.grid, width: 1 },
    font: "11px system-ui, sans-serif",
    ...(size ? { size } : {}),
  });
  const series: uPlot.Series[] = [{ label: spec.align ? "progress" : (spec.xAxis ?? "step") }];
  const tick = xTick(spec);
  const wallClock = spec.xAxis === "wall" && !spec.align;
  for (const r of spec.runs) {
    series.push({ label: `${r.run} (raw)`, stroke: withAlpha(r.color, 0.28), width: 1, points: { show: false } });
    series.push({ label: r.run, stroke: r.color, width: 1.75 });
  }
  return {
    width,
    height: CHART_HEIGHT,
    legend: { show: false },
    cursor: { drag: { x: true, y: false, setScale: true } },
    scales: {
      x: { time: wallClock },
      y: spec.logScale ? { distr: 3, log: 10 } : { auto: true },
    },
    axes: [
      // Log axes pass null for unlabelled minor splits.
      tick ? { ...axis(36), values: (_u, splits) => splits.map((v) => (v == null ? "" : tick(v))) } : axis(36),
      { ...axis(56), values: (_u, splits) => splits.map((v) => (v == null ? "" : formatNumber(v))) },
    ],
    series,
    hooks: { drawAxes: [bandsHook(spec, theme)], setCursor: [readoutHook(spec, readout)], setScale: [zoomHook(el)] },
  };
}

const sameSeries = (a: ChartSpec, b: ChartSpec): boolean =>
  a.runs.length === b.runs.length && a.runs.every((r, i) => r.run === b.runs[i].run && r.color === b.runs[i].color);
const sameThresholds = (a: ChartSpec, b: ChartSpec): boolean =>
  JSON.stringify(a.thresholds) === JSON.stringify(b.thresholds);
const sameShape = (a: ChartSpec, b: ChartSpec): boolean =>
  sameThresholds(a, b) &&
  a.logScale === b.logScale && (a.xAxis ?? "step") === (b.xAxis ?? "step") && !!a.align === !!b.align && sameSeries(a, b);

/**
 * Draw `spec` into `el` (a `div.chart`) at `width` CSS pixels and set `el.dataset.points`. The
 * width comes from the caller (an IntersectionObserver entry), and later widths from a
 * ResizeObserver's content box: nothing here reads layout.
 */
export function createChart(el: HTMLElement, spec: ChartSpec, theme: ChartTheme = DEFAULT_THEME, width: number = FALLBACK_WIDTH): ChartHandle {
  const doc = el.ownerDocument;
  const build = (s: ChartSpec): ChartData => buildChartData(s.runs, s.smoothing, s.logScale, s.xAxis ?? "step", !!s.align);
  let current = build(spec);
  el.dataset.points = String(current.points);
  el.dataset.xAxis = spec.align ? "aligned" : (spec.xAxis ?? "step");
  el.replaceChildren();

  const note = (text: string): ChartHandle => {
    const p = doc.createElement("p");
    p.className = "chart-note";
    p.textContent = text;
    el.append(p);
    return { el, points: current.points, setSmoothing() {}, update: () => false, destroy() {} };
  };
  if (current.points === 0) {
    return note(spec.logScale ? "No positive finite values to draw on a log scale." : "No finite values to draw yet.");
  }
  if (!canvasSupported(doc)) return note("Charts need a canvas-capable browser.");
  if (!UPlot) return note("Chart library not loaded.");

  const plotHolder = doc.createElement("div");
  plotHolder.className = "plot";
  const readout = doc.createElement("div");
  readout.className = "readout";
  el.append(plotHolder, readout);

  let lastWidth = Math.max(MIN_WIDTH, Math.floor(width) || FALLBACK_WIDTH);
  let plot: uPlot | null = new UPlot(buildOptions(spec, theme, lastWidth, readout, el), current.data, plotHolder);

  let observer: ResizeObserver | null = null;
  if (typeof ResizeObserver !== "undefined") {
    observer = new ResizeObserver((entries) => {
      const box = entries[entries.length - 1]?.contentRect;
      const w = box ? Math.max(MIN_WIDTH, Math.floor(box.width)) : 0;
      if (plot && w && Math.abs(w - lastWidth) >= 2) {
        lastWidth = w;
        plot.setSize({ width: w, height: CHART_HEIGHT });
      }
    });
    observer.observe(el);
  }

  const xRange = (d: uPlot.AlignedData): [number, number] => {
    const xs = d[0];
    return xs.length ? [xs[0], xs[xs.length - 1]] : [0, 0];
  };

  return {
    el,
    get points() {
      return current.points;
    },
    setSmoothing(w: number) {
      if (!plot || w === spec.smoothing) return;
      spec = { ...spec, smoothing: w };
      current = build(spec);
      el.dataset.points = String(current.points);
      plot.setData(current.data, false);
    },
    update(next: ChartSpec) {
      // A new series set or scale kind needs a new plot: the caller recreates it.
      if (!plot || !sameShape(spec, next) || current.points === 0) return false;
      const [lo, hi] = xRange(current.data);
      const sx = plot.scales.x;
      const zoomed = sx.min != null && sx.max != null && (sx.min > lo || sx.max < hi);
      spec = next;
      current = build(spec);
      el.dataset.points = String(current.points);
      if (current.points === 0) return false;
      if (zoomed) {
        // Keep the user's zoom (and the cursor) across a live update.
        const { min, max } = sx;
        plot.setData(current.data, false);
        plot.setScale("x", { min: min!, max: max! });
      } else {
        plot.setData(current.data, true);
      }
      return true;
    },
    destroy() {
      observer?.disconnect();
      observer = null;
      plot?.destroy();
      plot = null;
    },
  };
}
