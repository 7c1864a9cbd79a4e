/**
 * Bounded, per-key ordered concurrency: tasks with the same key run one after another in the
 * order they were added; tasks with different keys run at the same time. At most `bound` tasks
 * are held at once (running or waiting behind their key), and `admit()` resolves only when there
 * is room, so a caller that awaits it before taking the next message stops pulling when full.
 *
 * Pure (no NATS, no clock): the report loop uses it so reports of one build stay in order while
 * reports of different builds are applied concurrently.
 */
export class KeyedLanes {
  /** the last task queued per key: the next one of that key chains behind it */
  private readonly tails = new Map<string, Promise<void>>();
  private held = 0;
  private waiters: Array<() => void> = [];
  private idleWaiters: Array<() => void> = [];

  constructor(private readonly bound: number) {
    if (!Number.isInteger(bound) || bound < 1) throw new RangeError(`bound must be a positive integer, got ${bound}`);
  }

  /** tasks held now (running, or queued behind an earlier task of their key) */
  get size(): number {
    return this.held;
  }

  /** Resolves once one more task may be added without going over the bound (one admitter at a time). */
  async admit(): Promise<void> {
    while (this.held >= this.bound) await new Promise<void>((resolve) => this.waiters.push(resolve));
  }

  /**
   * Adds a task under `key`; it starts once every earlier task of that key has settled. The task
   * must not throw (settle its own errors): a rejection is swallowed so the lane goes on.
   * Returns when the task has settled.
   */
  run(key: string, task: () => Promise<void>): Promise<void> {
    this.held += 1;
    const previous = this.tails.get(key) ?? Promise.resolve();
    const settled = previous.then(task).then(
      () => undefined,
      () => undefined,
    );
    this.tails.set(key, settled);
    void settled.then(() => {
      // Only the last task of a key removes it: a later one has replaced the tail meanwhile.
      if (this.tails.get(key) === settled) this.tails.delete(key);
      this.held -= 1;
      this.waiters.shift()?.();
      if (this.held === 0) for (const idle of this.idleWaiters.splice(0)) idle();
    });
    return settled;
  }

  /** Resolves when no task is held (for a drain at shutdown). */
  idle(): Promise<void> {
    if (this.held === 0) return Promise.resolve();
    return new Promise<void>((resolve) => this.idleWaiters.push(resolve));
  }

  /** keys with a task held now (for tests and metrics) */
  get keys(): number {
    return this.tails.size;
  }
}
