/** The toolbar: title, run filter, smoothing, log scale, x axis, alignment, only-failing, refresh, status. */
import { MAX_SMOOTHING } from "../smoothing";
import type { ViewState } from "../hashstate";
import { h } from "./dom";

export interface HeaderHandles {
  header: HTMLElement;
  filter: HTMLInputElement;
  smoothing: HTMLInputElement;
  smoothingValue: HTMLElement;
  logScale: HTMLInputElement;
  xAxis: HTMLSelectElement;
  align: HTMLInputElement;
  onlyFailing: HTMLInputElement;
  showResolved: HTMLInputElement;
  refresh: HTMLButtonElement;
  status: HTMLElement;
}

const X_LABELS = { step: "Step", relative: "Relative", wall: "Wall" } as const;

export function renderHeader(doc: Document, initial: ViewState): HeaderHandles {
  const filter = h(doc, "input", {
    id: "run-filter",
    attrs: { type: "search", placeholder: "Filter runs (regex)", "aria-label": "Filter runs", autocomplete: "off", spellcheck: "false" },
  });
  const smoothing = h(doc, "input", {
    id: "smoothing",
    attrs: { type: "range", min: "0", max: String(MAX_SMOOTHING), step: "0.01", "aria-label": "Smoothing" },
  });
  const smoothingValue = h(doc, "output", { class: "smoothing-value", attrs: { for: "smoothing" } });
  const logScale = h(doc, "input", { id: "log-scale", attrs: { type: "checkbox" } });
  const xAxis = h(doc, "select", { id: "x-axis", attrs: { "aria-label": "Horizontal axis" } });
  for (const [v, label] of Object.entries(X_LABELS)) xAxis.append(h(doc, "option", { attrs: { value: v } }, label));
  const align = h(doc, "input", { id: "align-runs", attrs: { type: "checkbox" } });
  const onlyFailing = h(doc, "input", { id: "only-failing", attrs: { type: "checkbox" } });
  const showResolved = h(doc, "input", { id: "show-resolved", attrs: { type: "checkbox" } });
  const refresh = h(doc, "button", { id: "refresh", attrs: { type: "button" }, title: "Reload health data" }, "Refresh");
  const status = h(doc, "span", { id: "load-status", class: "muted small", attrs: { role: "status", "aria-live": "polite" } });

  const header = h(
    doc,
    "header",
    { class: "toolbar" },
    h(doc, "h1", null, "Health"),
    h(doc, "label", { class: "control filter" }, filter),
    h(doc, "label", { class: "control", attrs: { for: "only-failing" } }, onlyFailing, " Only failing"),
    h(doc, "label", { class: "control", attrs: { for: "smoothing" } }, "Smoothing ", smoothing, " ", smoothingValue),
    h(doc, "label", { class: "control", attrs: { for: "log-scale" } }, logScale, " Log scale"),
    h(doc, "label", { class: "control", attrs: { for: "x-axis" } }, "X ", xAxis),
    h(doc, "label", { class: "control", attrs: { for: "align-runs" }, title: "Stretch every run to the full width (x as a fraction of the run)" }, align, " Align runs"),
    h(doc, "label", { class: "control", attrs: { for: "show-resolved" } }, showResolved, " Resolved alerts"),
    refresh,
    status,
  );
  const handles = { header, filter, smoothing, smoothingValue, logScale, xAxis, align, onlyFailing, showResolved, refresh, status };
  setControls(handles, initial);
  return handles;
}

/** Put a view state into the controls (start-up, or a hash change). */
export function setControls(c: HeaderHandles, s: ViewState): void {
  c.filter.value = s.filter;
  c.smoothing.value = s.smoothing.toFixed(2);
  c.smoothingValue.textContent = s.smoothing.toFixed(2);
  c.logScale.checked = s.logScale;
  c.xAxis.value = s.xAxis;
  c.align.checked = s.align;
  c.onlyFailing.checked = s.onlyFailing;
}
