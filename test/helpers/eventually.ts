export interface WaitOptions {
  /** how often to look again; 100 ms unless told */
  intervalMs?: number;
  /** a check that throws has not held *yet* (a call through a server still restarting), instead of failing the wait at once */
  retryErrors?: boolean;
}

/**
 * The one way tests wait: for the event that matters, never for a fixed time. Polls `check`
 * until it holds; fails naming what did not happen within `timeoutMs` (with the last error, if
 * `retryErrors`). A check that throws fails the wait at once unless `retryErrors` says not to.
 * Deadlines are for a test that is broken, not a measure of speed: make them generous.
 */
export async function eventually(check: () => Promise<boolean> | boolean, timeoutMs: number, what = 'condition', opts: WaitOptions = {}): Promise<void> {
  await eventuallyValue(async () => ((await check()) ? true : undefined), timeoutMs, what, opts);
}

/** As `eventually`, for a value: polls `probe` until it returns one (not undefined) and returns it. */
export async function eventuallyValue<T>(probe: () => Promise<T | undefined>, timeoutMs: number, what = 'value', opts: WaitOptions = {}): Promise<T> {
  const until = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (e) {
      if (opts.retryErrors !== true) throw e;
      last = e;
    }
    if (Date.now() > until) {
      throw new Error(`${what} did not hold within ${timeoutMs} ms${last === undefined ? '' : `: ${String(last)}`}`, { cause: last });
    }
    await new Promise((r) => setTimeout(r, opts.intervalMs ?? 100));
  }
}
