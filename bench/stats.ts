/** Middle value of the samples (mean of the two middle ones for an even count). */
export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

/**
 * Half the range of the samples relative to their median, so "±3%" means
 * every repetition fell within 3% of the median. Undefined for one sample.
 */
export function spread(values: readonly number[]): number | undefined {
  if (values.length < 2) return undefined;
  const m = median(values);
  if (!Number.isFinite(m) || m === 0) return undefined;
  return (Math.max(...values) - Math.min(...values)) / 2 / Math.abs(m);
}

/** Nearest-rank percentile; `p` in 0..100. Sorts `values` in place. */
export function percentileInPlace(values: Float64Array | number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  values.sort((a, b) => a - b);
  const rank = Math.min(values.length - 1, Math.max(0, Math.ceil((p / 100) * values.length) - 1));
  return values[rank];
}
