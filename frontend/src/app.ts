/**
 * The Health tab controller: owns the view state (kept in the URL hash), the fetched data and its
 * validators, serialises loads, and updates the views in place. Loads are never concurrent: a
 * request made while one runs is merged into one follow-up load. A reload asks `./runs` and each
 * charted run conditionally (If-None-Match; a run whose `fingerprint` is unchanged is not asked at
 * all), and re-renders only when something changed. `document.body.dataset.metricregReady` is
 * "0" while loading and "1" after each render; charts are then drawn as they scroll into view.
 */
import { ApiError, HealthApi, type FetchLike, type Versioned } from "./api";
import { mergeCategories, orderCategories } from "./categories";
import { canvasSupported, loadChartLibrary } from "./chart";
import { assignColors } from "./colors";
import { fileName, saveText, verdictCsv, verdictJson } from "./download";
import { DEFAULT_VIEW, readViewState, saveViewState, type ViewState, type XAxis } from "./hashstate";
import { connectHostIpc, DATA_RELOADED, type HostIpc } from "./ipc";
import { ChartScheduler } from "./lazy";
import { tensorboardRoot } from "./links";
import { mapLimit } from "./pool";
import { bySeverity, selectionNote, selectRuns, type Selection } from "./selection";
import { clampSmoothing } from "./smoothing";
import { injectStyles, readChartTheme } from "./styles";
import { followTheme, type Theme } from "./theme";
import type { Alert, RunDetail, RunsResponse, RunSummary } from "./types";
import { AlertsPanel } from "./view/alerts";
import { h } from "./view/dom";
import { CostView } from "./view/cost";
import { renderEmptyState } from "./view/empty";
import { renderErrors } from "./view/errors";
import { renderHeader, type HeaderHandles } from "./view/header";
import { renderOverview } from "./view/overview";
import { SectionsView } from "./view/sections";

export const ROOT_ID = "metricreg-health";
export const POLL_MS = 30_000;
export const MAX_CONCURRENT_FETCHES = 6;
const FILTER_DEBOUNCE_MS = 250;
const HASH_DEBOUNCE_MS = 200;

export interface AppOptions {
  doc: Document;
  fetch: FetchLike;
  /** polling period in ms; 0 disables polling */
  pollMs?: number;
  /** connect TensorBoard's host IPC (reload broadcasts); default true */
  ipc?: boolean;
}

type LoadKind = "full" | "select";

/** A User Timing mark, once per page (benchmarks read when the overview and the tab were ready). */
function mark(name: string): void {
  if (typeof performance === "undefined" || typeof performance.mark !== "function") return;
  if (performance.getEntriesByName(name).length === 0) performance.mark(name);
}

/** A macrotask boundary: lets the browser paint and handle input between render slices. */
const yieldToBrowser = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 0));

