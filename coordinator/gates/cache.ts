import { SharedAnswers } from '../../adapters/bounded-cache.ts';
import type { ImageConfig } from './image-reader.ts';

/** One layer's contribution to the verdict, whatever its place in an image. */
export interface LayerScan {
  /** its last /etc/passwd, null when it has none */
  passwd: string | null;
  /** files that are leaked secrets, in tar order, with why (never the value) */
  secrets: Array<{ path: string; why: string }>;
}

/**
 * What the gates remember between runs. Every key is a content digest (a layer blob, an image
 * config, an official image's manifest), so a remembered answer never goes stale; the bounds
 * only cap memory, forgetting the least recently used first.
 */
export class GateCache {
  /** image configs by config blob digest (the official images', resolved on every run) */
  readonly configs = new SharedAnswers<string, ImageConfig>({ maxEntries: 64 });
  /** the last /etc/passwd in an official image's layers (null: it has none), by its manifest digest */
  readonly basePasswd = new SharedAnswers<string, string | null>({ maxEntries: 64 });
  /** what one app layer holds that the gates look at, by layer blob digest */
  readonly layers = new SharedAnswers<string, LayerScan>({ maxEntries: 4096 });
}

/** The coordinator's: shared by every gate run in this process. */
export const sharedGateCache = new GateCache();

/** `work`, or the abort reason as soon as `signal` aborts (shared work goes on for the others). */
export function abortable<T>(work: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (signal === undefined) return work;
  signal.throwIfAborted();
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason as Error);
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

/** Runs `fn` on every item, at most `limit` at a time; results in the items' order. */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const lanes = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i] as T, i);
    }
  });
  await Promise.all(lanes);
  return results;
}
