/** Which runs get charts: the run filter, most severe first, capped. */
import { severity } from "./format";
import type { RunSummary } from "./types";

/** Without a filter, chart the first DEFAULT_CAP runs by severity. */
export const DEFAULT_CAP = 20;
/** With a filter, chart every match up to this many. */
export const FILTER_CAP = 100;

/** A case-insensitive regular expression when the text is one, else a substring match. */
export function runMatcher(filter: string): (run: string) => boolean {
  const text = filter.trim();
  if (!text) return () => true;
  try {
    const re = new RegExp(text, "i");
    return (run) => re.test(run);
  } catch {
    const lower = text.toLowerCase();
    return (run) => run.toLowerCase().includes(lower);
  }
}

/** Runs ordered most severe first (critical, warn, ok, none); ties keep the backend's order. */
export function bySeverity(runs: readonly RunSummary[]): RunSummary[] {
  return runs
    .map((r, i) => ({ r, i }))
    .sort((a, b) => severity(b.r.status) - severity(a.r.status) || a.i - b.i)
    .map(({ r }) => r);
}

export interface Selection {
  runs: string[];
  matched: number;
  total: number;
  capped: boolean;
  cap: number;
  filtered: boolean;
}

export function selectRuns(runs: readonly RunSummary[], filter: string): Selection {
  const filtered = filter.trim() !== "";
  const match = runMatcher(filter);
  const matching = bySeverity(runs).filter((r) => match(r.run));
  const cap = filtered ? FILTER_CAP : DEFAULT_CAP;
  return {
    runs: matching.slice(0, cap).map((r) => r.run),
    matched: matching.length,
    total: runs.length,
    capped: matching.length > cap,
    cap,
    filtered,
  };
}

export function selectionNote(sel: Selection): string {
  if (sel.total === 0) return "";
  if (sel.matched === 0) return `No run matches the filter (${sel.total} runs).`;
  if (sel.capped && !sel.filtered) {
    return `Charting the ${sel.runs.length} most severe of ${sel.total} runs. Use the run filter to chart others.`;
  }
  if (sel.capped) {
    return `Charting the first ${sel.runs.length} of ${sel.matched} matching runs (most severe first). Narrow the filter to chart others.`;
  }
  return sel.filtered
    ? `Charting ${sel.runs.length} of ${sel.total} runs matching the filter.`
    : `Charting all ${sel.runs.length} runs.`;
}
