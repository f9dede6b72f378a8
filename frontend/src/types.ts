/**
 * The JSON contract of the Health tab routes (docs/ARCHITECTURE.md, "Health tab routes"),
 * after parsing: non-finite numbers are real numbers here, never strings.
 */

export type Level = "ok" | "warn" | "critical";
export type Status = Level | "none";
export type Bound = "below" | "above" | "nonfinite";

export interface Thresholds {
  warn_above: number | null;
  warn_below: number | null;
  critical_above: number | null;
  critical_below: number | null;
}

export interface Alert {
  run: string;
  tag: string;
  metric: string | null;
  category: string;
  level: Level;
  bound: Bound;
  threshold: number | null;
  value: number;
  first_step: number;
  last_step: number;
  active: boolean;
  description: string;
  remedy: string;
  message: string;
  /** the value when the episode started (null when the backend does not say) */
  onset_value: number | null;
  /** the step it became critical, or null */
  critical_step: number | null;
}

export interface MetricError {
  run: string;
  metric: string;
  plugin: string;
  count: number;
  consecutive: number;
  last_message: string;
  disabled: boolean;
  first_step: number | null;
  last_step: number | null;
}

export interface MetricSeries {
  tag: string;
  metric: string | null;
  member: string | null;
  key: string | null;
  split: string | null;
  title: string;
  description: string;
  remedy: string;
  direction: string | null;
  smoothing: number | null;
  persistence: number | null;
  thresholds: Thresholds;
  status: Status;
  last_step: number | null;
  last_value: number | null;
  steps: number[];
  values: number[];
  wall_times: number[];
}

export interface CategoryInfo {
  name: string;
  title: string;
}

export interface RunSummary {
  run: string;
  status: Status;
  has_manifest: boolean;
  last_step: number | null;
  /** A null-prototype map: category names such as `__proto__` are ordinary keys. */
  categories: Record<string, Status>;
  worst_alert: Alert | null;
  alert_count: number;
  error_count: number;
  /** changes whenever anything in the run's data changes; null when the backend has none */
  fingerprint: string | null;
  /** why the run could not be judged (status "unreadable" on the wire), else null */
  unreadable: string | null;
}

export interface RunsResponse {
  runs: RunSummary[];
  categories: CategoryInfo[];
}

export interface RunCategory {
  name: string;
  title: string;
  status: Status;
  metrics: MetricSeries[];
}

/** One metric's training-thread cost (`/run`'s `cost` list; metricreg/cost.py `cost_view`). */
export interface CostRow {
  metric: string;
  plugin: string | null;
  /** mean milliseconds per call; null while its first call has not returned (hung) */
  mean_ms: number | null;
  step: number | null;
  /** its part of `total_ms`, 0..1; null without a mean */
  share: number | null;
  /** the first call over the Monitor's budget, or null */
  over_budget: { step: number | null; ms: number | null } | null;
  /** the call that blocked `Monitor.step` past `hang_after` (returned: it came back), or null */
  hung: { step: number | null; seconds: number | null; returned: boolean } | null;
}

export interface RunCost {
  /** costliest first; a metric hung right now before everything */
  rows: CostRow[];
  /** the latest means summed: what one due call of each metric costs the training thread */
  total_ms: number;
  budget_ms: number | null;
  hang_after_s: number | null;
  /** why the over-budget/hung record could not be read, else null */
  problem: string | null;
}

export interface RunDetail {
  run: string;
  status: Status;
  smoothing: number | null;
  categories: RunCategory[];
  alerts: Alert[];
  errors: MetricError[];
  cost: RunCost;
}