const message = (e: unknown): string => (e instanceof ApiError || e instanceof Error ? e.message : String(e));

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
  private readonly charts: ChartScheduler;
  private readonly sections: SectionsView;
  private readonly alerts: AlertsPanel;
  private readonly errorsHost: HTMLElement;
  private readonly errorsTitle: HTMLElement;
  private readonly cost: CostView;
  private readonly detailErrorsHost: HTMLElement;

  private state: ViewState = { ...DEFAULT_VIEW };
  private showResolved = false;
  private theme: Theme = "light";
  private runsData: Versioned<RunsResponse> | null = null;
  private runsVersion = 0;
  private summaries = new Map<string, RunSummary>();
  private tbOrder: string[] | null = null;
  private selection: Selection | null = null;
  private details = new Map<string, Versioned<RunDetail>>();
  /** the ./runs fingerprint each cached detail was fetched under */
  private detailPrints = new Map<string, string | null>();
  private detailErrors = new Map<string, string>();
  private dataVersion = 0;
  /** detail renders not finished yet (the ready flag waits for them) */
  private rendersInFlight = 0;
  private renderedKey = "";
  private overviewKey = "";

  private running: Promise<void> | null = null;
  private pendingKind: LoadKind | null = null;
  private pollTimer: ReturnType<typeof setInterval> | null = null;
  private filterTimer: ReturnType<typeof setTimeout> | null = null;
  private hashTimer: ReturnType<typeof setTimeout> | null = null;
  private ipc: HostIpc | null = null;
  private stopTheme: (() => void) | null = null;

  constructor(private readonly opts: AppOptions) {
    const doc = opts.doc;
    this.doc = doc;
    this.api = new HealthApi(opts.fetch);
    if (doc.defaultView) this.state = readViewState(doc.defaultView);
    this.controls = renderHeader(doc, this.state);
    this.errorBox = h(doc, "div", { id: "load-error", attrs: { role: "alert" } });
    this.errorBox.hidden = true;
    this.emptyHost = h(doc, "div", { class: "empty-host" });
    this.overviewHost = h(doc, "div", { class: "table-wrap" });
    this.noteEl = h(doc, "p", { id: "selection-note", class: "muted small" });
    this.charts = new ChartScheduler(doc.defaultView);
    this.sections = new SectionsView(doc, this.charts);
    this.alerts = new AlertsPanel(doc);
    this.errorsTitle = h(doc, "h2", null, "Metric errors");
    this.errorsHost = h(doc, "div", { class: "errors-host" });
    this.detailErrorsHost = h(doc, "div", { class: "detail-errors" });
    this.cost = new CostView(doc);
    this.mainHost = h(
      doc,
      "main",
      null,
      this.alerts.el,
      h(doc, "section", { class: "overview-wrap" }, h(doc, "h2", null, "Runs"), this.overviewHost, this.noteEl, this.detailErrorsHost),
      this.sections.el,
      h(doc, "section", { class: "errors-wrap" }, this.errorsTitle, this.errorsHost),
      this.cost.el,
    );
    this.root = h(doc, "div", { id: ROOT_ID }, this.controls.header, this.errorBox, this.emptyHost, this.mainHost);
    this.root.classList.toggle("only-failing", this.state.onlyFailing);
    this.wireControls();
  }

  /** Inject styles, follow TensorBoard's theme, connect reload sources, and do the first load. */
  async start(): Promise<void> {
    injectStyles(this.doc);
    this.stopTheme = followTheme(this.doc, (t) => this.onTheme(t));
    this.theme = this.doc.documentElement.dataset.theme === "dark" ? "dark" : "light";
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
    if (canvasSupported(this.doc)) {
      try {
        await loadChartLibrary();
      } catch (e) {
        this.showError(`Could not load the chart library: ${message(e)}`);
      }
    }
    this.charts.setTheme(readChartTheme(this.root));
    await this.refresh();
  }

  /** Reload: ./runs, then each charted run that changed. */
  refresh(): Promise<void> {
    return this.request("full");
  }

  /** Resolves when every chart in view is drawn. */
  chartsIdle(): Promise<void> {
    return this.charts.whenIdle();
  }

  dispose(): void {
    if (this.pollTimer) clearInterval(this.pollTimer);
    if (this.filterTimer) clearTimeout(this.filterTimer);
    if (this.hashTimer) clearTimeout(this.hashTimer);
    this.stopTheme?.();
    this.ipc?.dispose();
    this.charts.dispose();
  }

  private setReady(ready: boolean): void {
    if (this.doc.body) this.doc.body.dataset.metricregReady = ready ? "1" : "0";
    if (ready) mark("metricreg-ready");
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
    if (!this.rendersInFlight) this.setReady(true);
  }

  private async load(kind: LoadKind): Promise<void> {
    const full = kind === "full" || !this.runsData;
    this.setStatus("Loading…");
    if (full) {
      let got: Versioned<RunsResponse>;
      try {
        got = await this.api.runs(this.runsData);
      } catch (e) {
        this.showError(`Could not load ./runs: ${message(e)}`);
        this.setStatus("Load failed.");
        return;
      }
      if (this.pendingKind === "full") return; // superseded: the next load starts over
      if (!got.notModified || !this.runsData) {
        this.runsData = got;
        this.runsVersion++;
        this.summaries = new Map(got.value.runs.map((r) => [r.run, r]));
        this.tbOrder = await this.api.tensorboardRuns();
      }
    }
    this.showError(null);
    const runs = this.runsData!.value;
    this.selection = selectRuns(runs.runs, this.state.filter);
    this.renderOverview();

    if (runs.runs.length === 0) {
      this.details = new Map();
      this.detailErrors = new Map();
      await this.rerenderDetails();
      this.setStatus(`Updated ${new Date().toLocaleTimeString()}.`);
      return;
    }

    const charted = this.chartedRuns();
    if (full) {
      // Keep only what is charted: memory stays flat however long the tab is open.
      for (const r of Array.from(this.details.keys())) {
        if (!charted.includes(r)) {
          this.details.delete(r);
          this.detailPrints.delete(r);
        }
      }
    }
    const errors = new Map<string, string>();
    const todo = charted.filter((r) => {
      const cached = this.details.get(r);
      if (!cached) return true;
      if (!full) return false;
      const print = this.summaries.get(r)?.fingerprint ?? null;
      return print === null || print !== this.detailPrints.get(r);
    });
    if (todo.length) this.setStatus(`Loading ${todo.length} run${todo.length === 1 ? "" : "s"}…`);
    let changed = false;
    await mapLimit(todo, MAX_CONCURRENT_FETCHES, async (run) => {
      const print = this.summaries.get(run)?.fingerprint ?? null;
      try {
        const got = await this.api.run(run, this.details.get(run) ?? null);
        if (!got.notModified) changed = true;
        this.details.set(run, got);
        this.detailPrints.set(run, print);
      } catch (e) {
        errors.set(run, message(e));
      }
    });
    if (this.pendingKind === "full") return;
    if (changed) this.dataVersion++;
    for (const run of charted) if (this.detailErrors.has(run) && !errors.has(run)) changed = true;
    this.detailErrors = errors;
    if (this.renderedKey !== this.renderKey()) await this.rerenderDetails();
    this.setStatus(`Updated ${new Date().toLocaleTimeString()}.`);
  }

  /** The runs that get charts: the selected run alone, or the filter's selection. */
  private chartedRuns(): string[] {
    const sel = this.state.run;
    if (sel && this.summaries.has(sel)) return [sel];
    return this.selection?.runs ?? [];
  }

  private renderOverview(): void {
    const data = this.runsData?.value;
    if (!data) return;
    const charted = this.chartedRuns();
    const key = JSON.stringify([this.runsVersion, this.state.run, charted]);
    if (key === this.overviewKey) return; // unchanged: keep the table (and its scroll position)
    this.overviewKey = key;
    const empty = data.runs.length === 0;
    this.emptyHost.replaceChildren(...(empty ? [renderEmptyState(this.doc)] : []));
    this.mainHost.hidden = empty;
    if (empty) {
      this.overviewHost.replaceChildren();
      this.noteEl.textContent = "";
      return;
    }
    mark("metricreg-overview");
    this.overviewHost.replaceChildren(
      renderOverview(this.doc, bySeverity(data.runs), data.categories, {
        charted: new Set(charted),
        selected: this.state.run,
        onRunClick: (run) => this.selectRun(this.state.run === run ? "" : run),
        onDownload: (run, kind) => this.downloadVerdict(run, kind),
      }),
    );
    const sel = this.state.run && this.summaries.has(this.state.run) ? `Charting only run ${this.state.run} (click it again to show all).` : "";
    this.noteEl.textContent = sel || (this.selection ? selectionNote(this.selection) : "");
  }

  private renderKey(): string {
    return JSON.stringify([
      this.dataVersion,
      this.runsVersion,
      this.theme,
      this.state.logScale,
      this.state.xAxis,
      this.state.align,
      this.showResolved,
      this.chartedRuns(),
      Array.from(this.detailErrors.entries()),
    ]);
  }

  /**
   * Sections, alerts and errors from the cached details (no fetch); views are updated in place,
   * the cards in time slices (yielding to the browser between them).
   */
  private async rerenderDetails(): Promise<void> {
    this.rendersInFlight++;
    try {
      await this.renderDetails();
    } finally {
      this.rendersInFlight--;
    }
    if (!this.rendersInFlight && !this.running) this.setReady(true);
  }

  private async renderDetails(): Promise<void> {
    this.renderedKey = this.renderKey();
    const data = this.runsData?.value;
    const selected = this.chartedRuns().filter((r) => this.details.has(r));
    const details = new Map(selected.map((r) => [r, this.details.get(r)!.value]));
    const detailCats = selected.flatMap((r) => details.get(r)!.categories.map((c) => ({ name: c.name, title: c.title })));
    const categories = orderCategories(mergeCategories(data?.categories ?? [], detailCats));
    const allRuns = data?.runs.map((r) => r.run) ?? [];
    const win = this.doc.defaultView;
    const rendering = this.sections.render(
      {
      categories: data && data.runs.length ? categories : [],
      runs: selected,
      details,
      summaries: this.summaries,
      colors: assignColors(this.tbOrder, allRuns, this.theme === "dark"),
      smoothing: this.state.smoothing,
      logScale: this.state.logScale,
      xAxis: this.state.xAxis,
      align: this.state.align,
      tbRoot: win && win.parent !== win ? tensorboardRoot(win.location.href) : null,
      },
      yieldToBrowser,
    );

    const alerts: Alert[] = selected.flatMap((r) => details.get(r)!.alerts);
    this.alerts.render(alerts, { onJump: (a) => this.jumpTo(a), showResolved: this.showResolved });
    const errors = selected.flatMap((r) => details.get(r)!.errors);
    this.errorsTitle.textContent = `Metric errors (${errors.length})`;
    this.errorsHost.replaceChildren(renderErrors(this.doc, errors));
    this.cost.render(selected.map((run) => ({ run, cost: details.get(run)!.cost })));

    const failed = Array.from(this.detailErrors.entries());
    this.detailErrorsHost.replaceChildren(
      ...failed.map(([run, msg]) => h(this.doc, "p", { class: "detail-error small", data: { run } }, `Could not load run ${run}: ${msg}`)),
    );
    await rendering;
  }

  private jumpTo(a: Alert): void {
    if (this.state.onlyFailing && !a.active) this.setOnlyFailing(false);
    if (!this.sections.reveal(a.tag, a.category)) this.setStatus(`No chart for ${a.tag} in the charted runs.`);
  }

  private downloadVerdict(run: string, kind: "csv" | "json"): void {
    const summary = this.summaries.get(run);
    if (!summary) return;
    const detail = this.details.get(run)?.value ?? null;
    const text = kind === "csv" ? verdictCsv(summary, detail) : verdictJson(summary, detail);
    saveText(this.doc, `${fileName(run, "verdict")}.${kind}`, kind === "csv" ? "text/csv" : "application/json", text);
  }

  private onTheme(t: Theme): void {
    this.theme = t;
    this.charts.setTheme(readChartTheme(this.root));
    if (!this.running) void this.rerenderDetails();
  }

  private update(patch: Partial<ViewState>): void {
    this.state = { ...this.state, ...patch };
    if (this.hashTimer) clearTimeout(this.hashTimer);
    this.hashTimer = setTimeout(() => {
      this.hashTimer = null;
      const win = this.doc.defaultView;
      if (win) saveViewState(win, this.state);
    }, HASH_DEBOUNCE_MS);
  }

  private selectRun(run: string): void {
    this.update({ run });
    void this.request("select");
  }

  private setFilter(value: string): void {
    if (value === this.state.filter) return;
    this.update({ filter: value });
    void this.request("select");
  }

  private setOnlyFailing(on: boolean): void {
    this.controls.onlyFailing.checked = on;
    this.update({ onlyFailing: on });
    this.root.classList.toggle("only-failing", on);
  }

  /** A display change that needs the cards re-rendered (no fetch). */
  private redisplay(patch: Partial<ViewState>): void {
    this.update(patch);
    if (this.running) {
      void this.request("select");
      return;
    }
    this.setReady(false);
    void this.rerenderDetails();
  }

  private wireControls(): void {
    const c = this.controls;
    c.refresh.addEventListener("click", () => void this.refresh());
    c.filter.addEventListener("input", () => {
      if (this.filterTimer) clearTimeout(this.filterTimer);
      if (c.filter.value !== this.state.filter) this.setReady(false);
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
    // Smoothing is display only: re-smooth the charts in the browser, never refetch.
    let frame = 0;
    const onSmoothing = (): void => {
      const w = clampSmoothing(parseFloat(c.smoothing.value));
      c.smoothingValue.textContent = w.toFixed(2);
      if (w === this.state.smoothing) return;
      this.update({ smoothing: w });
      // Dragging fires many input events: re-smooth at most once per frame, with the latest value.
      const win = this.doc.defaultView;
      if (!win || typeof win.requestAnimationFrame !== "function") {
        this.sections.setSmoothing(w);
        return;
      }
      if (frame) return;
      frame = win.requestAnimationFrame(() => {
        frame = 0;
        this.sections.setSmoothing(this.state.smoothing);
      });
    };
    c.smoothing.addEventListener("input", onSmoothing);
    c.smoothing.addEventListener("change", onSmoothing);
    c.logScale.addEventListener("change", () => this.redisplay({ logScale: c.logScale.checked }));
    c.xAxis.addEventListener("change", () => this.redisplay({ xAxis: c.xAxis.value as XAxis }));
    c.align.addEventListener("change", () => this.redisplay({ align: c.align.checked }));
    c.onlyFailing.addEventListener("change", () => this.setOnlyFailing(c.onlyFailing.checked));
    c.showResolved.addEventListener("change", () => {
      this.showResolved = c.showResolved.checked;
      if (!this.running) void this.rerenderDetails();
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
