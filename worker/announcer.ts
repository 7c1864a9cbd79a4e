import type { KV } from '@nats-io/kv';
import { encode, workerKey, type WorkerInfo } from '../protocol/index.ts';
import type { Logger } from '../adapters/logger.ts';

/**
 * Keeps this worker's entry in the workers bucket fresh. The bucket's TTL removes the entry of a
 * worker that stops announcing (crashed, partitioned), so `fleet workers` never lists ghosts.
 */
export class Announcer {
  private info: WorkerInfo;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly kv: KV,
    base: Pick<WorkerInfo, 'workerId' | 'pool' | 'builder' | 'version'>,
    private readonly intervalMs: number,
    private readonly log: Logger,
  ) {
    const now = new Date().toISOString();
    this.info = { ...base, state: 'idle', since: now, at: now };
  }

  /** Resolves once the worker is registered: the coordinator accepts claims only from registered workers. */
  async start(): Promise<void> {
    this.info = { ...this.info, at: new Date().toISOString() };
    await this.kv.put(this.key, encode(this.info));
    this.timer = setInterval(() => this.put(), this.intervalMs);
  }

  private get key(): string {
    return workerKey(this.info.pool, this.info.workerId);
  }

  set(state: WorkerInfo['state'], buildId?: string): void {
    const next: WorkerInfo = { ...this.info, state, since: new Date().toISOString() };
    if (buildId === undefined) delete next.buildId;
    else next.buildId = buildId;
    this.info = next;
    this.put();
  }

  async stop(): Promise<void> {
    if (this.timer !== null) clearInterval(this.timer);
    await this.kv.delete(this.key).catch(() => undefined);
  }

  private put(): void {
    this.info = { ...this.info, at: new Date().toISOString() };
    this.kv.put(this.key, encode(this.info)).catch((e: unknown) => this.log.warn({ err: e }, 'could not announce this worker'));
  }
}
