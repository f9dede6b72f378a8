/**
 * Links from a Health chart to the same tag in TensorBoard's own dashboards. The plugin iframe
 * lives at `<tb>/data/plugin_entry.html`, so TensorBoard's root is one level up. Time Series
 * reads `tagFilter` (and `runFilter`) from the query string; the Scalars dashboard reads
 * `tagFilter` from its hash (tf_storage).
 */

export function regexEscape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

export function tensorboardRoot(href: string): string {
  return new URL("../", href).toString();
}

export function timeSeriesUrl(root: string, tag: string, run?: string): string {
  const q = new URLSearchParams({ tagFilter: `^${regexEscape(tag)}$` });
  if (run) q.set("runFilter", `^${regexEscape(run)}$`);
  return `${root}?${q.toString()}#timeseries`;
}

export function scalarsUrl(root: string, tag: string): string {
  return `${root}#scalars&tagFilter=${encodeURIComponent(`^${regexEscape(tag)}$`)}`;
}
