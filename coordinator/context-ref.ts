import { ErrorCode, FleetError, type BuildRequest } from '../protocol/index.ts';
import { contextKey } from '../adapters/s3-store.ts';
import { SharedAnswers } from '../adapters/bounded-cache.ts';

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
  private readonly seen: SharedAnswers<string, { size: number } | null>;

  constructor(
    private readonly head: (key: string) => Promise<{ size: number } | null>,
    options: ContextPresenceOptions,
  ) {
    this.seen = new SharedAnswers(options, (found) => found !== null);
  }

  /** S3's answer for `key`; `contentAddressed` says whether it may be remembered. */
  async lookup(key: string, contentAddressed: boolean): Promise<{ size: number } | null> {
    if (!contentAddressed) return this.head(key);
    const found = await this.seen.get(key, () => this.head(key));
    return found === null ? null : { size: found.size };
  }
}
