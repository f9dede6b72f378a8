/**
 * One collapsible section per category, in display order; in each, one card per metric tag with a
 * chart overlaying every charted run, failing cards first. The views are kept between renders
 * (a card is found again by category and tag): a live update refreshes text and hands the chart
 * new data in place, so zoom, scroll position, hover and collapsed sections survive it. Charts
 * are drawn by the ChartScheduler when their card comes into view.
 */
import type { ChartSpec, XAxis } from "../chart";
import { chartCsv, chartJson, fileName, saveText, type ChartSeries } from "../download";
import { formatNumber, formatStep, severity, thresholdParts, worstStatus } from "../format";
import type { ChartScheduler } from "../lazy";
import { scalarsUrl, timeSeriesUrl } from "../links";
import type { CategoryInfo, RunDetail, RunSummary, Status } from "../types";
import { badge, h } from "./dom";

export interface SectionsInput {
  /** categories in display order */
  categories: readonly CategoryInfo[];
  /** charted runs, in order */
  runs: readonly string[];
  details: ReadonlyMap<string, RunDetail>;
  summaries: ReadonlyMap<string, RunSummary>;
  colors: ReadonlyMap<string, string>;
  smoothing: number;
  logScale: boolean;
  xAxis: XAxis;
  align: boolean;
  /** TensorBoard's root URL, for the links to Time Series / Scalars (null: no links) */
  tbRoot: string | null;
}

export interface TagGroup {
  tag: string;
  series: ChartSeries[];
  status: Status;
}

export function groupByTag(category: string, runs: readonly string[], details: ReadonlyMap<string, RunDetail>): TagGroup[] {
  const groups = new Map<string, TagGroup>();
  for (const run of runs) {
    const d = details.get(run);
    if (!d) continue;
    for (const c of d.categories) {
      if (c.name !== category) continue;
      for (const s of c.metrics) {
        let g = groups.get(s.tag);
        if (!g) {
          g = { tag: s.tag, series: [], status: "none" };
          groups.set(s.tag, g);
        }
        g.series.push({ run, series: s });
      }
    }
  }
  const list = Array.from(groups.values());
  for (const g of list) g.status = worstStatus(g.series.map((x) => x.series.status));
  // Failing cards first (critical, then warn), otherwise the backend's order.
  return list
    .map((g, i) => ({ g, i }))
    .sort((a, b) => severity(b.g.status) - severity(a.g.status) || a.i - b.i)
    .map(({ g }) => g);
}

function categoryStatus(input: SectionsInput, category: string): Status {
  const statuses: Status[] = [];
  for (const run of input.runs) {
    const d = input.details.get(run);
    const fromDetail = d?.categories.find((c) => c.name === category)?.status;
    const s = fromDetail ?? input.summaries.get(run)?.categories[category];
    if (s) statuses.push(s);
  }
  return worstStatus(statuses);
}

const failing = (s: Status): boolean => s === "warn" || s === "critical";

/** What a card's text shows (not its chart): equal keys, no DOM work on a live update. */
function textKey(group: TagGroup, input: SectionsInput): string {
  return JSON.stringify([
    input.tbRoot,
    group.status,
    group.series.map(({ run, series: s }) => [run, input.colors.get(run), s.status, s.last_step, s.last_value, s.title, s.description, s.remedy, s.thresholds]),
  ]);
}

/** Yield to the browser between slices of rendering work (a task per slice). */
export type Yield = () => Promise<void>;

class CardView {
  readonly el: HTMLElement;
  readonly chartEl: HTMLElement;
  private readonly top: HTMLElement;
  private readonly bottom: HTMLElement;
  private key = "";

  constructor(
    private readonly doc: Document,
    readonly tag: string,
  ) {
    this.chartEl = h(doc, "div", { class: "chart", data: { tag, points: "0" } });
    this.top = h(doc, "div", { class: "card-top" });
    this.bottom = h(doc, "div", { class: "card-bottom" });
    this.el = h(doc, "div", { class: "card", data: { tag } }, this.top, this.chartEl, this.bottom);
  }

