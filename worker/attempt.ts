import type { Logger } from '../adapters/logger.ts';

/**
 * What one delivery holds while it runs (claim, cancel watch, worker state, heartbeat, scratch
 * dir, build log), released in the reverse order of acquiring, in one place, whatever failed and
 * wherever: a resource is registered the moment it exists, so a failure right after it still
 * releases it.
 */
export class Attempt {
  readonly cancel = new AbortController();
  private readonly held: Array<{ what: string; release: () => unknown }> = [];

  constructor(
    readonly number: number,
    private readonly log: Logger,
  ) {}

  hold(what: string, release: () => unknown): void {
    this.held.push({ what, release });
  }

  /** Releases everything held, newest first; one release that fails does not stop the others. */
  async release(): Promise<void> {
    for (let r = this.held.pop(); r !== undefined; r = this.held.pop()) {
      try {
        await r.release();
      } catch (e) {
        this.log.warn({ err: e, resource: r.what }, 'could not release an attempt resource');
      }
    }
  }
}
