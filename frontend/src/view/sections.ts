/**
 * One section per category, in display order; in each, one card per metric tag with a chart
 * overlaying every charted run. The charts themselves are created by the caller once the cards
 * are in the document (so they can be measured): this module returns them as pending specs.
 */
import type { ChartSpec } from "../chart";
import { assignColors, colorForRun } from "../colors";
import { formatNumber, formatStep, thresholdParts, worstStatus } from "../format";
import type { CategoryInfo, MetricSeries, RunDetail, RunSummary, Status } from "../types";
import { badge, h } from "./dom";

export interface SectionsInput {
  /** categories in display order */
  categories: readonly CategoryInfo[];
  /** charted runs, in order */
  runs: readonly string[];
  details: ReadonlyMap<string, RunDetail>;
  summaries: ReadonlyMap<string, RunSummary>;
  smoothing: number;
  logScale: boolean;
}

export interface PendingChart {
  el: HTMLElement;
  spec: ChartSpec;
}

export interface SectionsOutput {
  sections: HTMLElement[];
  charts: PendingChart[];
}

interface TagGroup {
  tag: string;
  series: { run: string; s: MetricSeries }[];
}

function groupByTag(category: string, runs: readonly string[], details: ReadonlyMap<string, RunDetail>): TagGroup[] {
  const groups = new Map<string, TagGroup>();
  for (const run of runs) {
    const d = details.get(run);
    if (!d) continue;
    for (const c of d.categories) {
      if (c.name !== category) continue;
      for (const s of c.metrics) {
        let g = groups.get(s.tag);
        if (!g) {
          g = { tag: s.tag, series: [] };
          groups.set(s.tag, g);
        }
        g.series.push({ run, s });
      }
    }
  }
  return Array.from(groups.values());
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

function renderCard(
  doc: Document,
  group: TagGroup,
  input: SectionsInput,
  charts: PendingChart[],
  colors: ReadonlyMap<string, string>,
): HTMLElement {
  const colorOf = (run: string): string => colors.get(run) ?? colorForRun(run);
  const first = group.series[0].s;
  const withThresholds = group.series.find(({ s }) => thresholdParts(s.thresholds).length > 0)?.s ?? first;
  const status = worstStatus(group.series.map(({ s }) => s.status));
  const description = group.series.find(({ s }) => s.description)?.s.description ?? "";
  const remedy = group.series.find(({ s }) => s.remedy)?.s.remedy ?? "";

  const chartEl = h(doc, "div", { class: "chart", data: { tag: group.tag, points: "0" } });
  charts.push({
    el: chartEl,
    spec: {
      tag: group.tag,
      runs: group.series.map(({ run, s }) => ({ run, color: colorOf(run), steps: s.steps, values: s.values })),
      thresholds: withThresholds.thresholds,
      smoothing: input.smoothing,
      logScale: input.logScale,
    },
  });

  const parts = thresholdParts(withThresholds.thresholds);
  const thresholds = h(doc, "div", { class: "thresholds" });
  if (parts.length) {
    for (const p of parts) thresholds.append(h(doc, "span", { class: `threshold threshold-${p.level}` }, p.text));
  } else {
    thresholds.append(h(doc, "span", { class: "muted" }, "no thresholds"));
  }

  const legend = h(doc, "ul", { class: "legend" });
  for (const { run, s } of group.series) {
    const swatch = h(doc, "span", { class: "swatch" });
    swatch.style.background = colorOf(run);
    legend.append(
      h(
        doc,
        "li",
        { data: { run } },
        swatch,
        h(doc, "span", { class: "run-name" }, run),
        h(
          doc,
          "span",
          { class: "current" },
          s.last_value === null ? "no value yet" : `current ${formatNumber(s.last_value)} @ step ${formatStep(s.last_step)}`,
        ),
        badge(doc, s.status),
      ),
    );
  }

  return h(
    doc,
    "div",
    { class: `card card-${status}`, data: { tag: group.tag } },
    h(doc, "div", { class: "card-head" }, h(doc, "h3", { title: group.tag }, first.title || group.tag), badge(doc, status)),
    h(doc, "code", { class: "tag" }, group.tag),
    thresholds,
    chartEl,
    legend,
    description ? h(doc, "p", { class: "description" }, description) : null,
    remedy && (status === "warn" || status === "critical")
      ? h(doc, "div", { class: "remedy" }, h(doc, "strong", null, "Remedy: "), remedy)
      : null,
  );
}

export function renderSections(doc: Document, input: SectionsInput): SectionsOutput {
  const charts: PendingChart[] = [];
  const sections: HTMLElement[] = [];
  const colors = assignColors(input.runs);
  for (const cat of input.categories) {
    const groups = groupByTag(cat.name, input.runs, input.details);
    const status = categoryStatus(input, cat.name);
    const grid = h(doc, "div", { class: "cards" });
    for (const g of groups) grid.append(renderCard(doc, g, input, charts, colors));
    sections.push(
      h(
        doc,
        "section",
        { class: "category", data: { category: cat.name } },
        h(
          doc,
          "h2",
          null,
          h(doc, "span", { class: "section-title" }, cat.title),
          " ",
          badge(doc, status),
          cat.title !== cat.name ? h(doc, "span", { class: "muted small" }, ` ${cat.name}`) : null,
        ),
        groups.length ? grid : h(doc, "p", { class: "muted" }, "No series of this category in the charted runs."),
      ),
    );
  }
  return { sections, charts };
}
