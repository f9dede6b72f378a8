/**
 * Styles: uPlot's stylesheet (bundled as text by esbuild) plus ours, injected in one <style>
 * element at render time (the plugin iframe's CSP allows inline styles but no CDN). Light and
 * dark themes via CSS variables: `data-theme` on the document element follows TensorBoard's own
 * dark-mode setting (theme.ts); without it, prefers-color-scheme.
 */
import uplotCss from "uplot/dist/uPlot.min.css";

import { DEFAULT_THEME, type ChartTheme } from "./chart";

export const STYLE_ID = "metricreg-health-style";

export const CSS = `
:root {
  --mr-bg: #ffffff; --mr-fg: #212121; --mr-muted: #616161; --mr-border: #e0e0e0;
  --mr-card: #fafafa; --mr-head: #f5f5f5; --mr-accent: #f57c00; --mr-code: #f0f0f0;
  --mr-ok: #2e7d32; --mr-ok-fg: #ffffff; --mr-warn: #ffb300; --mr-warn-fg: #212121;
  --mr-critical: #c62828; --mr-critical-fg: #ffffff; --mr-none: #9e9e9e; --mr-none-fg: #ffffff;
  --mr-axis: #616161; --mr-grid: rgba(0, 0, 0, 0.08);
  --mr-band-warn: rgba(255, 193, 7, 0.18); --mr-band-critical: rgba(244, 67, 54, 0.14);
  --mr-line-warn: rgba(255, 160, 0, 0.85); --mr-line-critical: rgba(229, 57, 53, 0.85);
  color-scheme: light dark;
}
@media (prefers-color-scheme: dark) {
  :root:not([data-theme="light"]) {
    --mr-bg: #202124; --mr-fg: #e8eaed; --mr-muted: #9aa0a6; --mr-border: #3c4043;
    --mr-card: #292a2d; --mr-head: #2d2e31; --mr-accent: #ffa726; --mr-code: #35363a;
    --mr-ok: #66bb6a; --mr-ok-fg: #102a12; --mr-warn: #ffca28; --mr-warn-fg: #212121;
    --mr-critical: #ef5350; --mr-critical-fg: #1f0a0a; --mr-none: #757575; --mr-none-fg: #ffffff;
    --mr-axis: #bdc1c6; --mr-grid: rgba(255, 255, 255, 0.1);
    --mr-band-warn: rgba(255, 202, 40, 0.16); --mr-band-critical: rgba(239, 83, 80, 0.18);
    --mr-line-warn: rgba(255, 202, 40, 0.85); --mr-line-critical: rgba(239, 83, 80, 0.9);
  }
}
:root[data-theme="dark"] {
  --mr-bg: #202124; --mr-fg: #e8eaed; --mr-muted: #9aa0a6; --mr-border: #3c4043;
  --mr-card: #292a2d; --mr-head: #2d2e31; --mr-accent: #ffa726; --mr-code: #35363a;
  --mr-ok: #66bb6a; --mr-ok-fg: #102a12; --mr-warn: #ffca28; --mr-warn-fg: #212121;
  --mr-critical: #ef5350; --mr-critical-fg: #1f0a0a; --mr-none: #757575; --mr-none-fg: #ffffff;
  --mr-axis: #bdc1c6; --mr-grid: rgba(255, 255, 255, 0.1);
  --mr-band-warn: rgba(255, 202, 40, 0.16); --mr-band-critical: rgba(239, 83, 80, 0.18);
  --mr-line-warn: rgba(255, 202, 40, 0.85); --mr-line-critical: rgba(239, 83, 80, 0.9);
  color-scheme: dark;
}
:root[data-theme="light"] { color-scheme: light; }
html, body { margin: 0; background: var(--mr-bg); color: var(--mr-fg); }
#metricreg-health { font: 13px/1.45 Roboto, system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--mr-fg);
  background: var(--mr-bg); padding: 0 16px 32px; min-height: 100vh; box-sizing: border-box; }
#metricreg-health *, #metricreg-health *::before, #metricreg-health *::after { box-sizing: inherit; }
#metricreg-health h1 { font-size: 18px; margin: 0 8px 0 0; font-weight: 500; }
#metricreg-health h2 { font-size: 15px; font-weight: 500; margin: 24px 0 8px; display: flex; align-items: center; gap: 8px; }
#metricreg-health h3 { font-size: 13px; font-weight: 500; margin: 0; overflow-wrap: anywhere; }
#metricreg-health code, #metricreg-health pre { font-family: "Roboto Mono", ui-monospace, Menlo, Consolas, monospace; font-size: 12px; }
#metricreg-health pre { background: var(--mr-code); padding: 8px 10px; border-radius: 4px; overflow-x: auto; white-space: pre-wrap; overflow-wrap: anywhere; }
#metricreg-health .muted { color: var(--mr-muted); }
#metricreg-health .small { font-size: 11px; }
.toolbar { position: sticky; top: 0; z-index: 5; display: flex; flex-wrap: wrap; align-items: center; gap: 8px 16px;
  padding: 10px 0; background: var(--mr-bg); border-bottom: 1px solid var(--mr-border); }
.toolbar .control { display: inline-flex; align-items: center; gap: 4px; white-space: nowrap; }
.toolbar input[type="search"] { width: 200px; max-width: 40vw; padding: 4px 8px; border: 1px solid var(--mr-border); border-radius: 4px;
  background: var(--mr-bg); color: var(--mr-fg); }
.toolbar input[type="range"] { width: 120px; accent-color: var(--mr-accent); }
.toolbar input[type="checkbox"] { accent-color: var(--mr-accent); }
.smoothing-value { display: inline-block; min-width: 2.5em; font-variant-numeric: tabular-nums; }
#metricreg-health button { font: inherit; cursor: pointer; }
#refresh { padding: 4px 12px; border: 1px solid var(--mr-border); border-radius: 4px; background: var(--mr-head); color: var(--mr-fg); }
#refresh:hover { border-color: var(--mr-accent); }
button.link { border: 0; background: none; padding: 0; color: inherit; text-align: left; text-decoration: underline dotted; overflow-wrap: break-word; }
#load-error { margin: 12px 0; padding: 8px 12px; border-radius: 4px; border: 1px solid var(--mr-critical); color: var(--mr-fg); }
#load-error[hidden] { display: none; }
.badge { display: inline-block; min-width: 52px; padding: 1px 6px; border-radius: 10px; font-size: 11px; font-weight: 500;
  text-align: center; text-transform: uppercase; letter-spacing: 0.03em; white-space: nowrap; }
.badge-ok { background: var(--mr-ok); color: var(--mr-ok-fg); }
.badge-warn { background: var(--mr-warn); color: var(--mr-warn-fg); }
.badge-critical { background: var(--mr-critical); color: var(--mr-critical-fg); }
.badge-none { background: var(--mr-none); color: var(--mr-none-fg); }
.badge-unreadable { background: transparent; color: var(--mr-critical); border: 1px solid var(--mr-critical); }
.table-wrap { overflow: auto; max-height: 60vh; border-bottom: 1px solid var(--mr-border); }
table.overview { border-collapse: collapse; width: 100%; }
table.overview th, table.overview td { padding: 4px 8px; border-bottom: 1px solid var(--mr-border); text-align: left; vertical-align: top; }
table.overview thead th { background: var(--mr-head); font-weight: 500; position: sticky; top: 0; z-index: 1; }
table.overview th.run { font-weight: 400; min-width: 8em; max-width: 280px; overflow-wrap: anywhere; }
table.overview th.category { max-width: 7em; overflow-wrap: anywhere; font-size: 12px; }
table.overview tr.selected th.run { box-shadow: inset 3px 0 0 var(--mr-accent); }
table.overview tr.selected button.run-name { font-weight: 600; }
table.overview td.verdict-download { white-space: nowrap; }
table.overview .num { text-align: right; font-variant-numeric: tabular-nums; }
table.overview .worst-alert { min-width: 16em; max-width: 480px; overflow-wrap: anywhere; }
table.overview tr.not-charted { opacity: 0.6; }
#selection-note { margin: 6px 0 0; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(min(420px, 100%), 1fr)); gap: 12px; }
.cards[hidden] { display: none; }
section.category > details > summary { cursor: pointer; list-style: none; }
section.category > details > summary::-webkit-details-marker { display: none; }
section.category > details > summary h2::before { content: "\\25BE"; display: inline-block; width: 1em; color: var(--mr-muted); }
section.category > details:not([open]) > summary h2::before { content: "\\25B8"; }
.only-failing .card[data-status="ok"], .only-failing .card[data-status="none"],
.only-failing section.category[data-failing="0"], .only-failing table.overview tbody tr:not(.failing) { display: none; }
.card.flash { animation: mr-flash 1.6s ease-out; }
@keyframes mr-flash { from { box-shadow: 0 0 0 3px var(--mr-accent); } to { box-shadow: 0 0 0 0 transparent; } }
.card-actions { display: flex; flex-wrap: wrap; gap: 4px 8px; margin: 2px 0 0; font-size: 11px; }
#metricreg-health .mini { font: inherit; font-size: 11px; padding: 0 6px; border: 1px solid var(--mr-border); border-radius: 3px;
  background: var(--mr-head); color: var(--mr-fg); text-decoration: none; cursor: pointer; line-height: 1.6; }
#metricreg-health .mini:hover { border-color: var(--mr-accent); }
.alerts-panel { margin-top: 12px; }
.alerts-panel ul.alerts { max-height: 40vh; overflow-y: auto; }
.alerts-panel #alerts-more { margin-top: 6px; }
.alerts-panel #alerts-more[hidden] { display: none; }
li.alert .message { margin-top: 2px; overflow-wrap: anywhere; }
.alerts-panel .remedy { max-height: 4.6em; overflow: auto; }
/* Narrow windows (1024 px): category columns become coloured dots under vertical headers, so the
   "Worst alert" column keeps a readable width. The badge text stays for screen readers/tests. */
@media (max-width: 1279px) {
  table.overview th.category { writing-mode: vertical-rl; transform: rotate(180deg); max-width: none; max-height: 9em;
    padding: 6px 4px; font-size: 11px; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; vertical-align: bottom; }
  table.overview td.category { text-align: center; padding: 4px 2px; }
  table.overview td.category .badge { min-width: 0; width: 14px; height: 14px; padding: 0; border-radius: 50%;
    font-size: 0; line-height: 0; vertical-align: middle; }
  table.overview th.run { max-width: 200px; }
}
.toolbar select { background: var(--mr-bg); color: var(--mr-fg); border: 1px solid var(--mr-border); border-radius: 4px; }
.card { background: var(--mr-card); border: 1px solid var(--mr-border); border-radius: 6px; padding: 10px 12px; min-width: 0; }
.card-warn { border-left: 3px solid var(--mr-warn); }
.card-critical { border-left: 3px solid var(--mr-critical); }
.card-head { display: flex; justify-content: space-between; align-items: center; gap: 8px; }
.card .tag { display: block; color: var(--mr-muted); margin: 2px 0 4px; overflow-wrap: anywhere; }
.thresholds { display: flex; flex-wrap: wrap; gap: 6px; font-size: 11px; margin-bottom: 4px; }
.threshold { padding: 0 6px; border-radius: 3px; }
.threshold-warn { background: var(--mr-band-warn); }
.threshold-critical { background: var(--mr-band-critical); }
.chart { min-height: 244px; width: 100%; }
.chart[data-points="0"] { min-height: 40px; }
.chart .chart-note { color: var(--mr-muted); margin: 12px 0; }
.readout { min-height: 1.5em; font-size: 11px; color: var(--mr-muted); display: flex; flex-wrap: wrap; gap: 2px 10px; }
.swatch { display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin-right: 4px; vertical-align: -1px; }
ul.legend { list-style: none; margin: 6px 0 0; padding: 0; font-size: 12px; max-height: 150px; overflow-y: auto; }
ul.legend li { display: flex; align-items: center; gap: 6px; padding: 1px 0; }
ul.legend .run-name { flex: 1 1 auto; overflow-wrap: anywhere; }
ul.legend .current { color: var(--mr-muted); font-variant-numeric: tabular-nums; white-space: nowrap; }
.description { margin: 6px 0 0; color: var(--mr-muted); overflow-wrap: anywhere; }
.remedy { overflow-wrap: anywhere; margin-top: 6px; padding: 6px 8px; border-radius: 4px; background: var(--mr-band-warn); }
ul.alerts, ul.errors { list-style: none; padding: 0; margin: 0; }
ul.alerts li, ul.errors li { padding: 6px 0; border-bottom: 1px solid var(--mr-border); overflow-wrap: anywhere; }
li.alert.resolved { opacity: 0.7; }
.state { font-size: 11px; padding: 0 6px; border-radius: 3px; border: 1px solid var(--mr-border); }
.state-active { border-color: var(--mr-critical); }
li.error pre.message { margin: 4px 0 0; }
details.cost-run { margin: 4px 0; }
details.cost-run > summary { cursor: pointer; padding: 2px 0; overflow-wrap: anywhere; }
details.cost-alarm > summary .run-name { font-weight: 500; }
table.cost { border-collapse: collapse; margin: 4px 0 8px 1em; font-size: 12px; max-width: 100%; }
table.cost th, table.cost td { padding: 2px 8px; border-bottom: 1px solid var(--mr-border); text-align: left; vertical-align: top; }
table.cost th.metric { font-weight: 400; overflow-wrap: anywhere; }
table.cost .num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
table.cost td.share { position: relative; min-width: 5em; }
table.cost .share-bar { position: absolute; left: 0; top: 3px; bottom: 3px; background: var(--mr-grid); }
table.cost .share-text { position: relative; }
table.cost tr.over-budget { background: var(--mr-band-warn); }
table.cost tr.hung { background: var(--mr-band-critical); }
table.cost td.note { color: var(--mr-fg); overflow-wrap: anywhere; }
.cost-problem { color: var(--mr-critical); }
.empty-state { max-width: 720px; margin: 24px 0; }
.empty-state h2 { font-size: 17px; }
#metricreg-health .uplot { font-family: inherit; }
`;

