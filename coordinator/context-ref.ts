import { ErrorCode, FleetError, type BuildRequest } from '../protocol/index.ts';
import { contextKey } from '../adapters/s3-store.ts';

/** The key of a request's context in the fleet's bucket: its content address, or the url it names. */
export function contextKeyOf(request: BuildRequest, bucket: string): string {
  const url = request.context.url;
  if (url === undefined) return contextKey(request.context.digest);
  const [, urlBucket, key] = /^s3:\/\/([^/]+)\/(.+)$/.exec(url) ?? [];
  if (urlBucket !== bucket || key === undefined) {
    throw new FleetError(ErrorCode.E_INVALID_REQUEST, `invalid build request: context.url: must be in the fleet's bucket s3://${bucket}/`, {
      issues: [{ path: 'context.url', message: `must be in s3://${bucket}/` }],
    });
  }
  return key;
}

export interface ContextPresenceOptions {
  /** how long a context seen in S3 is believed to still be there */
  ttlMs: number;
  /** contexts remembered at most; the least recently seen is forgotten first */
  maxEntries: number;
  now?: () => number;
}

/**
 * Whether a context is in S3, asking S3 as little as possible: a HEAD per request was the
 * intake's most expensive step. Only content addresses are remembered, and only their presence:
 * those bytes never change under their key, so a positive answer stays true until the bucket's
 * lifecycle expires the object (far longer than `ttlMs`; a worker that then misses it fails the
 * build with E_CONTEXT_MISSING, as it would for a context deleted mid-queue). Absence is never
 * remembered, so an upload is usable at once. Concurrent asks for one key share one HEAD.
 */
export class ContextPresence {
  private readonly seen = new Map<string, { size: number; until: number }>();
  private readonly asking = new Map<string, Promise<{ size: number } | null>>();
  private readonly now: () => number;

  constructor(
    private readonly head: (key: string) => Promise<{ size: number } | null>,
    private readonly options: ContextPresenceOptions,
  ) {
    this.now = options.now ?? Date.now;
  }

  /** S3's answer for `key`; `contentAddressed` says whether it may be remembered. */
  async lookup(key: string, contentAddressed: boolean): Promise<{ size: number } | null> {
    if (!contentAddressed) return this.head(key);
    const hit = this.seen.get(key);
    if (hit !== undefined) {
      this.seen.delete(key);
      if (hit.until > this.now()) {
        this.seen.set(key, hit);
        return { size: hit.size };
      }
    }
    let pending = this.asking.get(key);
    if (pending === undefined) {
      pending = this.head(key).finally(() => this.asking.delete(key));
      this.asking.set(key, pending);
    }
    const found = await pending;
    if (found !== null) this.remember(key, found.size);
    return found;
  }

  private remember(key: string, size: number): void {
    this.seen.delete(key);
    while (this.seen.size >= this.options.maxEntries) {
      const oldest = this.seen.keys().next();
      if (oldest.done === true) break;
      this.seen.delete(oldest.value);
    }
    this.seen.set(key, { size, until: this.now() + this.options.ttlMs });
  }
}
