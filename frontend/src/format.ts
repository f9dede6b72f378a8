/** Text for numbers, steps, thresholds and alert values. Pure functions, no DOM. */
import type { Alert, Status, Thresholds } from "./types";

/** A compact, stable number: 4 significant digits, exponent for very large/small magnitudes. */
export function formatNumber(v: number | null | undefined): string {
  if (v === null || v === undefined) return "—";
  if (Number.isNaN(v)) return "NaN";
  if (v === Infinity) return "Infinity";
  if (v === -Infinity) return "-Infinity";
  if (v === 0) return "0";
  const abs = Math.abs(v);
  if (abs >= 1e6 || abs < 1e-4) {
    // "1.23e+7" / "4.5e-5": strip trailing zeros of the mantissa.
    const [mant, exp] = v.toExponential(2).split("e");
    return `${mant.replace(/\.?0+$/, "")}e${exp}`;
  }
  return String(Number(v.toPrecision(4)));
}

/** Steps are integers; shown plainly ("step 1200") so they can be searched for verbatim. */
export function formatStep(step: number | null | undefined): string {
  if (step === null || step === undefined || !Number.isFinite(step)) return "—";
  return String(Math.round(step));
}

export interface ThresholdPart {
  level: "warn" | "critical";
  text: string;
}

/** One part per threshold, most severe first: "< 0.1 critical", "< 0.5 warn", "> 10 warn". */
export function thresholdParts(t: Thresholds): ThresholdPart[] {
  const parts: ThresholdPart[] = [];
  if (t.critical_below !== null) parts.push({ level: "critical", text: `< ${formatNumber(t.critical_below)} critical` });
  if (t.critical_above !== null) parts.push({ level: "critical", text: `> ${formatNumber(t.critical_above)} critical` });
  if (t.warn_below !== null) parts.push({ level: "warn", text: `< ${formatNumber(t.warn_below)} warn` });
  if (t.warn_above !== null) parts.push({ level: "warn", text: `> ${formatNumber(t.warn_above)} warn` });
  return parts;
}

export function thresholdText(t: Thresholds): string {
  const parts = thresholdParts(t);
  return parts.length ? parts.map((p) => p.text).join(", ") : "no thresholds";
}

export function hasThresholds(t: Thresholds): boolean {
  return thresholdParts(t).length > 0;
}

/** "0.06 < 0.1", "12 > 10", "NaN (non-finite)". */
export function alertValueText(a: Pick<Alert, "bound" | "value" | "threshold">): string {
  if (a.bound === "nonfinite") return `${formatNumber(a.value)} (non-finite)`;
  const op = a.bound === "below" ? "<" : ">";
  return a.threshold === null ? formatNumber(a.value) : `${formatNumber(a.value)} ${op} ${formatNumber(a.threshold)}`;
}

/** "steps 300–500" or "since step 300" for an active alert. */
export function alertStepsText(a: Pick<Alert, "first_step" | "last_step" | "active">): string {
  return a.active
    ? `since step ${formatStep(a.first_step)}`
    : `step ${formatStep(a.first_step)} to ${formatStep(a.last_step)}`;
}

const STATUS_LABELS: Record<Status, string> = { ok: "ok", warn: "warn", critical: "critical", none: "none" };

export function statusLabel(s: Status): string {
  return STATUS_LABELS[s];
}

const RANK: Record<Status, number> = { none: -1, ok: 0, warn: 1, critical: 2 };

export function severity(s: Status): number {
  return RANK[s];
}

/** The most severe of some statuses ("none" when there are none). */
export function worstStatus(statuses: Iterable<Status>): Status {
  let best: Status = "none";
  for (const s of statuses) if (RANK[s] > RANK[best]) best = s;
  return best;
}

/** A duration in seconds as "45s", "12.5 min", "3.2 h" (relative-time axes). */
export function formatDuration(sec: number | null | undefined): string {
  if (sec === null || sec === undefined || !Number.isFinite(sec)) return "—";
  const abs = Math.abs(sec);
  if (abs < 120) return `${Number(sec.toPrecision(3))}s`;
  if (abs < 7200) return `${Number((sec / 60).toPrecision(3))} min`;
  return `${Number((sec / 3600).toPrecision(3))} h`;
}

/** A fraction of a run's length as "42%" (the aligned axis). */
export function formatPercent(f: number | null | undefined): string {
  if (f === null || f === undefined || !Number.isFinite(f)) return "—";
  return `${Number((f * 100).toPrecision(3))}%`;
}
