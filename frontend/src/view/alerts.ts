/**
 * The alerts panel at the top of the tab: one entry per series (run + tag; an escalation from warn
 * to critical is one alert at its highest level), active alerts ordered by severity then onset,
 * each with a button that jumps to its chart. The list is paged (PAGE_SIZE at a time), so a
 * logdir with thousands of alerts still renders a few dozen nodes.
 */
import { alertValueText, formatNumber, formatStep } from "../format";
import type { Alert } from "../types";
import { badge, h } from "./dom";

export const PAGE_SIZE = 25;
const LEVEL_RANK = { critical: 0, warn: 1, ok: 2 } as const;

const cmp = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/** One alert per run and tag: the active episode if any, else the latest; ties by level. */
export function onePerSeries(alerts: readonly Alert[]): Alert[] {
  const best = new Map<string, Alert>();
  for (const a of alerts) {
    const key = JSON.stringify([a.run, a.tag]);
    const b = best.get(key);
    const better = !b || (Number(a.active) - Number(b.active) || LEVEL_RANK[b.level] - LEVEL_RANK[a.level] || a.last_step - b.last_step) > 0;
    if (better) best.set(key, a);
  }
  return Array.from(best.values());
}

/** Critical before warn, then the earliest onset first (the likely root cause), then names. */
export function sortAlerts(alerts: readonly Alert[]): Alert[] {
  return [...alerts].sort(
    (a, b) =>
      Number(b.active) - Number(a.active) ||
      LEVEL_RANK[a.level] - LEVEL_RANK[b.level] ||
      a.first_step - b.first_step ||
      cmp(a.run, b.run) ||
      cmp(a.tag, b.tag),
  );
}

export interface AlertsOptions {
  /** jump to the alert's chart */
  onJump?: (a: Alert) => void;
  /** include resolved episodes (after the active ones) */
  showResolved?: boolean;
}

function alertItem(doc: Document, a: Alert, onJump?: (a: Alert) => void): HTMLLIElement {
  const metric = a.metric && a.metric !== a.tag ? h(doc, "span", { class: "muted" }, ` (${a.metric})`) : null;
  const escalated = a.level === "critical" && a.critical_step !== null && a.critical_step !== a.first_step;
  const jump = onJump ? h(doc, "button", { class: "mini jump", attrs: { type: "button" }, title: "Show this chart" }, "Go to chart") : null;
  jump?.addEventListener("click", () => onJump!(a));
  const fallback = `${alertValueText(a)}${a.onset_value !== null ? ` (onset value ${formatNumber(a.onset_value)})` : ""}`;
  return h(
    doc,
    "li",
    {
      class: `alert alert-${a.level} ${a.active ? "active" : "resolved"}`,
      data: { level: a.level, run: a.run, tag: a.tag, category: a.category, active: a.active ? "1" : "0", firstStep: String(a.first_step) },
    },
    h(
      doc,
      "div",
      { class: "alert-head" },
      badge(doc, a.level),
      " ",
      h(doc, "code", { class: "tag" }, a.tag),
      metric,
      " · run ",
      h(doc, "span", { class: "run-name" }, a.run),
      ` · ${a.active ? "since " : ""}step ${formatStep(a.first_step)}`,
      a.active ? "" : ` to ${formatStep(a.last_step)}`,
      escalated ? ` · critical since step ${formatStep(a.critical_step)}` : "",
      " ",
      h(doc, "span", { class: `state ${a.active ? "state-active" : "state-resolved"}` }, a.active ? "active" : "resolved"),
      " ",
      jump,
    ),
    h(doc, "div", { class: "message" }, a.message || fallback),
    a.remedy ? h(doc, "div", { class: "remedy small" }, h(doc, "strong", null, "Remedy: "), a.remedy) : null,
  );
}

export class AlertsPanel {
  readonly el: HTMLElement;
  readonly list: HTMLUListElement;
  private readonly title: HTMLElement;
  private readonly more: HTMLButtonElement;
  private readonly note: HTMLElement;
  private items: Alert[] = [];
  private shown = 0;
  private opts: AlertsOptions = {};

  constructor(private readonly doc: Document) {
    this.title = h(doc, "h2", { id: "alerts-title" }, "Active alerts");
    this.list = h(doc, "ul", { id: "alerts", class: "alerts" });
    this.more = h(doc, "button", { id: "alerts-more", class: "mini", attrs: { type: "button" } });
    this.more.addEventListener("click", () => this.showMore());
    this.note = h(doc, "p", { class: "muted small alerts-note" });
    this.el = h(doc, "section", { id: "alerts-panel", class: "alerts-panel", attrs: { "aria-labelledby": "alerts-title" } }, this.title, this.list, this.more, this.note);
  }

  /** Show the alerts of the charted runs; keeps how far the user paged. */
  render(alerts: readonly Alert[], opts: AlertsOptions): void {
    this.opts = opts;
    const perSeries = onePerSeries(alerts);
    const active = perSeries.filter((a) => a.active);
    const resolved = perSeries.length - active.length;
    this.items = sortAlerts(opts.showResolved ? perSeries : active);
    this.title.textContent = `Active alerts (${active.length})`;
    this.note.textContent = resolved ? `${resolved} resolved alert${resolved === 1 ? "" : "s"}${opts.showResolved ? " listed after the active ones" : " not listed"}.` : "";
    const n = Math.min(Math.max(this.shown, PAGE_SIZE), this.items.length);
    this.list.replaceChildren();
    this.shown = 0;
    if (!this.items.length) this.list.append(h(this.doc, "li", { class: "none muted" }, "No active alerts in the charted runs."));
    else this.appendRange(0, n);
    this.updateMore();
  }

  private appendRange(from: number, to: number): void {
    const frag = this.doc.createDocumentFragment();
    for (let i = from; i < to; i++) frag.append(alertItem(this.doc, this.items[i], this.opts.onJump));
    this.list.append(frag);
    this.shown = to;
  }

  private showMore(): void {
    this.appendRange(this.shown, Math.min(this.shown + PAGE_SIZE, this.items.length));
    this.updateMore();
  }

  private updateMore(): void {
    const left = this.items.length - this.shown;
    this.more.hidden = left <= 0;
    this.more.textContent = `Show ${Math.min(left, PAGE_SIZE)} more (${left} not shown)`;
  }
}