  update(group: TagGroup, input: SectionsInput, charts: ChartScheduler): void {
    const doc = this.doc;
    const colorOf = (run: string): string => input.colors.get(run) ?? "#888888";
    const first = group.series[0].series;
    const withThresholds = group.series.find(({ series }) => thresholdParts(series.thresholds).length > 0)?.series ?? first;
    const status = group.status;
    const description = group.series.find(({ series }) => series.description)?.series.description ?? "";
    const remedy = group.series.find(({ series }) => series.remedy)?.series.remedy ?? "";

    const spec: ChartSpec = {
      tag: group.tag,
      runs: group.series.map(({ run, series }) => ({
        run,
        color: colorOf(run),
        steps: series.steps,
        values: series.values,
        wall_times: series.wall_times,
      })),
      thresholds: withThresholds.thresholds,
      smoothing: input.smoothing,
      logScale: input.logScale,
      xAxis: input.xAxis,
      align: input.align,
    };
    charts.set(this.chartEl, spec);
    const key = textKey(group, input);
    if (key === this.key) return;
    this.key = key;

    const parts = thresholdParts(withThresholds.thresholds);
    const thresholds = h(doc, "div", { class: "thresholds" });
    if (parts.length) for (const p of parts) thresholds.append(h(doc, "span", { class: `threshold threshold-${p.level}` }, p.text));
    else thresholds.append(h(doc, "span", { class: "muted" }, "no thresholds"));

    const legend = h(doc, "ul", { class: "legend" });
    for (const { run, series: s } of group.series) {
      const swatch = h(doc, "span", { class: "swatch" });
      swatch.style.background = colorOf(run);
      legend.append(
        h(
          doc,
          "li",
          { data: { run } },
          swatch,
          h(doc, "span", { class: "run-name" }, run),
          h(doc, "span", { class: "current" }, s.last_value === null ? "no value yet" : `current ${formatNumber(s.last_value)} @ step ${formatStep(s.last_step)}`),
          badge(doc, s.status),
        ),
      );
    }

    const items = group.series;
    const download = (kind: "csv" | "json"): void => {
      const w = input.smoothing;
      const text = kind === "csv" ? chartCsv(group.tag, items, w) : chartJson(group.tag, items, w);
      saveText(doc, `${fileName(group.tag)}.${kind}`, kind === "csv" ? "text/csv" : "application/json", text);
    };
    const csv = h(doc, "button", { class: "mini download-csv", attrs: { type: "button" }, title: "Download this chart's points as CSV" }, "CSV");
    const json = h(doc, "button", { class: "mini download-json", attrs: { type: "button" }, title: "Download this chart's points as JSON" }, "JSON");
    csv.addEventListener("click", () => download("csv"));
    json.addEventListener("click", () => download("json"));
    const onlyRun = items.length === 1 ? items[0].run : undefined;
    const links = input.tbRoot
      ? [
          h(doc, "a", { class: "mini tb-link timeseries-link", attrs: { href: timeSeriesUrl(input.tbRoot, group.tag, onlyRun), target: "_top" }, title: "This tag in Time Series" }, "Time Series"),
          h(doc, "a", { class: "mini tb-link scalars-link", attrs: { href: scalarsUrl(input.tbRoot, group.tag), target: "_top" }, title: "This tag in Scalars" }, "Scalars"),
        ]
      : [];

    this.el.className = `card card-${status}`;
    this.el.dataset.status = status;
    // The chart element stays in place between updates; only the text around it is rebuilt.
    this.top.replaceChildren(
      h(doc, "div", { class: "card-head" }, h(doc, "h3", { title: group.tag }, first.title || group.tag), badge(doc, status)),
      h(doc, "code", { class: "tag" }, group.tag),
      thresholds,
    );
    this.bottom.replaceChildren(h(doc, "div", { class: "card-actions" }, ...links, csv, json), legend);
    if (description) this.bottom.append(h(doc, "p", { class: "description" }, description));
    if (remedy && failing(status)) this.bottom.append(h(doc, "div", { class: "remedy" }, h(doc, "strong", null, "Remedy: "), remedy));
  }
}

class SectionView {
  readonly el: HTMLElement;
  readonly details: HTMLDetailsElement;
  private readonly summary: HTMLElement;
  readonly grid: HTMLElement;
  readonly cards = new Map<string, CardView>();
  private readonly empty: HTMLParagraphElement;

  constructor(
    private readonly doc: Document,
    readonly name: string,
  ) {
    this.summary = h(doc, "summary", { class: "section-head" });
    this.grid = h(doc, "div", { class: "cards" });
    this.empty = h(doc, "p", { class: "muted" }, "No series of this category in the charted runs.");
    this.details = h(doc, "details", { class: "section-body", attrs: { open: "" } }, this.summary, this.grid, this.empty);
    this.el = h(doc, "section", { class: "category", data: { category: name } }, this.details);
  }

