import type { JetStreamClient, PubAck } from '@nats-io/jetstream';
import type { KV, KvEntry } from '@nats-io/kv';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { BuildStore } from '../../coordinator/build-store.ts';
import { claimState } from '../../coordinator/attempts.ts';
import { BuildEvent, ErrorCode, type BuildRecord } from '../../protocol/index.ts';
import { buildRecord } from './build-records.ts';

/** A builds bucket of one record (CAS on its revision) and a JetStream whose acks the test releases. */
function fakes(record: BuildRecord): { kv: KV; js: JetStreamClient; sent: BuildEvent[]; ack: () => void; fail: () => void } {
  let value: Uint8Array = new TextEncoder().encode(JSON.stringify(record));
  let revision = 1;
  const sent: BuildEvent[] = [];
  const pending: Array<{ resolve: (a: PubAck) => void; reject: (e: Error) => void }> = [];
  const kv = {
    get: (key: string) => {
      const data = value;
      return Promise.resolve(key === record.id ? ({ operation: 'PUT', revision, json: () => JSON.parse(new TextDecoder().decode(data)) as unknown } as KvEntry) : null);
    },
    update: (_key: string, data: Uint8Array, previous: number) => {
      if (previous !== revision) return Promise.reject(new Error('wrong last sequence'));
      value = data;
      revision += 1;
      return Promise.resolve(revision);
    },
  } as unknown as KV;
  const js = {
    // what the client does: the PUB is written synchronously, the ack is awaited
    publish: (_subject: string, data: Uint8Array) => {
      sent.push(BuildEvent.parse(JSON.parse(new TextDecoder().decode(data))));
      return new Promise<PubAck>((resolve, reject) => pending.push({ resolve, reject }));
    },
  } as unknown as JetStreamClient;
  return {
    kv,
    js,
    sent,
    ack: () => pending.shift()?.resolve({ stream: 'events', seq: 1, duplicate: false } as PubAck),
    fail: () => pending.shift()?.reject(new Error('no ack')),
  };
}

const claim = { buildId: 'b1', workerId: 'w1', attempt: 1 };

describe('BuildStore.transitionSent', () => {
  it('answers once the CAS is done and the event sent, before the event is acked', async () => {
    const f = fakes(buildRecord('b1', 't', 'r', '2026-11-29T00:00:00.000Z'));
    const store = new BuildStore(f.kv, f.js, pino({ level: 'silent' }));
    let acked = false;
    const { record, stored } = await store.transitionSent('b1', (r) => claimState(r, claim));
    void stored.then(() => (acked = true));
    expect(record.state.phase).toBe('running');
    // the event is on its way (sent before the caller's reply can be) but not acked yet
    expect(f.sent.map((e) => e.type)).toEqual(['started']);
    await Promise.resolve();
    expect(acked).toBe(false);
    f.ack();
    await stored;
    expect(acked).toBe(true);
  });

  it("keeps a build's events in the order of its transitions while acks are outstanding", async () => {
    const f = fakes(buildRecord('b1', 't', 'r', '2026-11-29T00:00:00.000Z'));
    const store = new BuildStore(f.kv, f.js, pino({ level: 'silent' }));
    const started = await store.transitionSent('b1', (r) => claimState(r, claim));
    const failing = store.transition('b1', () => ({ phase: 'failed', attempt: 1, error: { code: ErrorCode.E_BUILD_STEP_FAILED, message: 'x' }, finishedAt: '2026-11-29T00:00:01.000Z' }));
    await new Promise((resolve) => setImmediate(resolve));
    expect(f.sent.map((e) => e.type)).toEqual(['started', 'failed']);
    f.ack();
    f.ack();
    await started.stored;
    expect((await failing).state.phase).toBe('failed');
  });

  it('lets transition wait for the ack, and a refused event fail it', async () => {
    const f = fakes(buildRecord('b1', 't', 'r', '2026-11-29T00:00:00.000Z'));
    const store = new BuildStore(f.kv, f.js, pino({ level: 'silent' }));
    const claimed = store.transition('b1', (r) => claimState(r, claim));
    await new Promise((resolve) => setImmediate(resolve));
    expect(f.sent).toHaveLength(1);
    f.fail();
    await expect(claimed).rejects.toThrow('no ack');
  });
});