/** Inject uPlot's stylesheet and ours once per document. */
export function injectStyles(doc: Document): void {
  if (doc.getElementById(STYLE_ID)) return;
  const style = doc.createElement("style");
  style.id = STYLE_ID;
  style.textContent = (typeof uplotCss === "string" ? uplotCss : "") + "\n" + CSS;
  (doc.head ?? doc.documentElement).appendChild(style);
}

/** Chart colours from the CSS variables (so canvas drawing follows the theme). */
export function readChartTheme(el: Element): ChartTheme {
  const view = el.ownerDocument.defaultView;
  if (!view || typeof view.getComputedStyle !== "function") return DEFAULT_THEME;
  const cs = view.getComputedStyle(el);
  const v = (name: string, dflt: string): string => cs.getPropertyValue(name).trim() || dflt;
  return {
    axis: v("--mr-axis", DEFAULT_THEME.axis),
    grid: v("--mr-grid", DEFAULT_THEME.grid),
    bandWarn: v("--mr-band-warn", DEFAULT_THEME.bandWarn),
    bandCritical: v("--mr-band-critical", DEFAULT_THEME.bandCritical),
    lineWarn: v("--mr-line-warn", DEFAULT_THEME.lineWarn),
    lineCritical: v("--mr-line-critical", DEFAULT_THEME.lineCritical),
  };
}
