import type { KV } from '@nats-io/kv';
import { describe, expect, it } from 'vitest';
import {
  CachedTokenStore,
  KvTokenStore,
  MemoryTokenStore,
  createToken,
  revokeToken,
  verifyToken,
  type TokenRecord,
  type TokenStore,
} from '../../../coordinator/auth/index.ts';
import { ErrorCode, buckets } from '../../../protocol/index.ts';
import { refusal } from '../../helpers/refusal.ts';

const T0 = new Date('2030-01-01T00:00:00.000Z');
const ADMIN = 'token:00000000';

function tamper(token: string): string {
  const last = token.at(-1);
  return token.slice(0, -1) + (last === 'A' ? 'B' : 'A');
}

/** Counts reads, and can hold one read until released, to see what the cache does. */
class ProbeStore implements TokenStore {
  reads = 0;
  private held: { until: Promise<void>; read: () => void } | null = null;
  constructor(private readonly inner: TokenStore) {}
  /** Holds the next read once it has its record: `read` resolves then, `release` lets it return. */
  holdNextRead(): { read: Promise<void>; release: () => void } {
    let release!: () => void;
    let reached!: () => void;
    const read = new Promise<void>((r) => (reached = r));
    this.held = { until: new Promise<void>((r) => (release = r)), read: reached };
    return { read, release };
  }
  async get(id: string): Promise<TokenRecord | null> {
    this.reads++;
    const held = this.held;
    this.held = null;
    const record = await this.inner.get(id);
    if (held !== null) {
      held.read();
      await held.until;
    }
    return record;
  }
  put(record: TokenRecord): Promise<void> {
    return this.inner.put(record);
  }
  list(tenant?: string): Promise<TokenRecord[]> {
    return this.inner.list(tenant);
  }
}

