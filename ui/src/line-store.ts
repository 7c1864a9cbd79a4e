import type { LogRows } from './log-rows.ts';

const decoder = new TextDecoder();

/**
 * Every line of a log, kept as the worker sent them: UTF-8 bytes with end offsets, one chunk per
 * batch. A line becomes a string only when asked for (a row drawn, a search, the download), so
 * the page pays per line drawn, not per line arrived, and 200,000 lines take their bytes, not
 * 200,000 strings.
 */
export class LineStore {
  private readonly chunks: { first: number; bytes: Uint8Array; ends: Uint32Array }[] = [];
  private count = 0;
  /** the chunk the last lookup found: rows are drawn in runs, so the next is usually in it */
  private hint = 0;

  get length(): number {
    return this.count;
  }

  push(rows: LogRows): void {
    if (rows.ends.length === 0) return;
    this.chunks.push({ first: this.count, bytes: rows.bytes, ends: rows.ends });
    this.count += rows.ends.length;
  }

  /** Line `i` (0-based); '' past the end. */
  text(i: number): string {
    if (i < 0 || i >= this.count) return '';
    let c = this.chunks[this.hint];
    if (c === undefined || i < c.first || i >= c.first + c.ends.length) {
      let lo = 0;
      let hi = this.chunks.length - 1;
      while (lo < hi) {
        const mid = (lo + hi + 1) >> 1;
        if ((this.chunks[mid]?.first ?? 0) <= i) lo = mid;
        else hi = mid - 1;
      }
      this.hint = lo;
      c = this.chunks[lo];
      if (c === undefined) return '';
    }
    const k = i - c.first;
    return decoder.decode(c.bytes.subarray(k === 0 ? 0 : (c.ends[k - 1] ?? 0), c.ends[k] ?? 0));
  }
}
