import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { StorageType } from '@nats-io/jetstream';
import type { KV } from '@nats-io/kv';
import { z } from 'zod';
import {
  ErrorCode,
  FleetError,
  Role,
  TenantName,
  Timestamp,
  buckets,
  encode,
  parseWith,
  toFleetError,
  type Identity,
} from '../../protocol/index.ts';
import { BoundedCache } from '../../adapters/bounded-cache.ts';
import type { JetStreamResources } from '../jetstream-resources.ts';

/**
 * Opaque API tokens: `flt_<id>_<secret>`. The id finds the record; the secret (32 random bytes)
 * is kept only as its sha256. A plain hash suffices because the secret has 256 bits of entropy:
 * nothing is left to guess that a slow hash would protect.
 */
export const TOKEN_PREFIX = 'flt_';
const SECRET_BYTES = 32;
const PRESENTED = /^flt_([0-9a-f]{8})_([A-Za-z0-9_-]{43})$/;
/** Few enough tries that a broken random source cannot loop; with 2^32 ids one retry is already rare. */
const ID_ATTEMPTS = 5;
const MAX_TTL_SECONDS = 10 * 365 * 24 * 3600;

export const TokenId = z.string().regex(/^[0-9a-f]{8}$/, 'must be 8 hex digits');

/** Shown in listings and audit logs; control characters would let a name forge log lines. */
const TokenName = z.string().min(1).max(100).regex(/^[^\p{Cc}]+$/u, 'must not contain control characters');

export const TokenRecord = z.strictObject({
  id: TokenId,
  /** sha256 of the secret, hex */
  hash: z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 hex digits'),
  tenant: TenantName,
  role: Role,
  name: TokenName,
  createdAt: Timestamp,
  /** the subject of the identity that created it */
  createdBy: z.string().min(1),
  expiresAt: Timestamp.optional(),
  revokedAt: Timestamp.optional(),
  revokedBy: z.string().min(1).optional(),
});
export type TokenRecord = z.infer<typeof TokenRecord>;

export const CreateTokenInput = z.strictObject({
  tenant: TenantName,
  role: Role,
  name: TokenName,
  createdBy: z.string().min(1),
  ttlSeconds: z.number().int().positive().max(MAX_TTL_SECONDS).optional(),
});
export type CreateTokenInput = z.infer<typeof CreateTokenInput>;

export interface TokenStore {
  get(id: string): Promise<TokenRecord | null>;
  put(record: TokenRecord): Promise<void>;
  /** every token (revoked and expired ones too), oldest first; only `tenant`'s when given */
  list(tenant?: string): Promise<TokenRecord[]>;
}

export interface CreatedToken {
  /** the only time the secret exists outside the caller's hands: show it once, never store it */
  token: string;
  record: TokenRecord;
}

