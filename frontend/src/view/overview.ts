/** The overview table: one row per run, built from ./runs alone (no per-run requests). */
import { formatStep } from "../format";
import type { CategoryInfo, RunSummary } from "../types";
import { badge, h } from "./dom";

export interface OverviewOptions {
  /** runs that currently have charts (marked on their rows) */
  charted?: ReadonlySet<string>;
  /** the selected run ("" for none) */
  selected?: string;
  /** called when a run name is clicked (the app selects / deselects that run) */
  onRunClick?: (run: string) => void;
  /** called by a row's CSV / JSON verdict button */
  onDownload?: (run: string, kind: "csv" | "json") => void;
}

const own = (o: object, k: string): boolean => Object.prototype.hasOwnProperty.call(o, k);

/** "failing" rows: warn, critical or unreadable (the "only failing" view keeps these). */
export function isFailing(r: RunSummary): boolean {
  return r.unreadable !== null || r.status === "warn" || r.status === "critical";
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
    ...categories.map((c) => h(doc, "th", { attrs: { scope: "col" }, class: "category", data: { category: c.name }, title: c.name }, c.title)),
    h(doc, "th", { attrs: { scope: "col" }, class: "worst-alert" }, "Worst alert"),
    h(doc, "th", { attrs: { scope: "col" }, class: "num" }, "Alerts"),
    h(doc, "th", { attrs: { scope: "col" }, class: "num" }, "Errors"),
    h(doc, "th", { attrs: { scope: "col" }, class: "num" }, "Last step"),
    h(doc, "th", { attrs: { scope: "col" }, class: "verdict-download" }, "Verdict"),
  );

  const body = h(doc, "tbody");
  const frag = doc.createDocumentFragment();
  for (const r of runs) {
    const charted = opts.charted ? opts.charted.has(r.run) : true;
    const selected = !!opts.selected && opts.selected === r.run;
    let nameCell: Node;
    if (opts.onRunClick) {
      const btn = h(
        doc,
        "button",
        { class: "link run-name", attrs: { type: "button", "aria-pressed": String(selected) }, title: selected ? "Show all runs again" : "Chart only this run" },
        r.run,
      );
      const onClick = opts.onRunClick;
      btn.addEventListener("click", () => onClick(r.run));
      nameCell = btn;
    } else {
      nameCell = h(doc, "span", { class: "run-name" }, r.run);
    }
    const worst = r.worst_alert;
    const statusCell = r.unreadable !== null ? h(doc, "span", { class: "badge badge-unreadable", title: r.unreadable }, "unreadable") : badge(doc, r.status);
    const worstCell = r.unreadable !== null
      ? h(doc, "span", { class: "unreadable-reason" }, r.unreadable)
      : worst
        ? worst.message || `${worst.tag}: ${worst.level}`
        : h(doc, "span", { class: "muted" }, "—");
    const downloads = opts.onDownload
      ? (["csv", "json"] as const).map((kind) => {
          const b = h(doc, "button", { class: `mini verdict-${kind}`, attrs: { type: "button" }, title: `Download this run's verdict as ${kind.toUpperCase()}` }, kind.toUpperCase());
          const onDownload = opts.onDownload!;
          b.addEventListener("click", () => onDownload(r.run, kind));
          return b;
        })
      : [];
    const classes = [charted ? "charted" : "not-charted", selected ? "selected" : "", isFailing(r) ? "failing" : ""].filter(Boolean).join(" ");
    const row = h(
      doc,
      "tr",
      { class: classes, data: { run: r.run, charted: charted ? "1" : "0", status: r.unreadable !== null ? "unreadable" : r.status } },
      h(doc, "th", { class: "run", attrs: { scope: "row" } }, nameCell, r.has_manifest ? null : h(doc, "span", { class: "muted small" }, " (no manifest)")),
      h(doc, "td", { class: "status" }, statusCell),
      ...categories.map((c) => {
        const s = own(r.categories, c.name) ? r.categories[c.name] : "none";
        return h(doc, "td", { class: "category", data: { category: c.name } }, badge(doc, s));
      }),
      h(doc, "td", { class: "worst-alert" }, worstCell),
      h(doc, "td", { class: "num alert-count" }, String(r.alert_count)),
      h(doc, "td", { class: "num error-count" }, String(r.error_count)),
      h(doc, "td", { class: "num last-step" }, formatStep(r.last_step)),
      h(doc, "td", { class: "verdict-download" }, ...downloads),
    );
    frag.appendChild(row);
  }
  body.appendChild(frag);
  return h(doc, "table", { id: "overview", class: "overview" }, h(doc, "thead", null, headRow), body);
}
