/**
 * One uPlot line chart per metric tag, overlaying several runs like TensorBoard's scalar cards:
 * for each run a faint raw line and a solid smoothed line in the run's stable colour, over
 * threshold bands (warn region amber, critical region red) painted in a `drawAxes` hook, i.e.
 * above the grid and below the series. The y scale can be logarithmic.
 */
import type uPlot from "uplot";

import { withAlpha } from "./colors";
import { formatNumber, formatStep } from "./format";
import { classicSmoothing } from "./smoothing";
import type { Thresholds } from "./types";

export interface ChartRun {
  run: string;
  color: string;
  steps: readonly number[];
  values: readonly number[];
}

export interface ChartSpec {
  tag: string;
  runs: readonly ChartRun[];
  thresholds: Thresholds;
  smoothing: number;
  logScale: boolean;
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
const FALLBACK_WIDTH = 480;
const MIN_WIDTH = 200;

type Cell = number | null | undefined;

export interface ChartData {
  /** [steps, raw run 0, smoothed run 0, raw run 1, smoothed run 1, ...] */
  data: uPlot.AlignedData;
  /** Finite raw points drawn (positive ones only on a log scale). */
  points: number;
}

/**
 * Align the runs on the union of their steps. An absent step is `undefined` (uPlot connects
 * across it); a non-finite value, or a non-positive one on a log scale, is `null` (a gap).
 */
export function buildChartData(runs: readonly ChartRun[], smoothing: number, logScale: boolean): ChartData {
  const stepSet = new Set<number>();
  for (const r of runs) for (const s of r.steps) if (Number.isFinite(s)) stepSet.add(s);
  const xs = Array.from(stepSet).sort((a, b) => a - b);
  const index = new Map<number, number>();
  xs.forEach((x, i) => index.set(x, i));
  const drawable = (y: number): boolean => Number.isFinite(y) && (!logScale || y > 0);

  const columns: Cell[][] = [];
  let points = 0;
  for (const r of runs) {
    const raw = new Array<Cell>(xs.length).fill(undefined);
    const smooth = new Array<Cell>(xs.length).fill(undefined);
    const n = Math.min(r.steps.length, r.values.length);
    const smoothed = classicSmoothing(r.values.slice(0, n), smoothing);
    for (let i = 0; i < n; i++) {
      const idx = index.get(r.steps[i]);
      if (idx === undefined) continue;
      const y = r.values[i];
      const counted = typeof raw[idx] === "number";
      raw[idx] = drawable(y) ? y : null;
      if (drawable(y) && !counted) points++;
      if (!drawable(y) && counted) points--;
      smooth[idx] = drawable(smoothed[i]) ? smoothed[i] : null;
    }
    columns.push(raw, smooth);
  }
  return { data: [xs, ...columns] as uPlot.AlignedData, points };
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
  setSmoothing(w: number): void;
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

function devicePixelRatioOf(u: uPlot): number {
  const canvas = u.ctx.canvas;
  return canvas.clientWidth > 0 ? canvas.width / canvas.clientWidth : 1;
}

function readoutHook(spec: ChartSpec, readout: HTMLElement): (u: uPlot) => void {
  return (u: uPlot) => {
    const idx = u.cursor.idx;
    readout.replaceChildren();
    if (idx === null || idx === undefined) return;
    const doc = readout.ownerDocument;
    const step = u.data[0][idx];
    readout.append(doc.createTextNode(`step ${formatStep(step)}`));
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

function buildOptions(spec: ChartSpec, theme: ChartTheme, width: number, readout: HTMLElement): uPlot.Options {
  const axis = (size?: number): uPlot.Axis => ({
    stroke: theme.axis,
    grid: { stroke: theme.grid, width: 1 },
    ticks: { stroke: theme.grid, width: 1 },
    font: "11px system-ui, sans-serif",
    ...(size ? { size } : {}),
  });
  const series: uPlot.Series[] = [{ label: "step" }];
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
      x: { time: false },
      y: spec.logScale ? { distr: 3, log: 10 } : { auto: true },
    },
    axes: [
      // Log axes pass null for unlabelled minor splits.
      { ...axis(36), values: (_u, splits) => splits.map((v) => (v == null ? "" : formatStep(v))) },
      { ...axis(56), values: (_u, splits) => splits.map((v) => (v == null ? "" : formatNumber(v))) },
    ],
    series,
    hooks: { drawAxes: [bandsHook(spec, theme)], setCursor: [readoutHook(spec, readout)] },
  };
}

/**
 * Draw `spec` into `el` (a `div.chart`) and set `el.dataset.points`. `el` should be in the
 * document so its width can be measured; the chart then follows the element's width.
 */
export function createChart(el: HTMLElement, spec: ChartSpec, theme: ChartTheme = DEFAULT_THEME): ChartHandle {
  const doc = el.ownerDocument;
  let current = buildChartData(spec.runs, spec.smoothing, spec.logScale);
  el.dataset.points = String(current.points);
  el.replaceChildren();

  const note = (text: string): ChartHandle => {
    const p = doc.createElement("p");
    p.className = "chart-note";
    p.textContent = text;
    el.append(p);
    return { el, points: current.points, setSmoothing() {}, destroy() {} };
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

  const width = Math.max(MIN_WIDTH, Math.floor(el.clientWidth) || FALLBACK_WIDTH);
  let plot: uPlot | null = new UPlot(buildOptions(spec, theme, width, readout), current.data, plotHolder);

  let observer: ResizeObserver | null = null;
  if (typeof ResizeObserver !== "undefined") {
    let lastWidth = width;
    observer = new ResizeObserver(() => {
      const w = Math.max(MIN_WIDTH, Math.floor(el.clientWidth));
      if (plot && w && Math.abs(w - lastWidth) >= 2) {
        lastWidth = w;
        plot.setSize({ width: w, height: CHART_HEIGHT });
      }
    });
    observer.observe(el);
  }

  return {
    el,
    get points() {
      return current.points;
    },
    setSmoothing(w: number) {
      if (!plot) return;
      current = buildChartData(spec.runs, w, spec.logScale);
      el.dataset.points = String(current.points);
      plot.setData(current.data, false);
    },
    destroy() {
      observer?.disconnect();
      observer = null;
      plot?.destroy();
      plot = null;
    },
  };
}