function sha256(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

function byCreation(a: TokenRecord, b: TokenRecord): number {
  return a.createdAt.localeCompare(b.createdAt) || a.id.localeCompare(b.id);
}

export async function createToken(store: TokenStore, input: CreateTokenInput, now: Date = new Date()): Promise<CreatedToken> {
  const request = parseWith(CreateTokenInput, input, 'token request');
  for (let i = 0; i < ID_ATTEMPTS; i++) {
    const id = randomBytes(4).toString('hex');
    // Overwriting another token's record would hand its holder's access to this one.
    if ((await store.get(id)) !== null) continue;
    const secret = randomBytes(SECRET_BYTES).toString('base64url');
    const record: TokenRecord = {
      id,
      hash: sha256(secret).toString('hex'),
      tenant: request.tenant,
      role: request.role,
      name: request.name,
      createdAt: now.toISOString(),
      createdBy: request.createdBy,
      ...(request.ttlSeconds === undefined ? {} : { expiresAt: new Date(now.getTime() + request.ttlSeconds * 1000).toISOString() }),
    };
    await store.put(record);
    return { token: `${TOKEN_PREFIX}${id}_${secret}`, record };
  }
  throw new FleetError(ErrorCode.E_INTERNAL, 'could not pick an unused token id');
}

/** Idempotent: revoking a revoked token returns its record unchanged (the first revocation stands). */
export async function revokeToken(store: TokenStore, id: string, by: string, now: Date = new Date()): Promise<TokenRecord> {
  const tokenId = parseWith(TokenId, id, 'token id');
  const record = await store.get(tokenId);
  if (record === null) throw new FleetError(ErrorCode.E_NOT_FOUND, `no API token ${tokenId}`);
  if (record.revokedAt !== undefined) return record;
  const revoked: TokenRecord = { ...record, revokedAt: now.toISOString(), revokedBy: by };
  await store.put(revoked);
  return revoked;
}

/**
 * The identity a presented token stands for. A wrong secret reads as "unknown" so that probing
 * cannot tell a real id from a made-up one; revoked and expired are said only to the secret's holder.
 */
export async function verifyToken(store: TokenStore, presented: string, now: number = Date.now()): Promise<Identity> {
  const match = PRESENTED.exec(presented);
  const id = match?.[1];
  const secret = match?.[2];
  if (id === undefined || secret === undefined) throw new FleetError(ErrorCode.E_UNAUTHENTICATED, 'malformed API token');
  const record = await store.get(id);
  if (record === null || !timingSafeEqual(Buffer.from(record.hash, 'hex'), sha256(secret))) {
    throw new FleetError(ErrorCode.E_UNAUTHENTICATED, 'unknown API token');
  }
  if (record.revokedAt !== undefined) throw new FleetError(ErrorCode.E_UNAUTHENTICATED, `API token ${id} was revoked`);
  if (record.expiresAt !== undefined && Date.parse(record.expiresAt) <= now) {
    throw new FleetError(ErrorCode.E_UNAUTHENTICATED, `API token ${id} has expired`);
  }
  return { subject: `token:${id}`, tenant: record.tenant, role: record.role, via: 'token' };
}

/** For tests and single-process tools. */
export class MemoryTokenStore implements TokenStore {
  private readonly records = new Map<string, TokenRecord>();

  async get(id: string): Promise<TokenRecord | null> {
    const record = this.records.get(id);
    // Copies, as a KV read would give: a caller's edit must not change what is stored.
    return record === undefined ? null : { ...record };
  }

  async put(record: TokenRecord): Promise<void> {
    this.records.set(record.id, parseWith(TokenRecord, record, 'API token record', ErrorCode.E_INTERNAL));
  }

  async list(tenant?: string): Promise<TokenRecord[]> {
    return [...this.records.values()]
      .filter((r) => tenant === undefined || r.tenant === tenant)
      .map((r) => ({ ...r }))
      .sort(byCreation);
  }
}

/** Records in the FLEET_TOKENS bucket (`buckets.tokens`), keyed by token id. */
export class KvTokenStore implements TokenStore {
  constructor(private readonly kv: KV) {}

  async get(id: string): Promise<TokenRecord | null> {
    // A presented id must never reach KV as a wildcard or an invalid key.
    if (!TokenId.safeParse(id).success) return null;
    let entry;
    try {
      entry = await this.kv.get(id);
    } catch (e) {
      throw toFleetError(e, ErrorCode.E_UNAVAILABLE);
    }
    if (entry === null || entry.operation !== 'PUT') return null;
    return parseWith(TokenRecord, entry.json(), 'stored API token record', ErrorCode.E_INTERNAL);
  }

  async put(record: TokenRecord): Promise<void> {
    const valid = parseWith(TokenRecord, record, 'API token record', ErrorCode.E_INTERNAL);
    try {
      await this.kv.put(valid.id, encode(valid));
    } catch (e) {
      throw toFleetError(e, ErrorCode.E_UNAVAILABLE);
    }
  }

  async list(tenant?: string): Promise<TokenRecord[]> {
    const out: TokenRecord[] = [];
    let keys;
    try {
      keys = await this.kv.keys();
    } catch (e) {
      throw toFleetError(e, ErrorCode.E_UNAVAILABLE);
    }
    for await (const key of keys) {
      const record = await this.get(key);
      if (record !== null && (tenant === undefined || record.tenant === tenant)) out.push(record);
    }
    return out.sort(byCreation);
  }
}

/** Opens (creating if needed) the tokens bucket. History keeps a revoked token's previous record for audit. */
export async function openTokenBucket(resources: JetStreamResources): Promise<KV> {
  return resources.bucket(buckets.tokens, { history: 5, storage: StorageType.File });
}

export interface TokenCacheOptions {
  /** how long a record read from the store is trusted: the longest another replica's revocation takes to apply here */
  ttlMs?: number;
  maxEntries?: number;
  now?: () => number;
}

/**
 * Keeps records read from the store for `ttlMs` (30 s by default) so that checking a token costs
 * a map lookup and a hash rather than a KV round trip. The secret is still compared and expiry
 * still checked on every call: the cache holds records, not verdicts.
 *
 * Revocation through this instance applies at once (put replaces the cached record). Revocation
 * through another replica applies here when the cached record ages out, within `ttlMs`; the
 * coordinator should share one instance between its authenticator and its token endpoints.
 */
export class CachedTokenStore implements TokenStore {
  private readonly cache: BoundedCache<string, TokenRecord>;
  private readonly ttlMs: number;
  private readonly now: () => number;
  /** bumped around every write, so a read that overlapped one does not cache what it saw */
  private writes = 0;

  constructor(
    private readonly inner: TokenStore,
    options: TokenCacheOptions = {},
  ) {
    this.ttlMs = options.ttlMs ?? 30_000;
    this.now = options.now ?? Date.now;
    this.cache = new BoundedCache({ maxEntries: options.maxEntries ?? 10_000, now: this.now });
  }

  async get(id: string): Promise<TokenRecord | null> {
    const cached = this.cache.get(id);
    if (cached !== undefined) return { ...cached };
    const writesBefore = this.writes;
    const record = await this.inner.get(id);
    // A read that started before a revocation finished may hold the unrevoked record; caching
    // it would undo the revocation here for a whole TTL.
    if (record !== null && this.writes === writesBefore) this.cache.set(id, { ...record }, this.now() + this.ttlMs);
    return record;
  }

  async put(record: TokenRecord): Promise<void> {
    this.writes++;
    // A write that fails may still have landed: the old record must not outlive it here.
    this.cache.delete(record.id);
    try {
      await this.inner.put(record);
    } finally {
      this.writes++;
    }
    this.cache.set(record.id, { ...record }, this.now() + this.ttlMs);
  }

  list(tenant?: string): Promise<TokenRecord[]> {
    return this.inner.list(tenant);
  }

  /** Forgets one record, e.g. when a watch on the bucket sees another replica change it. */
  invalidate(id: string): void {
    this.cache.delete(id);
  }
}
