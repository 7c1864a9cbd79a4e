import type { KV, KvEntry } from '@nats-io/kv';
import { describe, expect, it } from 'vitest';
import { RegisteredWorkers } from '../../coordinator/registered-workers.ts';
import { workerKey } from '../../protocol/index.ts';

/** A workers bucket holding `present` keys, counting reads. */
function bucket(present: Set<string>): { kv: Pick<KV, 'get'>; reads: () => number } {
  let reads = 0;
  return {
    kv: {
      get: (key: string) => {
        reads += 1;
        return Promise.resolve(present.has(key) ? ({ operation: 'PUT' } as KvEntry) : null);
      },
    },
    reads: () => reads,
  };
}

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
});
