/** What to show when ./runs has no runs: how to log health metrics. */
import { h } from "./dom";

const CODE = [
  "pip install metricreg",
  "",
  "import metricreg",
  'mon = metricreg.Monitor("runs/exp")',
  "for step, batch in enumerate(loader):",
  "    loss, embeddings = train_step(batch)",
  "    mon.step(loss=loss, embeddings=embeddings)",
  "mon.close()",
].join("\n");

export function renderEmptyState(doc: Document): HTMLElement {
  return h(
    doc,
    "div",
    { id: "empty-state", class: "empty-state" },
    h(doc, "h2", null, "No health metrics found"),
    h(
      doc,
      "p",
      null,
      "None of the runs in this log directory has metricreg health data yet. Log it from your training loop:",
    ),
    h(doc, "pre", null, h(doc, "code", null, CODE)),
    h(doc, "p", null, "Then point TensorBoard at the parent directory and reload:"),
    h(doc, "pre", null, h(doc, "code", null, "tensorboard --logdir runs")),
    h(
      doc,
      "p",
      { class: "muted" },
      "Metrics are computed on their own schedules (e.g. every 100 steps), so the first values appear after the first due step and the writer's next flush.",
    ),
  );
}
