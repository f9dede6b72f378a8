/**
 * Entry point of the Health tab. TensorBoard's plugin_entry.html does
 * `import("./index.js").then((m) => void m.render())` once, with no arguments.
 * Nothing here touches the DOM at import time.
 */
import { HealthApp } from "./app";

let app: HealthApp | null = null;

export async function render(): Promise<void> {
  if (app) {
    await app.refresh();
    return;
  }
  app = new HealthApp({ doc: document, fetch: (input, init) => window.fetch(input, init) });
  document.body.appendChild(app.root);
  await app.start();
}
