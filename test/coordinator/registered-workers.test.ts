import type { KV, KvEntry } from '@nats-io/kv';
import { describe, expect, it } from 'vitest';
import { RegisteredWorkers, UNKNOWN_BUILDER } from '../../coordinator/registered-workers.ts';
import { workerKey, type WorkerInfo } from '../../protocol/index.ts';

/** A workers bucket holding `present` keys (each with the entry's JSON body), counting reads. */
function bucket(present: Set<string>, bodies = new Map<string, string>()): { kv: Pick<KV, 'get'>; reads: () => number } {
  let reads = 0;
  return {
    kv: {
      get: (key: string) => {
        reads += 1;
        const json = (): unknown => JSON.parse(bodies.get(key) ?? '{}');
        return Promise.resolve(present.has(key) ? ({ operation: 'PUT', json } as unknown as KvEntry) : null);
      },
    },
    reads: () => reads,
  };
}

const info = (workerId: string, builder: string): string =>
  JSON.stringify({ workerId, pool: 'p', builder, version: '1', state: 'idle', since: '2026-11-30T00:00:00.000Z', at: '2026-11-30T00:00:00.000Z' } satisfies WorkerInfo);

describe('RegisteredWorkers', () => {
  it('remembers a yes for its TTL, never a no', async () => {
    const present = new Set<string>();
    const { kv, reads } = bucket(present);
    let now = 1_000;
    const registered = new RegisteredWorkers(kv, 5_000, 10, () => now);
    expect(await registered.has('p', 'w1')).toBe(false);
    present.add(workerKey('p', 'w1'));
    expect(await registered.has('p', 'w1')).toBe(true);
    expect(await registered.has('p', 'w1')).toBe(true);
    expect(reads()).toBe(2);
    // gone from the bucket: still yes within the TTL, then asked again
    present.delete(workerKey('p', 'w1'));
    now += 4_999;
    expect(await registered.has('p', 'w1')).toBe(true);
    now += 1;
    expect(await registered.has('p', 'w1')).toBe(false);
    expect(reads()).toBe(3);
    // another pool's worker of the same id is another key
    expect(await registered.has('q', 'w1')).toBe(false);
  });

  it("answers the claim check and the metrics' builder from one read of the entry", async () => {
    const present = new Set([workerKey('p', 'w1'), workerKey('p', 'w2')]);
    const { kv, reads } = bucket(present, new Map([[workerKey('p', 'w1'), info('w1', 'kaniko')], [workerKey('p', 'w2'), 'not json']]));
    const registered = new RegisteredWorkers(kv, 5_000);
    expect(await registered.has('p', 'w1')).toBe(true);
    expect(await registered.builderOf('p', 'w1')).toEqual({ kind: 'kaniko', version: '1' });
    expect(reads()).toBe(1);
    // an entry that does not parse is still an announced worker, of an unknown builder
    expect(await registered.has('p', 'w2')).toBe(true);
    expect(await registered.builderOf('p', 'w2')).toBe(UNKNOWN_BUILDER);
    expect(await registered.builderOf('p', 'w3')).toBeNull();
  });

  it("knows a worker from the bucket's watch without a read, for the TTL from the entry's own time; a delete forgets it", async () => {
    const { kv, reads } = bucket(new Set());
    let now = 100_000;
    const registered = new RegisteredWorkers(kv, 5_000, 10, () => now);
    const entry = (workerId: string, created: number, operation: 'PUT' | 'DEL' = 'PUT') => ({
      key: workerKey('p', workerId),
      operation,
      created: new Date(created),
      json: <T>() => JSON.parse(info(workerId, 'buildah')) as T,
    });
    registered.announced(entry('w1', now - 1_000));
    expect(await registered.builderOf('p', 'w1')).toEqual({ kind: 'buildah', version: '1' });
    expect(reads()).toBe(0);
    // 5 s from the entry's time, not from when the watch delivered it: then the bucket is asked (it says no)
    now += 3_999;
    expect(await registered.has('p', 'w1')).toBe(true);
    now += 1;
    expect(await registered.has('p', 'w1')).toBe(false);
    expect(reads()).toBe(1);
    // each new announcement keeps it known
    registered.announced(entry('w1', now));
    now += 4_999;
    expect(await registered.has('p', 'w1')).toBe(true);
    // an announcement replayed from long ago (the watch's start) lets nothing in
    registered.announced(entry('w2', now - 60_000));
    expect(await registered.has('p', 'w2')).toBe(false);
    // a server clock ahead of ours is trusted no further than a read now would be
    registered.announced(entry('w3', now + 60_000));
    now += 5_000;
    expect(await registered.has('p', 'w3')).toBe(false);
    // a worker's entry deleted (it stopped): forgotten at once
    registered.announced(entry('w4', now));
    expect(await registered.has('p', 'w4')).toBe(true);
    registered.announced(entry('w4', now, 'DEL'));
    expect(await registered.has('p', 'w4')).toBe(false);
    expect(reads()).toBe(4);
  });
});
