/**
 * The Health tab controller: owns the state (smoothing, log scale, run filter, fetched data),
 * serialises loads, and re-renders the views. Loads are never concurrent: a request made while
 * one runs is merged into one follow-up load. `document.body.dataset.metricregReady` is "0" while
 * loading and "1" after each full render.
 */
import { ApiError, HealthApi, type FetchLike } from "./api";
import { mergeCategories, orderCategories } from "./categories";
import { canvasSupported, createChart, loadChartLibrary, type ChartHandle } from "./chart";
import { connectHostIpc, DATA_RELOADED, type HostIpc } from "./ipc";
import { mapLimit } from "./pool";
import { bySeverity, selectionNote, selectRuns, type Selection } from "./selection";
import { clampSmoothing, DEFAULT_SMOOTHING } from "./smoothing";
import { injectStyles, readChartTheme } from "./styles";
import type { RunDetail, RunsResponse, RunSummary } from "./types";
import { renderAlerts } from "./view/alerts";
import { h } from "./view/dom";
import { renderEmptyState } from "./view/empty";
import { renderErrors } from "./view/errors";
import { renderHeader, type HeaderHandles } from "./view/header";
import { renderOverview } from "./view/overview";
import { renderSections } from "./view/sections";

export const ROOT_ID = "metricreg-health";
export const POLL_MS = 30_000;
export const MAX_CONCURRENT_FETCHES = 6;
const FILTER_DEBOUNCE_MS = 250;
const SMOOTHING_DEBOUNCE_MS = 400;

export interface AppOptions {
  doc: Document;
  fetch: FetchLike;
  /** polling period in ms; 0 disables polling */
  pollMs?: number;
  /** connect TensorBoard's host IPC (reload broadcasts); default true */
  ipc?: boolean;
}

type LoadKind = "full" | "select";

const message = (e: unknown): string => (e instanceof ApiError || e instanceof Error ? e.message : String(e));

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

export class HealthApp {
  readonly root: HTMLElement;
  private readonly doc: Document;
  private readonly api: HealthApi;
  private readonly controls: HeaderHandles;
  private readonly errorBox: HTMLElement;
  private readonly emptyHost: HTMLElement;
  private readonly mainHost: HTMLElement;
  private readonly overviewHost: HTMLElement;
  private readonly noteEl: HTMLElement;
  private readonly sectionsHost: HTMLElement;
  private readonly alertsHost: HTMLElement;
  private readonly alertsTitle: HTMLElement;
  private readonly errorsHost: HTMLElement;
  private readonly errorsTitle: HTMLElement;
  private readonly detailErrorsHost: HTMLElement;

  private smoothing = DEFAULT_SMOOTHING;
  /** Whether the user moved the slider: only then do the routes get `smoothing=`. */
  private smoothingChosen = false;
  private logScale = false;
  private filter = "";
  private runsData: RunsResponse | null = null;
  private summaries = new Map<string, RunSummary>();
  private selection: Selection | null = null;
  private details = new Map<string, RunDetail>();
  private detailErrors = new Map<string, string>();
  private charts: ChartHandle[] = [];
  private renderedKey = "";

  private running: Promise<void> | null = null;
  private pendingKind: LoadKind | null = null;
  private pollTimer: ReturnType<typeof setInterval> | null = null;
  private filterTimer: ReturnType<typeof setTimeout> | null = null;
  private smoothingTimer: ReturnType<typeof setTimeout> | null = null;
  private smoothingDirty = false;
  private ipc: HostIpc | null = null;
  private colorQuery: MediaQueryList | null = null;
  private readonly onSchemeChange = (): void => {
    if (!this.running) this.rerenderDetails();
  };

  constructor(private readonly opts: AppOptions) {
    const doc = opts.doc;
    this.doc = doc;
    this.api = new HealthApi(opts.fetch);
    this.controls = renderHeader(doc, { smoothing: this.smoothing, logScale: this.logScale, filter: this.filter });
    this.errorBox = h(doc, "div", { id: "load-error", attrs: { role: "alert" } });
    this.errorBox.hidden = true;
    this.emptyHost = h(doc, "div", { class: "empty-host" });
    this.overviewHost = h(doc, "div", { class: "table-wrap" });
    this.noteEl = h(doc, "p", { id: "selection-note", class: "muted small" });
    this.sectionsHost = h(doc, "div", { id: "sections" });
    this.alertsTitle = h(doc, "h2", null, "Alerts");
    this.alertsHost = h(doc, "div", { class: "alerts-host" });
    this.errorsTitle = h(doc, "h2", null, "Metric errors");
    this.errorsHost = h(doc, "div", { class: "errors-host" });
    this.detailErrorsHost = h(doc, "div", { class: "detail-errors" });
    this.mainHost = h(
      doc,
      "main",
      null,
      h(doc, "section", { class: "overview-wrap" }, h(doc, "h2", null, "Runs"), this.overviewHost, this.noteEl, this.detailErrorsHost),
      this.sectionsHost,
      h(doc, "section", { class: "alerts-wrap" }, this.alertsTitle, this.alertsHost),
      h(doc, "section", { class: "errors-wrap" }, this.errorsTitle, this.errorsHost),
    );
    this.root = h(doc, "div", { id: ROOT_ID }, this.controls.header, this.errorBox, this.emptyHost, this.mainHost);
    this.wireControls();
  }

