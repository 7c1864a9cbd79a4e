import type { Dependent, NoticedBy } from '../../protocol/index.ts';
import { baseNameOf } from './base-name.ts';
import type { Logger } from '../../adapters/logger.ts';
import type { DependencyIndex } from './dependency-index.ts';
import type { Waves } from './waves.ts';

/** Reads what a tag names now, from the registry (null: no such tag). */
export type TagDigest = (base: string, signal: AbortSignal) => Promise<string | null>;

/**
 * The one way a base change becomes a wave, whoever noticed it (a registry notification, the
 * poller, a promotion here). A notice is only a hint: notifications are best-effort and
 * unordered, so the tag's digest is read from the registry itself, and every dependent not built
 * on that digest is in the wave. Notices of one base are debounced (several tags of one push, a
 * burst of redelivered notifications: one look); the wave's key (base, digest) makes the same
 * change one wave however often and by whomever it is noticed.
 */
export class RebuildTrigger {
  private readonly pending = new Map<string, { timer: NodeJS.Timeout; noticedBy: NoticedBy; noticedAt: string }>();
  private readonly inFlight = new Set<Promise<void>>();
  /** completed looks at a base (notices after debounce, polls): for operators and tests to see the trigger work */
  looks = 0;

  constructor(
    private readonly index: DependencyIndex,
    private readonly waves: Waves,
    private readonly tagDigest: TagDigest,
    private readonly debounceMs: number,
    /** the fleet's registry: where the dependents' own images are */
    private readonly registryHost: string,
    private readonly signal: AbortSignal,
    private readonly log: Logger,
  ) {}

  /** A hint that `base` (`host/repository:tag`) may have moved. Returns at once. */
  notice(base: string, noticedBy: NoticedBy): void {
    if (this.signal.aborted || this.pending.has(base)) return;
    const noticedAt = new Date().toISOString();
    const timer = setTimeout(() => {
      this.pending.delete(base);
      this.track(this.check(base, noticedBy, noticedAt));
    }, this.debounceMs);
    this.pending.set(base, { timer, noticedBy, noticedAt });
  }

  /** Looks now (the poller's path: it has already waited its interval). */
  async check(base: string, noticedBy: NoticedBy, noticedAt = new Date().toISOString()): Promise<void> {
    try {
      // Most pushes are of images nothing is built on: no registry round trip for them.
      const dependents = await this.index.dependentsOf(base);
      if (dependents.length === 0) return;
      const digest = await this.tagDigest(base, this.signal);
      if (digest === null) return;
      const stale = dependents.filter((d) => d.baseDigest !== digest);
      if (stale.length === 0) return;
      await this.waves.start(base, digest, await this.direct(stale), noticedBy, noticedAt);
    } catch (e) {
      if (!this.signal.aborted) this.log.warn({ err: e, base, noticedBy }, 'could not look at a base change; the next notice or poll looks again');
    } finally {
      this.looks++;
    }
  }

  /**
   * Bases before dependents: a dependent that also follows another member of this wave (a
   * multi-stage app on both official/base and a custom base built on it) is left to that member's
   * own wave, which its new digest starts when its rebuild is promoted; so it is rebuilt once, on
   * both new bases.
   */
  private async direct(stale: readonly Dependent[]): Promise<Dependent[]> {
    const rebuilt = new Set(stale.flatMap((d) => d.tags.map((t) => baseNameOf(this.registryHost, d.repository, t))));
    const direct: Dependent[] = [];
    for (const d of stale) {
      const follows = await this.index.basesOf(d.repository, d.tags);
      if (!follows.some((b) => rebuilt.has(b))) direct.push(d);
    }
    return direct;
  }

  /** Drops pending notices and waits for looks in progress. */
  async close(): Promise<void> {
    for (const { timer } of this.pending.values()) clearTimeout(timer);
    this.pending.clear();
    await Promise.all(this.inFlight);
  }

  private track(p: Promise<void>): void {
    this.inFlight.add(p);
    void p.finally(() => this.inFlight.delete(p));
  }
}
