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
});
