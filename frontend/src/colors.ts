/**
 * Run colours as TensorBoard draws them. TensorBoard keeps its run colours inside its own store
 * (not exposed to plugin iframes), so the tab reproduces its rule: runs in the order of
 * TensorBoard's run list (`/data/runs`) take its default palette in order (with the palette's
 * dark-mode variants). TensorBoard repeats after 7 runs; here the next runs get generated colours
 * (golden-angle hues, alternating lightness) so no two runs of one logdir share a colour.
 */

/** TensorBoard's default palette (webapp settings `colorPalette`, "Default"), in order. */
export const TB_PALETTE: readonly { light: string; dark: string }[] = [
  { light: "#425066", dark: "#8e98a3" },
  { light: "#12b5cb", dark: "#12b5cb" },
  { light: "#e52592", dark: "#e52592" },
  { light: "#f9ab00", dark: "#f9ab00" },
  { light: "#9334e6", dark: "#9334e6" },
  { light: "#7cb342", dark: "#7cb342" },
  { light: "#e8710a", dark: "#e8710a" },
];

function hslToHex(h: number, s: number, l: number): string {
  const a = s * Math.min(l, 1 - l);
  const f = (n: number): string => {
    const k = (n + h / 30) % 12;
    const c = l - a * Math.max(-1, Math.min(k - 3, 9 - k, 1));
    return Math.round(255 * c)
      .toString(16)
      .padStart(2, "0");
  };
  return `#${f(0)}${f(8)}${f(4)}`;
}

/** The colour of the run at `index` in TensorBoard's run order. */
export function colorAt(index: number, dark = false): string {
  if (index < TB_PALETTE.length) return dark ? TB_PALETTE[index].dark : TB_PALETTE[index].light;
  const k = index - TB_PALETTE.length;
  const hue = (17 + k * 137.508) % 360;
  const light = [0.42, 0.32, 0.52][k % 3] + (dark ? 0.18 : 0);
  return hslToHex(hue, 0.7, Math.min(light, 0.78));
}

/**
 * Colours for `runs`: by position in `order` (TensorBoard's run list) when a run is in it; runs it
 * lacks follow in name order. The result depends only on the logdir, not on which runs are shown.
 */
export function assignColors(order: readonly string[] | null, runs: Iterable<string>, dark = false): Map<string, string> {
  const position = new Map<string, number>();
  for (const r of order ?? []) if (!position.has(r)) position.set(r, position.size);
  const extra = Array.from(new Set(runs))
    .filter((r) => !position.has(r))
    .sort();
  for (const r of extra) position.set(r, position.size);
  const out = new Map<string, string>();
  for (const r of runs) out.set(r, colorAt(position.get(r)!, dark));
  return out;
}

/** "#rrggbb" + alpha → "rgba(r, g, b, a)". */
export function withAlpha(hex: string, alpha: number): string {
  const m = /^#([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$/i.exec(hex);
  if (!m) return hex;
  const [r, g, b] = [m[1], m[2], m[3]].map((x) => parseInt(x, 16));
  return `rgba(${r}, ${g}, ${b}, ${alpha})`;
}
