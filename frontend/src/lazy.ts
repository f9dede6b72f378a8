/**
 * Charts drawn lazily: a chart is built only once its card scrolls near the viewport
 * (IntersectionObserver), and a data or smoothing change to a chart out of view waits until it
 * comes back. Drawing runs in small slices (a time budget per task, then yield) so that no single
 * main-thread task grows with the number of charts. Without IntersectionObserver (jsdom), every
 * chart is drawn at once.
 */
import { countPoints, createChart, DEFAULT_THEME, FALLBACK_WIDTH, type ChartHandle, type ChartSpec, type ChartTheme } from "./chart";

/** Draw charts within this distance of the viewport. */
const MARGIN = "300px 0px";
/** Milliseconds of drawing per task before yielding to the browser. */
const BUDGET_MS = 24;

interface Slot {
  el: HTMLElement;
  spec: ChartSpec;
  handle: ChartHandle | null;
  visible: boolean;
  width: number;
  /** what the handle shows differs from `spec` */
  stale: boolean;
}

/** Same data (by reference: unchanged runs keep their arrays) and same display settings. */
export function sameSpec(a: ChartSpec, b: ChartSpec): boolean {
  if (
    a.tag !== b.tag ||
    a.smoothing !== b.smoothing ||
    a.logScale !== b.logScale ||
    (a.xAxis ?? "step") !== (b.xAxis ?? "step") ||
    !!a.align !== !!b.align ||
    a.runs.length !== b.runs.length ||
    JSON.stringify(a.thresholds) !== JSON.stringify(b.thresholds)
  ) {
    return false;
  }
  return a.runs.every((r, i) => {
    const o = b.runs[i];
    return r.run === o.run && r.color === o.color && r.steps === o.steps && r.values === o.values && r.wall_times === o.wall_times;
  });
}

export class ChartScheduler {
  private readonly slots = new Map<Element, Slot>();
  private readonly queue = new Set<Slot>();
  private readonly io: IntersectionObserver | null;
  private theme: ChartTheme = DEFAULT_THEME;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private idleWaiters: (() => void)[] = [];

  constructor(win: Window | null) {
    const IO = (win as (Window & typeof globalThis) | null)?.IntersectionObserver;
    // root: our own document, so the margin applies to the iframe's viewport (with the implicit
    // root, a same-origin iframe is clipped to its visible part and the margin is ignored).
    this.io = IO && win ? new IO((entries) => this.onIntersect(entries), { root: win.document, rootMargin: MARGIN }) : null;
  }

  /** Charts currently drawn (for tests and the benchmark). */
  get drawn(): number {
    let n = 0;
    for (const s of this.slots.values()) if (s.handle) n++;
    return n;
  }

  /** Track `el` with `spec`, or give a tracked one new data (kept in view, zoom kept). */
  set(el: HTMLElement, spec: ChartSpec): void {
    let slot = this.slots.get(el);
    if (slot && sameSpec(slot.spec, spec)) return; // nothing new: no redraw
    el.dataset.points = String(countPoints(spec.runs, spec.logScale));
    if (!slot) {
      slot = { el, spec, handle: null, visible: !this.io, width: FALLBACK_WIDTH, stale: true };
      this.slots.set(el, slot);
      this.io?.observe(el);
    } else {
      slot.spec = spec;
      slot.stale = true;
    }
    if (slot.visible) this.enqueue(slot);
  }

  /** Re-smooth: drawn charts in view at once, the others when they come into view. */
  setSmoothing(w: number): void {
    for (const slot of this.slots.values()) {
      slot.spec = { ...slot.spec, smoothing: w };
      if (slot.handle && slot.visible) slot.handle.setSmoothing(w);
      else slot.stale = true;
    }
  }

  /** New colours: every drawn chart is redrawn (lazily, like any change). */
  setTheme(theme: ChartTheme): void {
    this.theme = theme;
    for (const slot of this.slots.values()) {
      slot.handle?.destroy();
      slot.handle = null;
      slot.stale = true;
      if (slot.visible) this.enqueue(slot);
    }
  }

  remove(el: Element): void {
    const slot = this.slots.get(el);
    if (!slot) return;
    this.io?.unobserve(el);
    slot.handle?.destroy();
    this.queue.delete(slot);
    this.slots.delete(el);
  }

  /** Resolves when no drawing is queued. */
  whenIdle(): Promise<void> {
    if (!this.queue.size) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  dispose(): void {
    this.io?.disconnect();
    if (this.timer) clearTimeout(this.timer);
    for (const slot of this.slots.values()) slot.handle?.destroy();
    this.slots.clear();
    this.queue.clear();
  }

  private onIntersect(entries: IntersectionObserverEntry[]): void {
    for (const e of entries) {
      const slot = this.slots.get(e.target);
      if (!slot) continue;
      slot.visible = e.isIntersecting;
      if (e.boundingClientRect.width > 0) slot.width = e.boundingClientRect.width;
      if (slot.visible && slot.stale) this.enqueue(slot);
    }
  }

  private enqueue(slot: Slot): void {
    this.queue.add(slot);
    if (!this.io) {
      this.pump(); // no observer: draw now (jsdom, old browsers)
      return;
    }
    if (!this.timer) this.timer = setTimeout(() => this.pump(), 0);
  }

  private pump(): void {
    this.timer = null;
    const now = (): number => (typeof performance !== "undefined" ? performance.now() : Date.now());
    const t0 = now();
    for (const slot of this.queue) {
      if (this.io && now() - t0 > BUDGET_MS) break;
      this.queue.delete(slot);
      if (!slot.stale || !this.slots.has(slot.el)) continue;
      this.draw(slot);
    }
    if (this.queue.size) {
      this.timer = setTimeout(() => this.pump(), 0);
      return;
    }
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    waiters.forEach((w) => w());
  }

  private draw(slot: Slot): void {
    slot.stale = false;
    if (slot.handle?.update(slot.spec)) {
      slot.handle.setSmoothing(slot.spec.smoothing);
      return;
    }
    slot.handle?.destroy();
    slot.handle = createChart(slot.el, slot.spec, this.theme, slot.width);
    slot.el.dataset.drawn = "1";
  }
}
