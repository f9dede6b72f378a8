/**
 * TensorBoard's `classicSmoothing` (the scalar dashboard's default), point for point, and the
 * same algorithm as metricreg.health.smooth, so the chart shows what the alert rule sees.
 *
 * A debiased exponential moving average over the point index (not the step):
 *   last = last * w + (1 - w) * y;  n += 1;  out = last / (1 - w ** n)   (or last when w == 1)
 * Non-finite points are passed through as-is and leave the state untouched. A series whose every
 * value equals the first is returned unchanged.
 */

export const DEFAULT_SMOOTHING = 0.6;
export const MAX_SMOOTHING = 0.99;

export function classicSmoothing(ys: readonly number[], weight: number = DEFAULT_SMOOTHING): number[] {
  const out = new Array<number>(ys.length);
  if (ys.length === 0) return out;
  const first = ys[0];
  // TensorBoard uses `==` here: a series of NaNs is not "constant", but passes through anyway.
  const isConstant = ys.every((y) => y === first);
  let last = 0;
  let n = 0;
  for (let i = 0; i < ys.length; i++) {
    const y = ys[i];
    if (isConstant || !Number.isFinite(y)) {
      out[i] = y;
      continue;
    }
    last = last * weight + (1 - weight) * y;
    n++;
    out[i] = weight === 1 ? last : last / (1 - Math.pow(weight, n));
  }
  return out;
}

/** Clamp a user-provided weight into the slider's range. */
export function clampSmoothing(w: number): number {
  if (!Number.isFinite(w)) return DEFAULT_SMOOTHING;
  return Math.min(Math.max(w, 0), MAX_SMOOTHING);
}