  async update(cat: CategoryInfo, input: SectionsInput, charts: ChartScheduler, slice: Slicer): Promise<boolean> {
    const doc = this.doc;
    const groups = groupByTag(cat.name, input.runs, input.details);
    const status = categoryStatus(input, cat.name);
    const nFailing = groups.filter((g) => failing(g.status)).length;
    this.el.dataset.status = status;
    this.el.dataset.failing = nFailing ? "1" : "0";
    this.summary.replaceChildren(
      h(
        doc,
        "h2",
        null,
        h(doc, "span", { class: "section-title" }, cat.title),
        " ",
        badge(doc, status),
        cat.title !== cat.name ? h(doc, "span", { class: "muted small" }, ` ${cat.name}`) : null,
        h(doc, "span", { class: "muted small section-count" }, ` ${groups.length} chart${groups.length === 1 ? "" : "s"}${nFailing ? `, ${nFailing} failing` : ""}`),
      ),
    );
    const keep = new Set<string>();
    const ordered: HTMLElement[] = [];
    for (const g of groups) {
      keep.add(g.tag);
      let card = this.cards.get(g.tag);
      if (!card) {
        card = new CardView(doc, g.tag);
        this.cards.set(g.tag, card);
      }
      card.update(g, input, charts);
      ordered.push(card.el);
      if (!(await slice())) return false;
    }
    for (const [tag, card] of this.cards) {
      if (keep.has(tag)) continue;
      charts.remove(card.chartEl);
      this.cards.delete(tag);
    }
    // Re-order by moving nodes only where needed (a moved node keeps its chart).
    ordered.forEach((el, i) => {
      if (this.grid.children[i] !== el) this.grid.insertBefore(el, this.grid.children[i] ?? null);
    });
    while (this.grid.children.length > ordered.length) this.grid.lastElementChild!.remove();
    this.grid.hidden = !groups.length;
    this.empty.hidden = groups.length > 0;
    return true;
  }

  destroy(charts: ChartScheduler): void {
    for (const card of this.cards.values()) charts.remove(card.chartEl);
    this.cards.clear();
  }
}

/** Called after each card: yields when the slice's time budget is spent; false = superseded. */
type Slicer = () => Promise<boolean>;

/** Milliseconds of card rendering per task. */
const SLICE_MS = 30;

export class SectionsView {
  readonly el: HTMLElement;
  private readonly sections = new Map<string, SectionView>();
  private generation = 0;

  constructor(
    private readonly doc: Document,
    private readonly charts: ChartScheduler,
  ) {
    this.el = h(doc, "div", { id: "sections" });
  }

  /**
   * Bring the sections up to date, in slices of about SLICE_MS with `yieldTask` between them so
   * no task grows with the number of cards. A newer render supersedes this one (it stops; false).
   * Without `yieldTask` everything happens at once.
   */
  async render(input: SectionsInput, yieldTask?: Yield): Promise<boolean> {
    const generation = ++this.generation;
    const now = (): number => (typeof performance !== "undefined" ? performance.now() : Date.now());
    let t0 = now();
    const slice: Slicer = async () => {
      if (yieldTask && now() - t0 > SLICE_MS) {
        await yieldTask();
        t0 = now();
      }
      return generation === this.generation;
    };
    const keep = new Set<string>();
    const ordered: HTMLElement[] = [];
    for (const cat of input.categories) {
      keep.add(cat.name);
      let section = this.sections.get(cat.name);
      if (!section) {
        section = new SectionView(this.doc, cat.name);
        this.sections.set(cat.name, section);
        // New sections go in at once (in order), so a long first render fills the page top down.
        this.el.append(section.el);
      }
      if (!(await section.update(cat, input, this.charts, slice))) return false;
      ordered.push(section.el);
    }
    for (const [name, section] of this.sections) {
      if (keep.has(name)) continue;
      section.destroy(this.charts);
      this.sections.delete(name);
    }
    ordered.forEach((el, i) => {
      if (this.el.children[i] !== el) this.el.insertBefore(el, this.el.children[i] ?? null);
    });
    while (this.el.children.length > ordered.length) this.el.lastElementChild!.remove();
    return true;
  }

  /** Open the card's section and scroll to the card; returns it (null when not charted). */
  reveal(tag: string, category?: string): HTMLElement | null {
    const order = category && this.sections.has(category) ? [this.sections.get(category)!, ...this.sections.values()] : this.sections.values();
    for (const section of order) {
      const card = section.cards.get(tag);
      if (!card) continue;
      section.details.open = true;
      card.el.classList.remove("flash");
      void card.el.offsetWidth; // restart the highlight animation (a click, not a draw hook)
      card.el.classList.add("flash");
      card.el.scrollIntoView?.({ block: "center" });
      return card.el;
    }
    return null;
  }

  setSmoothing(w: number): void {
    this.charts.setSmoothing(w);
  }
}
