/**
 * Light or dark, as TensorBoard shows it. TensorBoard toggles `dark-mode` on its own <body> from
 * its theme menu (browser default / light / dark); the plugin iframe is same-origin, so the tab
 * reads that class and watches it. Outside TensorBoard (page opened directly, cross-origin
 * proxy), it follows the OS setting (`prefers-color-scheme`).
 */

export type Theme = "light" | "dark";

/** TensorBoard's <body> when this document is its plugin iframe (same origin), else null. */
export function hostBody(win: Window): HTMLElement | null {
  try {
    const parent = win.parent;
    if (!parent || parent === win) return null;
    const body = parent.document.body;
    return body && parent.document.querySelector("tb-webapp") ? body : null;
  } catch {
    return null; // cross-origin
  }
}

export function currentTheme(win: Window): Theme {
  const body = hostBody(win);
  if (body) return body.classList.contains("dark-mode") ? "dark" : "light";
  return typeof win.matchMedia === "function" && win.matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light";
}

/**
 * Set `data-theme` on the document element now and whenever TensorBoard (or the OS) changes it;
 * `onChange` runs after each change. Returns the disposer.
 */
export function followTheme(doc: Document, onChange: (t: Theme) => void): () => void {
  const win = doc.defaultView;
  if (!win) return () => {};
  let theme = currentTheme(win);
  doc.documentElement.dataset.theme = theme;
  const check = (): void => {
    const next = currentTheme(win);
    if (next === theme) return;
    theme = next;
    doc.documentElement.dataset.theme = theme;
    onChange(theme);
  };
  const disposers: (() => void)[] = [];
  const body = hostBody(win);
  const MO = (body?.ownerDocument.defaultView as (Window & typeof globalThis) | null)?.MutationObserver;
  if (body && MO) {
    const mo = new MO(check);
    mo.observe(body, { attributes: true, attributeFilter: ["class"] });
    disposers.push(() => mo.disconnect());
  }
  if (typeof win.matchMedia === "function") {
    const mq = win.matchMedia("(prefers-color-scheme: dark)");
    mq.addEventListener?.("change", check);
    disposers.push(() => mq.removeEventListener?.("change", check));
  }
  return () => disposers.forEach((d) => d());
}
