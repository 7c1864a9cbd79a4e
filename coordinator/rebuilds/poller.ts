import type { Logger } from '../../adapters/logger.ts';
import type { DependencyIndex } from './dependency-index.ts';
import type { RebuildTrigger } from './trigger.ts';

/**
 * For registries that cannot call (Docker Hub, upstream mirrors): every `intervalMs`, give or
 * take `jitter` (so replicas and fleets do not all ask at once), look at each tag some promoted
 * build follows. The trigger HEADs it and compares `Docker-Content-Digest` with what the
 * dependents were built on; a change it already knows of (from a notification) is the same wave.
 */
export class BasePoller {
  private timer: NodeJS.Timeout | null = null;
  private round: Promise<void> = Promise.resolve();

  constructor(
    private readonly index: DependencyIndex,
    private readonly trigger: RebuildTrigger,
    private readonly intervalMs: number,
    private readonly jitter: number,
    private readonly signal: AbortSignal,
    private readonly log: Logger,
    private readonly random: () => number = Math.random,
  ) {}

  start(): void {
    if (this.intervalMs <= 0) return;
    this.schedule();
    this.signal.addEventListener('abort', () => this.timer !== null && clearTimeout(this.timer), { once: true });
  }

  /** Waits for a round in progress. */
  settled(): Promise<void> {
    return this.round;
  }

  private schedule(): void {
    if (this.signal.aborted) return;
    const spread = this.intervalMs * this.jitter * (2 * this.random() - 1);
    this.timer = setTimeout(() => {
      this.round = this.poll().finally(() => this.schedule());
    }, Math.max(0, Math.round(this.intervalMs + spread)));
  }

  private async poll(): Promise<void> {
    try {
      const bases = await this.index.watchedBases();
      for (const base of bases) {
        if (this.signal.aborted) return;
        await this.trigger.check(base, 'poller');
      }
      this.log.debug({ bases: bases.length }, 'polled watched bases');
    } catch (e) {
      if (!this.signal.aborted) this.log.warn({ err: e }, 'base poll failed; next round tries again');
    }
  }
}
