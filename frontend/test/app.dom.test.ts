// @vitest-environment jsdom
import { afterEach, beforeEach, describe, expect, it } from "vitest";

import { HealthApp } from "../src/app";
import { resetCanvasCheck } from "../src/chart";
import { EVIL, fakeServer, type FakeOptions } from "./fixtures";

let app: HealthApp | null = null;

async function mount(runNames: string[], opts: FakeOptions = {}) {
  const server = fakeServer(runNames, opts);
  app = new HealthApp({ doc: document, fetch: server.fetch, pollMs: 0, ipc: false });
  document.body.appendChild(app.root);
  await app.start();
  return server;
}

const waitFor = async (cond: () => boolean, ms = 2000): Promise<void> => {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 10));
  }
};

beforeEach(() => {
  // jsdom has no canvas: make that explicit (and quiet) instead of jsdom's "not implemented" error.
  HTMLCanvasElement.prototype.getContext = (() => null) as typeof HTMLCanvasElement.prototype.getContext;
  resetCanvasCheck();
  document.head.replaceChildren();
  document.body.replaceChildren();
  delete document.body.dataset.metricregReady;
});

afterEach(() => {
  app?.dispose();
  app = null;
});

describe("Health tab (jsdom, fake routes)", () => {
  it("renders header, overview, sections in category order, alerts and errors; then sets the ready flag", async () => {
    const server = await mount([EVIL, "healthy", "third"]);
    expect(document.body.dataset.metricregReady).toBe("1");
    const root = document.getElementById("metricreg-health")!;
    expect(root.querySelector("h1")!.textContent).toBe("Health");
    for (const sel of ["button#refresh", "input#smoothing", "input#log-scale", "input#run-filter", "table#overview", "ul#alerts", "ul#errors"]) {
      expect(root.querySelector(sel), sel).not.toBeNull();
    }
    expect((root.querySelector("input#smoothing") as HTMLInputElement).value).toBe("0.60");

    // Styles are injected as one <style> element (uPlot's CSS included).
    const style = document.getElementById("metricreg-health-style")!;
    expect(style.tagName).toBe("STYLE");
    expect(style.textContent).toContain(".uplot");
    expect(style.textContent).toContain("prefers-color-scheme: dark");
    expect(style.textContent).toContain(':root[data-theme="dark"]');
    expect(document.documentElement.dataset.theme).toMatch(/^(light|dark)$/);

    // No element was created from data.
    expect(document.querySelector("img")).toBeNull();
    expect(document.querySelector("b")).toBeNull();
    expect(root.querySelectorAll("table#overview tr[data-run]")).toHaveLength(3);

    // Preferred categories first, then the others in backend order.
    const order = Array.from(root.querySelectorAll("section[data-category]")).map((s) => s.getAttribute("data-category"));
    expect(order).toEqual(["collapse", "ema", "generalization", "weird_custom"]);
    // The alerts panel comes first, above the overview.
    const main = root.querySelector("main")!;
    expect(main.firstElementChild!.id).toBe("alerts-panel");

    // One chart per tag, overlaying all 3 runs; finite points counted (NaN excluded).
    const chart = root.querySelector('section[data-category="collapse"] div.chart[data-tag="train/collapse/effective_rank"]') as HTMLElement;
    expect(chart).not.toBeNull();
    expect(chart.dataset.points).toBe(String(3 * 5));
    expect(root.querySelectorAll('section[data-category="collapse"] div.chart')).toHaveLength(1);
    const card = chart.closest(".card")!;
    expect(card.textContent).toContain("< 0.1 critical");
    expect(card.textContent).toContain("remedy for train/collapse/effective_rank");
    expect(card.querySelectorAll("ul.legend li")).toHaveLength(3);

    // Alerts and errors, as text.
    const li = root.querySelector("ul#alerts li.alert") as HTMLElement;
    expect(li.dataset.level).toBe("critical");
    expect(li.dataset.run).toBe(EVIL);
    expect(li.textContent).toContain("step 300");
    expect(root.querySelector("ul#errors")!.textContent).toContain(`ValueError: ${EVIL}`);
    expect(root.querySelector("ul#errors")!.textContent).toContain("disabled");

    // Relative URLs; until the slider moves, no smoothing= (the rules' own smoothing applies).
    // One ./run per charted run.
    expect(server.urls[0]).toBe("./runs");
    expect(server.urls.filter((u) => u.startsWith("./run?")).sort()).toEqual(
      [EVIL, "healthy", "third"].map((r) => "./run?" + new URLSearchParams({ run: r }).toString()).sort(),
    );
  });

  it("re-smooths in the browser when the slider moves: no request, same chart element", async () => {
    const server = await mount(["a", "b"]);
    const before = server.urls.length;
    const chart = document.querySelector('div.chart[data-tag="train/collapse/effective_rank"]') as HTMLElement;
    const slider = document.getElementById("smoothing") as HTMLInputElement;
    slider.value = "0.9";
    slider.dispatchEvent(new Event("input"));
    slider.dispatchEvent(new Event("change"));
    await new Promise((r) => setTimeout(r, 50));
    expect(server.urls.length).toBe(before);
    expect(server.urls.some((u) => u.includes("smoothing="))).toBe(false);
    expect(document.querySelector(".smoothing-value")!.textContent).toBe("0.90");
    expect(document.querySelector('div.chart[data-tag="train/collapse/effective_rank"]')).toBe(chart);
  });

  it("charts only runs passing the filter", async () => {
    const server = await mount(["alpha", "beta", "gamma"]);
    const filter = document.getElementById("run-filter") as HTMLInputElement;
    filter.value = "^beta$";
    filter.dispatchEvent(new Event("change"));
    await waitFor(() => document.body.dataset.metricregReady === "1");
    const legend = document.querySelectorAll('div.card[data-tag="train/collapse/effective_rank"] ul.legend li');
    expect(Array.from(legend).map((l) => (l as HTMLElement).dataset.run)).toEqual(["beta"]);
    expect((document.querySelector('div.chart[data-tag="train/collapse/effective_rank"]') as HTMLElement).dataset.points).toBe("5");
    expect(document.querySelector('tr[data-run="alpha"]')!.getAttribute("data-charted")).toBe("0");
    // Details already fetched are reused: no second ./run?run=beta.
    expect(server.urls.filter((u) => u.startsWith("./run?run=beta"))).toHaveLength(1);
  });

  it("refresh button and log-scale toggle re-render", async () => {
    const server = await mount(["a"]);
    const before = server.urls.length;
    (document.getElementById("refresh") as HTMLButtonElement).click();
    await waitFor(() => document.body.dataset.metricregReady === "1" && server.urls.length >= before + 2);
    expect(server.urls.length).toBe(before + 2);

    const log = document.getElementById("log-scale") as HTMLInputElement;
    log.checked = true;
    log.dispatchEvent(new Event("change"));
    expect(document.body.dataset.metricregReady).toBe("0");
    await waitFor(() => document.body.dataset.metricregReady === "1");
    // 15.9, 8, 0.06, 0.05, 0.04 are all positive: still 5 points on a log scale.
    expect((document.querySelector('div.chart[data-tag="train/collapse/effective_rank"]') as HTMLElement).dataset.points).toBe("5");
  });

  it("a reload keeps the chart elements (and so zoom, scroll and collapsed sections)", async () => {
    const server = await mount(["a", "b"]);
    const chart = document.querySelector("div.chart");
    const details = document.querySelector('section[data-category="ema"] details') as HTMLDetailsElement;
    details.open = false;
    server.touch("a");
    await app!.refresh();
    expect(document.querySelector("div.chart")).toBe(chart);
    expect((document.querySelector('section[data-category="ema"] details') as HTMLDetailsElement).open).toBe(false);
    (document.getElementById("log-scale") as HTMLInputElement).click();
    await waitFor(() => document.body.dataset.metricregReady === "1");
    expect(document.querySelector("div.chart")).toBe(chart);
  });

  it("live updates: a run whose fingerprint is unchanged is not asked again; ./runs is asked with If-None-Match", async () => {
    const server = await mount(["a", "b", "c"], { etags: true });
    const initialRuns = server.urls.filter((u) => u.startsWith("./run?")).length;
    expect(initialRuns).toBe(3);
    // Nothing changed: ./runs answers 304, no ./run at all.
    await app!.refresh();
    expect(server.urls.slice(-1)).toEqual(["./runs"]);
    expect(server.statuses.slice(-1)).toEqual([304]);
    // One run changed: only that one is fetched again.
    server.touch("b");
    const mark = server.urls.length;
    await app!.refresh();
    expect(server.urls.slice(mark)).toEqual(["./runs", "./run?run=b"]);
    const chart = document.querySelector('div.chart[data-tag="train/collapse/effective_rank"]') as HTMLElement;
    expect(chart.dataset.points).toBe(String(3 * 5 + 1));
  });

  it("without fingerprints, a reload asks each run conditionally and a 304 changes nothing", async () => {
    const server = await mount(["a", "b"], { etags: true });
    // Simulate an older ./runs without fingerprints but with ETags on ./run.
    const s = server.fetch;
    const strip = async (url: string, init?: RequestInit): Promise<Response> => {
      const resp = await s(url, init);
      if (url !== "./runs" || resp.status !== 200) return resp;
      const body = await resp.json();
      for (const r of body.runs) delete r.fingerprint;
      return new Response(JSON.stringify(body));
    };
    app!.dispose();
    document.body.replaceChildren();
    app = new HealthApp({ doc: document, fetch: strip, pollMs: 0, ipc: false });
    document.body.appendChild(app.root);
    await app.start();
    const mark = server.statuses.length;
    await app.refresh();
    expect(server.urls.slice(-3).sort()).toEqual(["./run?run=a", "./run?run=b", "./runs"]);
    expect(server.statuses.slice(mark).filter((x) => x === 304)).toHaveLength(2);
  });

  it("selecting a run charts only it; clicking it again shows all; the filter box is left alone", async () => {
    await mount(["alpha", "beta"]);
    const btn = () => document.querySelector('tr[data-run="beta"] button.run-name') as HTMLButtonElement;
    btn().click();
    await waitFor(() => document.body.dataset.metricregReady === "1");
    await new Promise((r) => setTimeout(r, 0));
    await waitFor(() => document.body.dataset.metricregReady === "1");
    let legend = document.querySelectorAll('div.card[data-tag="train/collapse/effective_rank"] ul.legend li');
    expect(Array.from(legend).map((l) => (l as HTMLElement).dataset.run)).toEqual(["beta"]);
    expect((document.getElementById("run-filter") as HTMLInputElement).value).toBe("");
    expect(btn().getAttribute("aria-pressed")).toBe("true");
    btn().click();
    await new Promise((r) => setTimeout(r, 0));
    await waitFor(() => document.body.dataset.metricregReady === "1");
    legend = document.querySelectorAll('div.card[data-tag="train/collapse/effective_rank"] ul.legend li');
    expect(legend).toHaveLength(2);
    expect((document.getElementById("run-filter") as HTMLInputElement).value).toBe("");
  });

  it("only-failing hides healthy cards, sections and rows", async () => {
    await mount(["bad", "meh", "good"]);
    const root = document.getElementById("metricreg-health")!;
    const box = document.getElementById("only-failing") as HTMLInputElement;
    box.click();
    expect(root.classList.contains("only-failing")).toBe(true);
    expect(document.querySelector('section[data-category="ema"]')!.getAttribute("data-failing")).toBe("0");
    expect(document.querySelector('section[data-category="collapse"]')!.getAttribute("data-failing")).toBe("1");
    expect(document.querySelector('tr[data-run="bad"]')!.classList.contains("failing")).toBe(true);
    expect(document.querySelector('tr[data-run="good"]')!.classList.contains("failing")).toBe(false);
  });

  it("the view state survives a reload through the URL hash", async () => {
    window.location.hash = "#metricreg_health&healthFilter=%5Ebeta%24&healthSmoothing=0.85&healthX=relative";
    try {
      const server = await mount(["alpha", "beta"]);
      expect((document.getElementById("run-filter") as HTMLInputElement).value).toBe("^beta$");
      expect((document.getElementById("smoothing") as HTMLInputElement).value).toBe("0.85");
      expect((document.getElementById("x-axis") as HTMLSelectElement).value).toBe("relative");
      expect(server.urls.filter((u) => u.startsWith("./run?"))).toEqual(["./run?run=beta"]);
      const box = document.getElementById("only-failing") as HTMLInputElement;
      box.click();
      await waitFor(() => window.location.hash.includes("healthFailing=1"));
      expect(window.location.hash.startsWith("#metricreg_health&")).toBe(true);
    } finally {
      window.location.hash = "";
    }
  });

  it("display changes in quick succession end in one consistent view", async () => {
    await mount(["a", "b", "c"]);
    const log = document.getElementById("log-scale") as HTMLInputElement;
    const x = document.getElementById("x-axis") as HTMLSelectElement;
    log.click();
    x.value = "relative";
    x.dispatchEvent(new Event("change"));
    log.click();
    x.value = "step";
    x.dispatchEvent(new Event("change"));
    await waitFor(() => document.body.dataset.metricregReady === "1");
    const chart = document.querySelector('div.chart[data-tag="train/collapse/effective_rank"]') as HTMLElement;
    expect(chart.dataset.xAxis).toBe("step");
    expect(chart.dataset.points).toBe(String(3 * 5));
    expect(document.querySelectorAll('div.card[data-tag="train/collapse/effective_rank"]')).toHaveLength(1);
    expect(document.querySelectorAll("section[data-category]")).toHaveLength(4);
  });

  it("shows the empty state when there are no runs", async () => {
    await mount([]);
    const empty = document.getElementById("empty-state")!;
    expect(empty).not.toBeNull();
    expect(empty.textContent).toContain("pip install metricreg");
    expect(empty.textContent).toContain('mon = metricreg.Monitor("runs/exp")');
    expect(empty.textContent).toContain("mon.step(loss=loss, embeddings=");
    expect(empty.textContent).toContain("tensorboard --logdir runs");
    expect(document.querySelectorAll("section[data-category]")).toHaveLength(0);
    expect(document.body.dataset.metricregReady).toBe("1");
  });

  it("shows a load error and still sets the ready flag", async () => {
    app = new HealthApp({ doc: document, fetch: async () => new Response("boom", { status: 500 }), pollMs: 0, ipc: false });
    document.body.appendChild(app.root);
    await app.start();
    expect(document.getElementById("load-error")!.hidden).toBe(false);
    expect(document.getElementById("load-error")!.textContent).toContain("HTTP 500");
    expect(document.body.dataset.metricregReady).toBe("1");
  });
});
