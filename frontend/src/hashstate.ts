/**
 * The view state in the URL hash, so a reload or a shared link shows the same view. TensorBoard
 * stores its own state in its page's hash as `#<tab>&key=value&...` (tf_storage: the entry without
 * "=" is the active tab) and keeps keys it does not know; the tab adds `health*` keys there. The
 * plugin iframe is same-origin, so it writes TensorBoard's hash with history.replaceState (no
 * navigation, no hashchange). Opened outside TensorBoard, it uses its own page's hash.
 */
import { clampSmoothing, DEFAULT_SMOOTHING } from "./smoothing";

export type XAxis = "step" | "relative" | "wall";
export const X_AXES: readonly XAxis[] = ["step", "relative", "wall"];

export interface ViewState {
  filter: string;
  smoothing: number;
  /** the selected run ("" for none): charts show only it */
  run: string;
  onlyFailing: boolean;
  logScale: boolean;
  xAxis: XAxis;
  align: boolean;
}

export const DEFAULT_VIEW: ViewState = {
  filter: "",
  smoothing: DEFAULT_SMOOTHING,
  run: "",
  onlyFailing: false,
  logScale: false,
  xAxis: "step",
  align: false,
};

const KEYS: Record<keyof ViewState, string> = {
  filter: "healthFilter",
  smoothing: "healthSmoothing",
  run: "healthRun",
  onlyFailing: "healthFailing",
  logScale: "healthLog",
  xAxis: "healthX",
  align: "healthAlign",
};

interface Entry {
  key: string | null; // null: the tab name
  raw: string;
}

function entries(hash: string): Entry[] {
  const text = hash.startsWith("#") ? hash.slice(1) : hash;
  if (!text) return [];
  return text.split("&").map((part) => {
    const eq = part.indexOf("=");
    if (eq < 0) return { key: null, raw: part };
    let key = part.slice(0, eq);
    try {
      key = decodeURIComponent(key);
    } catch {
      /* keep it raw */
    }
    return { key, raw: part };
  });
}

function value(raw: string): string {
  const v = raw.slice(raw.indexOf("=") + 1);
  try {
    return decodeURIComponent(v);
  } catch {
    return v;
  }
}

/** The view state in `hash`; anything absent or invalid takes its default. */
export function parseViewHash(hash: string): ViewState {
  const found = new Map<string, string>();
  for (const e of entries(hash)) if (e.key !== null) found.set(e.key, value(e.raw));
  const get = (k: keyof ViewState): string | undefined => found.get(KEYS[k]);
  const bool = (k: keyof ViewState): boolean => get(k) === "1" || get(k) === "true";
  const smoothing = get("smoothing");
  const x = get("xAxis");
  return {
    filter: get("filter") ?? "",
    smoothing: smoothing === undefined || smoothing.trim() === "" ? DEFAULT_SMOOTHING : clampSmoothing(Number(smoothing)),
    run: get("run") ?? "",
    onlyFailing: bool("onlyFailing"),
    logScale: bool("logScale"),
    xAxis: X_AXES.includes(x as XAxis) ? (x as XAxis) : "step",
    align: bool("align"),
  };
}

/** `hash` with the view state's non-default values set and everything else kept in place. */
export function writeViewHash(hash: string, state: ViewState): string {
  const ours = new Set(Object.values(KEYS));
  const kept = entries(hash).filter((e) => e.key === null || !ours.has(e.key));
  const parts = kept.map((e) => e.raw);
  for (const k of Object.keys(KEYS) as (keyof ViewState)[]) {
    const v = state[k];
    if (v === DEFAULT_VIEW[k]) continue;
    const text = typeof v === "boolean" ? "1" : typeof v === "number" ? v.toFixed(2) : v;
    parts.push(`${KEYS[k]}=${encodeURIComponent(text)}`);
  }
  return parts.length ? "#" + parts.join("&") : "";
}

/** The window whose hash holds the state: TensorBoard's page when reachable, else our own. */
export function hashWindow(win: Window): Window {
  try {
    const parent = win.parent;
    if (parent && parent !== win && parent.location.href && parent.document.querySelector("tb-webapp")) return parent;
  } catch {
    /* cross-origin: our own hash */
  }
  return win;
}

export function readViewState(win: Window): ViewState {
  return parseViewHash(hashWindow(win).location.hash);
}

/** Replace (not push) the hash: no history entry per keystroke, no navigation in TensorBoard. */
export function saveViewState(win: Window, state: ViewState): void {
  const target = hashWindow(win);
  const next = writeViewHash(target.location.hash, state);
  if (next === target.location.hash || (next === "" && target.location.hash === "#")) return;
  try {
    const url = new URL(target.location.href);
    url.hash = next;
    target.history.replaceState(target.history.state, "", url.toString());
  } catch {
    /* a sandboxed page: the state just is not saved */
  }
}
