/** The overview table: one row per run, built from ./runs alone (no per-run requests). */
import { formatStep } from "../format";
import type { CategoryInfo, RunSummary } from "../types";
import { badge, h } from "./dom";

export interface OverviewOptions {
  /** runs that currently have charts (marked on their rows) */
  charted?: ReadonlySet<string>;
  /** called when a run name is clicked (the app filters to that run) */
  onRunClick?: (run: string) => void;
}

export function renderOverview(
  doc: Document,
  runs: readonly RunSummary[],
  categories: readonly CategoryInfo[],
  opts: OverviewOptions = {},
): HTMLTableElement {
  const headRow = h(
    doc,
    "tr",
    null,
    h(doc, "th", { attrs: { scope: "col" } }, "Run"),
    h(doc, "th", { attrs: { scope: "col" } }, "Status"),
    ...categories.map((c) => h(doc, "th", { attrs: { scope: "col" }, data: { category: c.name }, title: c.name }, c.title)),
    h(doc, "th", { attrs: { scope: "col" } }, "Worst alert"),
    h(doc, "th", { attrs: { scope: "col" }, class: "num" }, "Alerts"),
    h(doc, "th", { attrs: { scope: "col" }, class: "num" }, "Errors"),
    h(doc, "th", { attrs: { scope: "col" }, class: "num" }, "Last step"),
  );

  const body = h(doc, "tbody");
  const frag = doc.createDocumentFragment();
  for (const r of runs) {
    const charted = opts.charted ? opts.charted.has(r.run) : true;
    let nameCell: Node;
    if (opts.onRunClick) {
      const btn = h(doc, "button", { class: "link run-name", attrs: { type: "button" }, title: "Chart only this run" }, r.run);
      const onClick = opts.onRunClick;
      btn.addEventListener("click", () => onClick(r.run));
      nameCell = btn;
    } else {
      nameCell = h(doc, "span", { class: "run-name" }, r.run);
    }
    const worst = r.worst_alert;
    const row = h(
      doc,
      "tr",
      { class: charted ? "charted" : "not-charted", data: { run: r.run, charted: charted ? "1" : "0" } },
      h(doc, "th", { class: "run", attrs: { scope: "row" } }, nameCell, r.has_manifest ? null : h(doc, "span", { class: "muted small" }, " (no manifest)")),
      h(doc, "td", { class: "status" }, badge(doc, r.status)),
      ...categories.map((c) => {
        const s = r.categories[c.name] ?? "none";
        return h(doc, "td", { class: "category", data: { category: c.name } }, badge(doc, s));
      }),
      h(doc, "td", { class: "worst-alert" }, worst ? worst.message || `${worst.tag}: ${worst.level}` : h(doc, "span", { class: "muted" }, "—")),
      h(doc, "td", { class: "num alert-count" }, String(r.alert_count)),
      h(doc, "td", { class: "num error-count" }, String(r.error_count)),
      h(doc, "td", { class: "num last-step" }, formatStep(r.last_step)),
    );
    frag.appendChild(row);
  }
  body.appendChild(frag);
  return h(doc, "table", { id: "overview", class: "overview" }, h(doc, "thead", null, headRow), body);
}