describe('API tokens', () => {
  it('verifies a created token as its tenant and role, and refuses it once revoked', async () => {
    const store = new MemoryTokenStore();
    const { token, record } = await createToken(store, { tenant: 'payments', role: 'submitter', name: 'ci', createdBy: ADMIN }, T0);
    expect(token).toMatch(/^flt_[0-9a-f]{8}_[A-Za-z0-9_-]{43}$/);
    expect(token).toContain(record.id);

    expect(await verifyToken(store, token, T0.getTime())).toEqual({ subject: `token:${record.id}`, tenant: 'payments', role: 'submitter', via: 'token' });

    const revoked = await revokeToken(store, record.id, ADMIN, T0);
    expect(revoked).toMatchObject({ revokedAt: T0.toISOString(), revokedBy: ADMIN });
    const e = await refusal(verifyToken(store, token, T0.getTime()));
    expect([e.code, e.message]).toEqual([ErrorCode.E_UNAUTHENTICATED, `API token ${record.id} was revoked`]);
  });

  it('stores only a hash of the secret', async () => {
    const store = new MemoryTokenStore();
    const { token, record } = await createToken(store, { tenant: 'payments', role: 'reader', name: 'ci', createdBy: ADMIN });
    const secret = token.slice('flt_12345678_'.length);
    const stored = JSON.stringify(await store.list());
    expect(stored).toContain(record.hash);
    expect(stored).not.toContain(secret);
  });

  it('refuses a token from its expiry on, and accepts it until then', async () => {
    const store = new MemoryTokenStore();
    const { token, record } = await createToken(store, { tenant: 'payments', role: 'reader', name: 'short', createdBy: ADMIN, ttlSeconds: 60 }, T0);
    expect(record.expiresAt).toBe('2030-01-01T00:01:00.000Z');
    await expect(verifyToken(store, token, T0.getTime() + 59_999)).resolves.toMatchObject({ tenant: 'payments' });
    const e = await refusal(verifyToken(store, token, T0.getTime() + 60_000));
    expect([e.code, e.message]).toEqual([ErrorCode.E_UNAUTHENTICATED, `API token ${record.id} has expired`]);
  });

  it('refuses a token whose secret was altered, saying no more than for an unknown one', async () => {
    const store = new MemoryTokenStore();
    const { token } = await createToken(store, { tenant: 'payments', role: 'admin', name: 'ops', createdBy: ADMIN });
    const tampered = await refusal(verifyToken(store, tamper(token)));
    const unknown = await refusal(verifyToken(store, `flt_ffffffff_${'A'.repeat(43)}`));
    expect([tampered.code, tampered.message]).toEqual([ErrorCode.E_UNAUTHENTICATED, 'unknown API token']);
    expect([unknown.code, unknown.message]).toEqual([ErrorCode.E_UNAUTHENTICATED, 'unknown API token']);
  });

  it.each([
    ['empty', ''],
    ['prefix only', 'flt_'],
    ['no secret', 'flt_0123abcd_'],
    ['short secret', `flt_0123abcd_${'A'.repeat(42)}`],
    ['long secret', `flt_0123abcd_${'A'.repeat(44)}`],
    ['upper-case id', `flt_0123ABCD_${'A'.repeat(43)}`],
    ['wildcard id', `flt_>>>>>>>>_${'A'.repeat(43)}`],
    ['other prefix', `fla_0123abcd_${'A'.repeat(43)}`],
    ['trailing space', `flt_0123abcd_${'A'.repeat(43)} `],
    ['padding', `flt_0123abcd_${'A'.repeat(42)}=`],
  ])('refuses a malformed token (%s) without reading the store', async (_, presented) => {
    const probe = new ProbeStore(new MemoryTokenStore());
    const e = await refusal(verifyToken(probe, presented));
    expect([e.code, e.message]).toEqual([ErrorCode.E_UNAUTHENTICATED, 'malformed API token']);
    expect(probe.reads).toBe(0);
  });

  it('revokes idempotently, keeping the first revocation, and says when there is no such token', async () => {
    const store = new MemoryTokenStore();
    const { record } = await createToken(store, { tenant: 'payments', role: 'reader', name: 'ci', createdBy: ADMIN });
    await revokeToken(store, record.id, 'token:first', T0);
    const again = await revokeToken(store, record.id, 'token:second', new Date(T0.getTime() + 1000));
    expect(again).toMatchObject({ revokedAt: T0.toISOString(), revokedBy: 'token:first' });
    expect((await refusal(revokeToken(store, 'ffffffff', ADMIN))).code).toBe(ErrorCode.E_NOT_FOUND);
    expect((await refusal(revokeToken(store, 'not-an-id', ADMIN))).code).toBe(ErrorCode.E_INVALID_REQUEST);
  });

  it('refuses to create a token for an invalid tenant, name or lifetime', async () => {
    const store = new MemoryTokenStore();
    for (const bad of [
      { tenant: 'Payments', role: 'reader', name: 'ci', createdBy: ADMIN },
      { tenant: 'payments', role: 'owner', name: 'ci', createdBy: ADMIN },
      { tenant: 'payments', role: 'reader', name: 'ci\nforged log line', createdBy: ADMIN },
      { tenant: 'payments', role: 'reader', name: 'ci', createdBy: ADMIN, ttlSeconds: 0 },
    ]) {
      const e = await refusal(createToken(store, bad as never));
      expect(e.code, JSON.stringify(bad)).toBe(ErrorCode.E_INVALID_REQUEST);
    }
    expect(await store.list()).toEqual([]);
  });

  it('lists every token, or one tenant\'s', async () => {
    const store = new MemoryTokenStore();
    const a = await createToken(store, { tenant: 'payments', role: 'reader', name: 'a', createdBy: ADMIN }, T0);
    const b = await createToken(store, { tenant: 'search', role: 'reader', name: 'b', createdBy: ADMIN }, new Date(T0.getTime() + 1));
    expect((await store.list()).map((r) => r.id)).toEqual([a.record.id, b.record.id]);
    expect((await store.list('search')).map((r) => r.id)).toEqual([b.record.id]);
  });
});

