/** The toolbar: title, run filter, smoothing slider, log-scale toggle, refresh button, status. */
import { MAX_SMOOTHING } from "../smoothing";
import { h } from "./dom";

export interface HeaderHandles {
  header: HTMLElement;
  filter: HTMLInputElement;
  smoothing: HTMLInputElement;
  smoothingValue: HTMLElement;
  logScale: HTMLInputElement;
  refresh: HTMLButtonElement;
  status: HTMLElement;
}

export function renderHeader(doc: Document, initial: { smoothing: number; logScale: boolean; filter: string }): HeaderHandles {
  const filter = h(doc, "input", {
    id: "run-filter",
    attrs: { type: "search", placeholder: "Filter runs (regex)", "aria-label": "Filter runs", autocomplete: "off", spellcheck: "false" },
  });
  filter.value = initial.filter;

  const smoothing = h(doc, "input", {
    id: "smoothing",
    attrs: { type: "range", min: "0", max: String(MAX_SMOOTHING), step: "0.01", "aria-label": "Smoothing" },
  });
  smoothing.value = initial.smoothing.toFixed(2);
  const smoothingValue = h(doc, "output", { class: "smoothing-value", attrs: { for: "smoothing" } }, initial.smoothing.toFixed(2));

  const logScale = h(doc, "input", { id: "log-scale", attrs: { type: "checkbox" } });
  logScale.checked = initial.logScale;

  const refresh = h(doc, "button", { id: "refresh", attrs: { type: "button" }, title: "Reload health data" }, "Refresh");
  const status = h(doc, "span", { id: "load-status", class: "muted small", attrs: { role: "status", "aria-live": "polite" } });

  const header = h(
    doc,
    "header",
    { class: "toolbar" },
    h(doc, "h1", null, "Health"),
    h(doc, "label", { class: "control filter" }, filter),
    h(doc, "label", { class: "control", attrs: { for: "smoothing" } }, "Smoothing ", smoothing, " ", smoothingValue),
    h(doc, "label", { class: "control", attrs: { for: "log-scale" } }, logScale, " Log scale"),
    refresh,
    status,
  );
  return { header, filter, smoothing, smoothingValue, logScale, refresh, status };
}
