/** The alert list: one item per alert episode, active and most severe first. */
import { alertStepsText, alertValueText, formatStep } from "../format";
import type { Alert } from "../types";
import { badge, h } from "./dom";

const LEVEL_RANK = { critical: 0, warn: 1, ok: 2 } as const;

export function sortAlerts(alerts: readonly Alert[]): Alert[] {
  return [...alerts].sort(
    (a, b) =>
      Number(b.active) - Number(a.active) ||
      LEVEL_RANK[a.level] - LEVEL_RANK[b.level] ||
      (a.run < b.run ? -1 : a.run > b.run ? 1 : 0) ||
      a.first_step - b.first_step ||
      (a.tag < b.tag ? -1 : a.tag > b.tag ? 1 : 0),
  );
}

export function renderAlerts(doc: Document, alerts: readonly Alert[]): HTMLUListElement {
  const list = h(doc, "ul", { id: "alerts", class: "alerts" });
  if (!alerts.length) {
    list.append(h(doc, "li", { class: "none muted" }, "No alerts in the charted runs."));
    return list;
  }
  for (const a of sortAlerts(alerts)) {
    const metric = a.metric && a.metric !== a.tag ? h(doc, "span", { class: "muted" }, ` (${a.metric})`) : null;
    list.append(
      h(
        doc,
        "li",
        { class: `alert alert-${a.level} ${a.active ? "active" : "resolved"}`, data: { level: a.level, run: a.run, tag: a.tag, active: a.active ? "1" : "0" } },
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
          ` · step ${formatStep(a.first_step)}`,
          a.active ? "" : ` to ${formatStep(a.last_step)}`,
          " · ",
          h(doc, "span", { class: "value" }, alertValueText(a)),
          " ",
          h(doc, "span", { class: `state ${a.active ? "state-active" : "state-resolved"}`, title: alertStepsText(a) }, a.active ? "active" : "resolved"),
        ),
        a.description ? h(doc, "div", { class: "description" }, a.description) : null,
        a.remedy ? h(doc, "div", { class: "remedy" }, h(doc, "strong", null, "Remedy: "), a.remedy) : null,
      ),
    );
  }
  return list;
}