describe('the token cache', () => {
  it('serves repeated checks without reading the store, still comparing the secret', async () => {
    const probe = new ProbeStore(new MemoryTokenStore());
    const cached = new CachedTokenStore(probe);
    const { token } = await createToken(cached, { tenant: 'payments', role: 'reader', name: 'ci', createdBy: ADMIN });
    const readsAfterCreate = probe.reads;
    for (let i = 0; i < 5; i++) await verifyToken(cached, token);
    expect(probe.reads).toBe(readsAfterCreate);
    expect((await refusal(verifyToken(cached, tamper(token)))).message).toBe('unknown API token');
  });

  it('applies a revocation through the same instance at once', async () => {
    const cached = new CachedTokenStore(new MemoryTokenStore());
    const { token, record } = await createToken(cached, { tenant: 'payments', role: 'reader', name: 'ci', createdBy: ADMIN });
    await verifyToken(cached, token);
    await revokeToken(cached, record.id, ADMIN);
    expect((await refusal(verifyToken(cached, token))).message).toBe(`API token ${record.id} was revoked`);
  });

  it('applies a revocation through another replica once the cached record is older than the TTL', async () => {
    let now = T0.getTime();
    const shared = new MemoryTokenStore();
    const here = new CachedTokenStore(shared, { ttlMs: 30_000, now: () => now });
    const there = new CachedTokenStore(shared, { ttlMs: 30_000, now: () => now });
    const { token, record } = await createToken(there, { tenant: 'payments', role: 'reader', name: 'ci', createdBy: ADMIN }, T0);
    await verifyToken(here, token, now);
    await revokeToken(there, record.id, ADMIN, T0);
    now += 29_999;
    await expect(verifyToken(here, token, now)).resolves.toMatchObject({ tenant: 'payments' });
    now += 1;
    expect((await refusal(verifyToken(here, token, now))).message).toBe(`API token ${record.id} was revoked`);
  });

  it('does not cache a record read while a revocation was being written', async () => {
    const probe = new ProbeStore(new MemoryTokenStore());
    const cached = new CachedTokenStore(probe);
    const { token, record } = await createToken(probe, { tenant: 'payments', role: 'reader', name: 'ci', createdBy: ADMIN });
    const { read, release } = probe.holdNextRead();
    const racing = verifyToken(cached, token);
    // The revocation lands after the racing read has its (unrevoked) record, before it returns.
    await read;
    await revokeToken(cached, record.id, ADMIN);
    release();
    await expect(racing).resolves.toMatchObject({ tenant: 'payments' });
    expect((await refusal(verifyToken(cached, token))).message).toBe(`API token ${record.id} was revoked`);
  });

  it('forgets the least recently used record beyond its size', async () => {
    const probe = new ProbeStore(new MemoryTokenStore());
    const cached = new CachedTokenStore(probe, { maxEntries: 2 });
    const tokens = [];
    for (const name of ['a', 'b', 'c']) tokens.push((await createToken(probe, { tenant: 'payments', role: 'reader', name, createdBy: ADMIN })).token);
    const [a, b, c] = tokens as [string, string, string];
    await verifyToken(cached, a);
    await verifyToken(cached, b);
    await verifyToken(cached, a);
    await verifyToken(cached, c);
    const reads = probe.reads;
    await verifyToken(cached, a);
    expect(probe.reads).toBe(reads);
    await verifyToken(cached, b);
    expect(probe.reads).toBe(reads + 1);
  });
});

describe('the KV token store', () => {
  function fakeKv(): { kv: KV; keysAsked: string[] } {
    const entries = new Map<string, Uint8Array>();
    const keysAsked: string[] = [];
    const kv = {
      get: async (k: string) => {
        keysAsked.push(k);
        const value = entries.get(k);
        return value === undefined ? null : { operation: 'PUT', json: () => JSON.parse(new TextDecoder().decode(value)) as unknown };
      },
      put: async (k: string, v: Uint8Array) => {
        entries.set(k, v);
        return entries.size;
      },
      keys: async () =>
        (async function* () {
          yield* entries.keys();
        })(),
    };
    return { kv: kv as unknown as KV, keysAsked };
  }

  it('round-trips records by token id', async () => {
    const { kv } = fakeKv();
    const store = new KvTokenStore(kv);
    const { token, record } = await createToken(store, { tenant: 'payments', role: 'reader', name: 'ci', createdBy: ADMIN });
    expect(await store.get(record.id)).toEqual(record);
    expect(await store.list('payments')).toEqual([record]);
    expect(await store.list('search')).toEqual([]);
    await expect(verifyToken(store, token)).resolves.toMatchObject({ tenant: 'payments' });
  });

  it('never asks KV for a key that is not a token id', async () => {
    const { kv, keysAsked } = fakeKv();
    const store = new KvTokenStore(kv);
    expect(await store.get('>')).toBeNull();
    expect(await store.get('a.b')).toBeNull();
    expect(keysAsked).toEqual([]);
  });

  it('is named in the protocol', () => {
    expect(buckets.tokens).toBe('fleet_tokens_v1');
  });
});
