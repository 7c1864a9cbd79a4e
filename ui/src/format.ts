/** Times as people read them in a table: local, to the second. */
export function time(iso: string | undefined): string {
  if (iso === undefined) return '';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString(undefined, { dateStyle: 'short', timeStyle: 'medium' });
}

/** How long from `a` to `b` (or now), e.g. `1m 04s`. */
export function duration(a: string, b?: string): string {
  const ms = (b === undefined ? Date.now() : Date.parse(b)) - Date.parse(a);
  if (!Number.isFinite(ms) || ms < 0) return '';
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(m / 60)}h ${String(m % 60).padStart(2, '0')}m`;
}

export const shortDigest = (d: string): string => (d.startsWith('sha256:') ? `sha256:${d.slice(7, 19)}` : d);
