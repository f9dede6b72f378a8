/**
 * Section order: Collapse, EMA, Generalization gap first, then every other category the backend
 * returns, in its order. Nothing is hard-coded beyond that preference: unknown categories still
 * get a section.
 */
import type { CategoryInfo } from "./types";

const PREFERRED: readonly RegExp[] = [/collapse/i, /\bema\b|^ema|ema$|moving.?average/i, /generali[sz]ation|\bgap\b/i];

function rank(c: CategoryInfo): number {
  for (let i = 0; i < PREFERRED.length; i++) {
    if (PREFERRED[i].test(c.name) || PREFERRED[i].test(c.title)) return i;
  }
  return PREFERRED.length;
}

export function orderCategories(categories: readonly CategoryInfo[]): CategoryInfo[] {
  return categories
    .map((c, i) => ({ c, i, r: rank(c) }))
    .sort((a, b) => a.r - b.r || a.i - b.i)
    .map(({ c }) => c);
}

/** Union by name, first occurrence wins (keeps the backend's titles). */
export function mergeCategories(...lists: ReadonlyArray<readonly CategoryInfo[]>): CategoryInfo[] {
  const seen = new Map<string, CategoryInfo>();
  for (const list of lists) for (const c of list) if (!seen.has(c.name)) seen.set(c.name, c);
  return Array.from(seen.values());
}
