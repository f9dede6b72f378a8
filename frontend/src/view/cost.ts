/**
 * The Cost section: what each metric costs the training thread, one collapsible block per run.
 *
 * A block is closed by default (cost is a secondary concern) and open when a metric went over the
 * Monitor's budget or hung, since then it is the reason the training is slow. A user's own
 * open/close choice per run survives re-renders (polls, reloads).
 */
import { formatNumber, formatStep } from "../format";
import type { CostRow, RunCost } from "../types";
import { h } from "./dom";

export interface RunCostEntry {
  run: string;
  cost: RunCost;
}

/** A metric blocking `Monitor.step` right now (its watchdog report says it has not returned). */
export const hungNow = (row: CostRow): boolean => row.hung !== null && !row.hung.returned;

/** Rows the tab highlights: over the budget, or hung (now or once). */
export const flagged = (row: CostRow): boolean => row.over_budget !== null || row.hung !== null;

/** "12.3 ms", "0.0412 ms", "—". */
export function formatMs(ms: number | null): string {
  return ms === null || !Number.isFinite(ms) ? "—" : `${formatNumber(ms)} ms`;
}

/** "87%" / "<1%" / "—". */
export function formatShare(share: number | null): string {
  if (share === null || !Number.isFinite(share)) return "—";
  const pct = share * 100;
  return pct > 0 && pct < 1 ? "<1%" : `${Math.round(pct)}%`;
}

/** Why a row is highlighted, in words ("" when it is not). */
export function costNote(row: CostRow, budgetMs: number | null): string {
  const parts: string[] = [];
  if (row.hung) {
    const secs = row.hung.seconds === null ? "" : ` ${formatNumber(row.hung.seconds)} s`;
    parts.push(
      row.hung.returned
        ? `hung${secs} at step ${formatStep(row.hung.step)}, then returned`
        : `blocking training at step ${formatStep(row.hung.step)} (inside it for over${secs})`,
    );
  }
  if (row.over_budget) {
    const budget = budgetMs === null ? "" : ` of ${formatMs(budgetMs)}`;
    parts.push(`over the budget${budget}: ${formatMs(row.over_budget.ms)} at step ${formatStep(row.over_budget.step)}`);
  }
  return parts.join("; ");
}

function table(doc: Document, cost: RunCost): HTMLTableElement {
  const body = h(doc, "tbody");
  for (const row of cost.rows) {
    const cls = ["cost-row"];
    if (row.over_budget) cls.push("over-budget");
    if (row.hung) cls.push(hungNow(row) ? "hung hung-now" : "hung");
    const share = row.share === null || !Number.isFinite(row.share) ? 0 : Math.max(0, Math.min(1, row.share));
    const bar = h(doc, "span", { class: "share-bar" });
    bar.style.width = `${(share * 100).toFixed(1)}%`; // CSSOM, not a style attribute (CSP-safe)
    body.append(
      h(
        doc,
        "tr",
        { class: cls.join(" "), data: { metric: row.metric } },
        h(doc, "th", { class: "metric", attrs: { scope: "row" }, ...(row.plugin ? { title: `plugin ${row.plugin}` } : {}) }, h(doc, "code", null, row.metric)),
        h(doc, "td", { class: "ms num" }, formatMs(row.mean_ms)),
        h(
          doc,
          "td",
          { class: "share num" },
          bar,
          h(doc, "span", { class: "share-text" }, formatShare(row.share)),
        ),
        h(doc, "td", { class: "note" }, costNote(row, cost.budget_ms)),
      ),
    );
  }
  return h(
    doc,
    "table",
    { class: "cost" },
    h(
      doc,
      "thead",
      null,
      h(
        doc,
        "tr",
        null,
        h(doc, "th", { attrs: { scope: "col" } }, "metric"),
        h(doc, "th", { class: "num", attrs: { scope: "col" }, title: "mean training-thread time per call" }, "ms per call"),
        h(doc, "th", { class: "num", attrs: { scope: "col" }, title: "share of one due call of every metric" }, "share"),
        h(doc, "th", { attrs: { scope: "col" } }, ""),
      ),
    ),
    body,
  );
}

/** The one-line summary of a run's cost: "exp · 23.4 ms per due call of every metric · 1 over budget". */
export function costSummaryText(cost: RunCost): string {
  const parts = [`${formatMs(cost.total_ms)} per due call of every metric`];
  const over = cost.rows.filter((r) => r.over_budget !== null).length;
  const hung = cost.rows.filter(hungNow).length;
  if (hung) parts.push(`${hung} blocking training now`);
  if (over) parts.push(`${over} over budget`);
  return parts.join(" · ");
}

export class CostView {
  readonly el: HTMLElement;
  private readonly host: HTMLElement;
  /** the user's own open/closed choice per run */
  private readonly choices = new Map<string, boolean>();

  constructor(private readonly doc: Document) {
    const title = h(doc, "h2", null, "Cost", h(doc, "span", { class: "muted small" }, "mean training-thread time per metric call"));
    this.host = h(doc, "div", { class: "cost-host" });
    this.el = h(doc, "section", { id: "cost", class: "cost-wrap" }, title, this.host);
  }

  render(entries: readonly RunCostEntry[]): void {
    const doc = this.doc;
    const shown = entries.filter((e) => e.cost.rows.length || e.cost.problem);
    if (!shown.length) {
      this.host.replaceChildren(h(doc, "p", { class: "none muted" }, "No cost data in the charted runs (a metricreg Monitor writes it)."));
      return;
    }
    this.host.replaceChildren(
      ...shown.map(({ run, cost }) => {
        const alarming = cost.rows.some(flagged);
        const summary = h(
          doc,
          "summary",
          null,
          h(doc, "span", { class: "run-name" }, run),
          h(doc, "span", { class: "cost-summary muted" }, ` · ${costSummaryText(cost)}`),
        );
        const block = h(
          doc,
          "details",
          { class: `cost-run${alarming ? " cost-alarm" : ""}`, data: { run } },
          summary,
          cost.problem ? h(doc, "p", { class: "cost-problem small" }, cost.problem) : null,
          cost.rows.length ? table(doc, cost) : null,
        );
        block.open = this.choices.get(run) ?? alarming;
        // A click on the summary (mouse or keyboard) is the user's choice; programmatic opens are not.
        summary.addEventListener("click", () => this.choices.set(run, !block.open));
        return block;
      }),
    );
  }
}