  /** Inject styles, connect reload sources, and do the first load. */
  async start(): Promise<void> {
    injectStyles(this.doc);
    const win = this.doc.defaultView;
    if (win && this.opts.ipc !== false) {
      this.ipc = connectHostIpc(
        {
          [DATA_RELOADED]: () => {
            void this.refresh();
            return null;
          },
        },
        win,
      );
    }
    const pollMs = this.opts.pollMs ?? POLL_MS;
    if (pollMs > 0) {
      this.pollTimer = setInterval(() => {
        if (!this.doc.hidden && !this.running) void this.refresh();
      }, pollMs);
    }
    if (win && typeof win.matchMedia === "function") {
      this.colorQuery = win.matchMedia("(prefers-color-scheme: dark)");
      this.colorQuery.addEventListener?.("change", this.onSchemeChange);
    }
    if (canvasSupported(this.doc)) {
      try {
        await loadChartLibrary();
      } catch (e) {
        this.showError(`Could not load the chart library: ${message(e)}`);
      }
    }
    await this.refresh();
  }

  /** Re-fetch everything (./runs, then ./run for each charted run). */
  refresh(): Promise<void> {
    return this.request("full");
  }

  dispose(): void {
    if (this.pollTimer) clearInterval(this.pollTimer);
    if (this.filterTimer) clearTimeout(this.filterTimer);
    if (this.smoothingTimer) clearTimeout(this.smoothingTimer);
    this.colorQuery?.removeEventListener?.("change", this.onSchemeChange);
    this.ipc?.dispose();
    this.destroyCharts();
  }

  private setReady(ready: boolean): void {
    if (this.doc.body) this.doc.body.dataset.metricregReady = ready ? "1" : "0";
  }

  private request(kind: LoadKind): Promise<void> {
    if (this.pendingKind !== "full") this.pendingKind = kind;
    if (!this.running) {
      this.running = this.loop().finally(() => {
        this.running = null;
      });
    }
    return this.running;
  }

  private async loop(): Promise<void> {
    this.setReady(false);
    while (this.pendingKind) {
      const kind = this.pendingKind;
      this.pendingKind = null;
      try {
        await this.load(kind);
      } catch (e) {
        this.showError(`Unexpected error: ${message(e)}`);
      }
    }
    this.setReady(true);
  }

  private async load(kind: LoadKind): Promise<void> {
    const w = this.smoothingChosen ? this.smoothing : null;
    const full = kind === "full" || !this.runsData;
    this.setStatus("Loading…");
    if (full) {
      let runs: RunsResponse;
      try {
        runs = await this.api.runs(w);
      } catch (e) {
        this.showError(`Could not load ./runs: ${message(e)}`);
        this.setStatus("Load failed.");
        return;
      }
      if (this.pendingKind === "full") return; // superseded: the next load starts over
      this.runsData = runs;
      this.summaries = new Map(runs.runs.map((r) => [r.run, r]));
    }
    this.showError(null);
    const runs = this.runsData!;
    this.selection = selectRuns(runs.runs, this.filter);
    this.renderOverview();

    if (runs.runs.length === 0) {
      this.details = new Map();
      this.detailErrors = new Map();
      this.rerenderDetails();
      this.setStatus(`Updated ${new Date().toLocaleTimeString()}.`);
      return;
    }

    // A full load re-fetches every charted run; a selection change fetches only the missing ones.
    const cache = full ? new Map<string, RunDetail>() : new Map(this.details);
    const errors = new Map<string, string>();
    const missing = this.selection.runs.filter((r) => !cache.has(r));
    if (missing.length) this.setStatus(`Loading ${missing.length} run${missing.length === 1 ? "" : "s"}…`);
    await mapLimit(missing, MAX_CONCURRENT_FETCHES, async (run) => {
      try {
        cache.set(run, await this.api.run(run, w));
      } catch (e) {
        errors.set(run, message(e));
      }
    });
    if (this.pendingKind === "full") return;
    this.details = cache;
    this.detailErrors = errors;
    // A poll that brings nothing new keeps the charts (and the user's zoom) as they are.
    if (this.renderedKey !== this.renderKey()) this.rerenderDetails();
    this.setStatus(`Updated ${new Date().toLocaleTimeString()}.`);
  }

  private renderOverview(): void {
    const runs = this.runsData;
    if (!runs) return;
    const empty = runs.runs.length === 0;
    this.emptyHost.replaceChildren(...(empty ? [renderEmptyState(this.doc)] : []));
    this.mainHost.hidden = empty;
    if (empty) {
      this.overviewHost.replaceChildren();
      this.noteEl.textContent = "";
      return;
    }
    const charted = new Set(this.selection?.runs ?? []);
    this.overviewHost.replaceChildren(
      renderOverview(this.doc, bySeverity(runs.runs), runs.categories, {
        charted,
        onRunClick: (run) => {
          const value = `^${escapeRegExp(run)}$`;
          this.controls.filter.value = value;
          this.setFilter(value === this.filter ? "" : value);
        },
      }),
    );
    this.noteEl.textContent = this.selection ? selectionNote(this.selection) : "";
  }

