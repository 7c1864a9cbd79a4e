import type { JetStreamManager } from '@nats-io/jetstream';
import type { KV } from '@nats-io/kv';
import { buckets, WorkerInfo } from '../protocol/index.ts';

const PREFIX = `$KV.${buckets.workers}.`;

/**
 * Every announced worker (`fleet workers`, the console's /v1/workers). The keys come from the
 * bucket stream's per-subject state, one request, not from `kv.keys()`: its ordered consumer
 * waits for every key it counted, so a killed worker's entry that the bucket's TTL removed
 * mid-listing could leave the listing waiting until the caller's timeout. A key gone by the time
 * it is read is skipped.
 */
export async function listWorkers(jsm: JetStreamManager, workers: KV): Promise<WorkerInfo[]> {
  const info = await jsm.streams.info(`KV_${buckets.workers}`, { subjects_filter: `${PREFIX}>` });
  const list: WorkerInfo[] = [];
  for (const subject of Object.keys(info.state.subjects ?? {})) {
    const entry = await workers.get(subject.slice(PREFIX.length));
    if (entry === null || entry.operation !== 'PUT') continue;
    const parsed = WorkerInfo.safeParse(entry.json());
    if (parsed.success) list.push(parsed.data);
  }
  return list.sort((a, b) => a.workerId.localeCompare(b.workerId));
}
