/**
 * A stable colour per run name: the same run always gets the same colour, in every chart and on
 * every reload, independent of which other runs are shown. FNV-1a (32-bit) over UTF-16 code units.
 */

/**
 * Distinct hues readable on light and dark backgrounds (after Paul Tol's "vibrant" and "muted"
 * schemes). Pure red, green and amber are left out: they mean critical / ok / warn here.
 */
export const PALETTE: readonly string[] = [
  "#0077bb",
  "#ee7733",
  "#33bbee",
  "#ee3377",
  "#009988",
  "#aa4499",
  "#999933",
  "#882255",
  "#6699cc",
  "#cc6677",
  "#997700",
];

export function hashString(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

export function colorForRun(run: string): string {
  return PALETTE[hashString(run) % PALETTE.length];
}

/** "#rrggbb" + alpha → "rgba(r, g, b, a)". */
export function withAlpha(hex: string, alpha: number): string {
  const m = /^#([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$/i.exec(hex);
  if (!m) return hex;
  const [r, g, b] = [m[1], m[2], m[3]].map((x) => parseInt(x, 16));
  return `rgba(${r}, ${g}, ${b}, ${alpha})`;
}

/**
 * Colours for the runs shown together. Each run gets its own colorForRun() unless another run of
 * the set already holds it; then the next free palette slot (runs taken in name order, so the
 * result depends only on the set). Every chart of one render uses the same map.
 */
export function assignColors(runs: Iterable<string>): Map<string, string> {
  const names = Array.from(new Set(runs)).sort();
  const taken = new Set<number>();
  const out = new Map<string, string>();
  // First pass: each palette slot goes to the first run (by name) whose own colour it is.
  const wanted = names.map((n) => hashString(n) % PALETTE.length);
  const owner = new Map<number, string>();
  names.forEach((n, i) => {
    if (!owner.has(wanted[i])) owner.set(wanted[i], n);
  });
  for (const [slot, n] of owner) {
    taken.add(slot);
    out.set(n, PALETTE[slot]);
  }
  // Second pass: the others probe for a free slot (wrapping when there are more runs than colours).
  names.forEach((n, i) => {
    if (out.has(n)) return;
    let slot = wanted[i];
    if (taken.size < PALETTE.length) {
      while (taken.has(slot)) slot = (slot + 1) % PALETTE.length;
      taken.add(slot);
    }
    out.set(n, PALETTE[slot]);
  });
  return out;
}