  /** What the detail views depend on; equal keys render identical views. */
  private renderKey(): string {
    const runs = this.selection?.runs ?? [];
    return JSON.stringify([
      this.smoothing,
      this.smoothingChosen,
      this.logScale,
      this.runsData?.categories ?? [],
      runs.map((r) => [r, this.details.get(r) ?? null, this.detailErrors.get(r) ?? null, this.summaries.get(r)?.categories ?? null]),
    ]);
  }

  /** Sections, alerts and errors from the cached details (no fetch). */
  private rerenderDetails(): void {
    this.renderedKey = this.renderKey();
    this.destroyCharts();
    const runs = this.runsData;
    const selected = (this.selection?.runs ?? []).filter((r) => this.details.has(r));
    const detailCats = selected.flatMap((r) => this.details.get(r)!.categories.map((c) => ({ name: c.name, title: c.title })));
    const categories = orderCategories(mergeCategories(runs?.categories ?? [], detailCats));
    const { sections, charts } = renderSections(this.doc, {
      categories: runs && runs.runs.length ? categories : [],
      runs: selected,
      details: this.details,
      summaries: this.summaries,
      smoothing: this.smoothing,
      logScale: this.logScale,
    });
    this.sectionsHost.replaceChildren(...sections);
    const theme = readChartTheme(this.root);
    this.charts = charts.map((p) => createChart(p.el, p.spec, theme));

    const alerts = selected.flatMap((r) => this.details.get(r)!.alerts);
    const errors = selected.flatMap((r) => this.details.get(r)!.errors);
    this.alertsTitle.textContent = `Alerts (${alerts.length})`;
    this.alertsHost.replaceChildren(renderAlerts(this.doc, alerts));
    this.errorsTitle.textContent = `Metric errors (${errors.length})`;
    this.errorsHost.replaceChildren(renderErrors(this.doc, errors));

    const failed = Array.from(this.detailErrors.entries());
    this.detailErrorsHost.replaceChildren(
      ...failed.map(([run, msg]) => h(this.doc, "p", { class: "detail-error small", data: { run } }, `Could not load run ${run}: ${msg}`)),
    );
  }

  private destroyCharts(): void {
    for (const c of this.charts) c.destroy();
    this.charts = [];
  }

  private setFilter(value: string): void {
    if (value === this.filter) return;
    this.filter = value;
    void this.request("select");
  }

  private wireControls(): void {
    const c = this.controls;
    c.refresh.addEventListener("click", () => void this.refresh());
    c.filter.addEventListener("input", () => {
      if (this.filterTimer) clearTimeout(this.filterTimer);
      if (c.filter.value !== this.filter) this.setReady(false);
      this.filterTimer = setTimeout(() => {
        this.filterTimer = null;
        this.setFilter(c.filter.value);
        if (!this.running) this.setReady(true);
      }, FILTER_DEBOUNCE_MS);
    });
    c.filter.addEventListener("change", () => {
      if (this.filterTimer) clearTimeout(this.filterTimer);
      this.filterTimer = null;
      this.setFilter(c.filter.value);
      if (!this.running) this.setReady(true);
    });
    const onSmoothing = (commit: boolean): void => {
      const w = clampSmoothing(parseFloat(c.smoothing.value));
      c.smoothingValue.textContent = w.toFixed(2);
      if (w !== this.smoothing) {
        this.smoothing = w;
        this.smoothingChosen = true;
        this.smoothingDirty = true;
        // Re-smooth the drawn charts at once; the re-fetch below makes the alert evaluation match.
        for (const chart of this.charts) chart.setSmoothing(w);
      }
      if (!this.smoothingDirty) return;
      if (this.smoothingTimer) clearTimeout(this.smoothingTimer);
      this.smoothingTimer = null;
      const fetchNow = (): void => {
        this.smoothingTimer = null;
        this.smoothingDirty = false;
        void this.refresh();
      };
      if (commit) fetchNow();
      else {
        this.setReady(false);
        this.smoothingTimer = setTimeout(fetchNow, SMOOTHING_DEBOUNCE_MS);
      }
    };
    c.smoothing.addEventListener("input", () => onSmoothing(false));
    c.smoothing.addEventListener("change", () => onSmoothing(true));
    c.logScale.addEventListener("change", () => {
      this.logScale = c.logScale.checked;
      if (this.running) {
        void this.request("select");
        return;
      }
      this.setReady(false);
      this.rerenderDetails();
      this.setReady(true);
    });
  }

  private setStatus(text: string): void {
    this.controls.status.textContent = text;
  }

  private showError(text: string | null): void {
    this.errorBox.textContent = text ?? "";
    this.errorBox.hidden = text === null;
  }
}
