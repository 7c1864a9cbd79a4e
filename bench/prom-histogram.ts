/**
 * A Prometheus histogram read from a /metrics scrape, as Prometheus itself would: the bench reads
 * the coordinator's own answer times where an operator would, not through a hook of its own.
 */

/** One series' cumulative counts by upper bound (seconds; +Inf last). */
export type Buckets = Map<number, number>;

/** The buckets of `metric` whose labels include every one of `labels` (e.g. `api="claim"`). */
export function histogramBuckets(text: string, metric: string, labels: string[]): Buckets {
  const buckets: Buckets = new Map();
  const prefix = `${metric}_bucket{`;
  for (const line of text.split('\n')) {
    if (!line.startsWith(prefix)) continue;
    const close = line.indexOf('} ');
    const names = line.slice(prefix.length, close).split(',');
    if (!labels.every((l) => names.includes(l))) continue;
    const le = names.find((n) => n.startsWith('le="'))?.slice(4, -1);
    if (le === undefined) continue;
    buckets.set(le === '+Inf' ? Infinity : Number(le), Number(line.slice(close + 2)));
  }
  return buckets;
}

/**
 * The smallest bucket bound holding a share `q` of the observations made between two scrapes
 * (`before` may be empty): "p99 ≤ 25 ms", as exact as the buckets are. NaN if there were none.
 */
export function bucketQuantile(before: Buckets, after: Buckets, q: number): number {
  const bounds = [...after.keys()].sort((a, b) => a - b);
  const delta = (le: number): number => (after.get(le) ?? 0) - (before.get(le) ?? 0);
  const total = delta(Infinity);
  if (!(total > 0)) return NaN;
  return bounds.find((le) => delta(le) >= q * total) ?? Infinity;
}

/** A bucket bound in ms for a table: `10 ms`, `2.5 ms`; `∞` past the last bucket, `none` with no observations. */
export const bucketBoundMs = (v: number): string => (Number.isFinite(v) ? `${Number(v.toFixed(1))} ms` : Number.isNaN(v) ? 'none' : '∞');
