import type { KV } from '@nats-io/kv';
import { BuildRecord, isTerminal } from '../../protocol/index.ts';
import type { Logger } from '../../adapters/logger.ts';

/**
 * How many builds each tenant has queued or running, kept from a watch of the builds bucket (so
 * every coordinator replica sees every replica's builds). It trails a write by a moment: a burst
 * of concurrent submits can pass a limit by the few that race it, never by more.
 */
export class ActiveBuilds {
  private readonly byTenant = new Map<string, Set<string>>();
  private stopWatch: (() => void) | null = null;

  static async watch(kv: KV, log: Logger): Promise<ActiveBuilds> {
    const active = new ActiveBuilds();
    const watch = await kv.watch();
    active.stopWatch = () => watch.stop();
    void (async () => {
      for await (const entry of watch) {
        if (entry.operation !== 'PUT') {
          active.forget(entry.key);
          continue;
        }
        const parsed = BuildRecord.safeParse(entry.json());
        if (parsed.success) active.apply(parsed.data);
      }
    })().catch((e: unknown) => log.warn({ err: e }, 'active-builds watch ended; tenant limits use what it last saw'));
    return active;
  }

  apply(record: BuildRecord): void {
    const ids = this.byTenant.get(record.tenant) ?? new Set<string>();
    if (isTerminal(record.state.phase)) ids.delete(record.id);
    else ids.add(record.id);
    this.byTenant.set(record.tenant, ids);
  }

  count(tenant: string): number {
    return this.byTenant.get(tenant)?.size ?? 0;
  }

  close(): void {
    this.stopWatch?.();
  }

  private forget(id: string): void {
    for (const ids of this.byTenant.values()) ids.delete(id);
  }
}
