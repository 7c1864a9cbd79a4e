import type { Logger } from '../../adapters/logger.ts';

/** How long a worker that stops waits for the layer-cache pushes still running. */
const DRAIN_MS = 120_000;

/**
 * Work a builder does after the build is reported (pushing the app's layer cache back to the
 * registry), one chain per key (a cache directory): a later build that uses the same directory
 * waits for it (`settled`), other builds do not. Failures are logged, never thrown: the cache is
 * an optimisation, its push costs nothing but the next fresh worker's warm start. The worker's
 * stop waits for all of it (`drain`), bounded, so a stopped worker has pushed what it built.
 */
export class BackgroundSyncs {
  private readonly chains = new Map<string, Promise<void>>();
  private readonly lifetime = new AbortController();

  constructor(private readonly log: Logger) {}

  /** Signal for the work: aborted only when a drain gives up. */
  get signal(): AbortSignal {
    return this.lifetime.signal;
  }

  /** Queues `task` behind whatever runs for `key`. */
  run(key: string, what: string, task: (signal: AbortSignal) => Promise<void>): void {
    const previous = this.chains.get(key) ?? Promise.resolve();
    const next = previous.then(() => task(this.lifetime.signal)).catch((e: unknown) => {
      this.log.warn({ err: e, key }, `${what} failed`);
    });
    this.chains.set(key, next);
    void next.then(() => {
      if (this.chains.get(key) === next) this.chains.delete(key);
    });
  }

  /** Resolves once nothing runs for `key` (never rejects). */
  async settled(key: string): Promise<void> {
    await this.chains.get(key);
  }

  /** Waits for every chain; past `ms` aborts what still runs. */
  async drain(ms: number = DRAIN_MS): Promise<void> {
    const all = Promise.all(this.chains.values());
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((resolve) => {
      timer = setTimeout(() => resolve('late'), ms);
    });
    try {
      if ((await Promise.race([all.then(() => 'done' as const), late])) === 'late') {
        this.log.warn({ pending: this.chains.size }, 'layer-cache pushes still running at stop; aborted');
        this.lifetime.abort();
        await all;
      }
    } finally {
      clearTimeout(timer);
    }
  }
}
