/** The metric-error list: metrics that raised while computing (training went on). */
import { formatStep } from "../format";
import type { MetricError } from "../types";
import { h } from "./dom";

export function renderErrors(doc: Document, errors: readonly MetricError[]): HTMLUListElement {
  const list = h(doc, "ul", { id: "errors", class: "errors" });
  if (!errors.length) {
    list.append(h(doc, "li", { class: "none muted" }, "No metric errors in the charted runs."));
    return list;
  }
  const sorted = [...errors].sort(
    (a, b) => Number(b.disabled) - Number(a.disabled) || b.count - a.count || (a.run < b.run ? -1 : a.run > b.run ? 1 : 0),
  );
  for (const e of sorted) {
    const steps =
      e.first_step !== null && e.last_step !== null && e.first_step !== e.last_step
        ? `steps ${formatStep(e.first_step)}–${formatStep(e.last_step)}`
        : e.last_step !== null
          ? `step ${formatStep(e.last_step)}`
          : "";
    list.append(
      h(
        doc,
        "li",
        { class: `error${e.disabled ? " disabled" : ""}`, data: { run: e.run, metric: e.metric } },
        h(
          doc,
          "div",
          { class: "error-head" },
          h(doc, "code", { class: "metric" }, e.metric),
          " · plugin ",
          h(doc, "code", { class: "plugin" }, e.plugin || "?"),
          " · run ",
          h(doc, "span", { class: "run-name" }, e.run),
          ` · ${e.count} error${e.count === 1 ? "" : "s"}`,
          e.consecutive && e.consecutive !== e.count ? ` (${e.consecutive} in a row)` : "",
          steps ? ` · ${steps}` : "",
          " ",
          e.disabled ? h(doc, "span", { class: "badge badge-critical" }, "disabled") : h(doc, "span", { class: "badge badge-none" }, "enabled"),
        ),
        e.last_message ? h(doc, "pre", { class: "message" }, e.last_message) : null,
      ),
    );
  }
  return list;
}
