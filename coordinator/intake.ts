import type { JetStreamClient } from '@nats-io/jetstream';
import {
  BuildRequest,
  ErrorCode,
  PLATFORM_TENANT,
  FleetError,
  encode,
  parseWith,
  subjects,
  type AllowedBase,
  type BuildView,
  type BuildJob,
  type BuildRecord,
} from '../protocol/index.ts';
import type { Logger } from '../adapters/logger.ts';
import { contextKey, type S3Store } from '../adapters/s3-store.ts';
import type { BuildStore } from './build-store.ts';
import type { CoordinatorConfig } from './config.ts';
import { ContextPresence, contextKeyOf } from './context-ref.ts';
import type { LoadedCatalog } from './platform/catalog.ts';
import { renderJob } from './render-job.ts';
import { requestHash } from './request-hash.ts';
import { authorizeSubmit, type Caller } from './tenancy/authorize.ts';
import { REBUILDS_SUBJECT } from './rebuilds/waves.ts';
import type { Tenancy } from './tenancy/tenants.ts';

export interface Accepted {
  build: BuildView;
  /** false when the id was already known with the same body */
  created: boolean;
}

/**
 * A record as callers see it: without the request hash. Every BuildRecord here was parsed when
 * read or built from a parsed request, so this drops the field instead of parsing it all again
 * (a second full zod parse on every answer, the intake's included).
 */
export function toView(record: BuildRecord): BuildView {
  const view: BuildView & { requestHash?: string } = { ...record };
  delete view.requestHash;
  return view;
}

// Positive HEADs of content-addressed contexts, remembered far below any lifecycle expiry.
const CONTEXT_PRESENCE = { ttlMs: 5 * 60_000, maxEntries: 10_000 };

export interface IntakeDeps {
  config: CoordinatorConfig;
  catalog: LoadedCatalog;
  store: BuildStore;
  s3: S3Store;
  js: JetStreamClient;
  log: Logger;
  /** told of every accepted build, so its queue clock starts */
  onQueued: (record: BuildRecord) => void;
  /**
   * the tenancy in force now (the platform config is reloadable), each tenant's active builds, and
   * the bases its builds may use (put in the job: the worker checks every FROM against them)
   */
  tenancy: { current: () => Tenancy; activeBuilds: (tenant: string) => number; bases?: (tenant: string) => AllowedBase[] };
}

/**
 * Accepts build requests: validate, record (the id is the idempotency key), enqueue, answer at
 * once. Nothing here waits for a build.
 */
export class Intake {
  private readonly contexts = new ContextPresence((key) => this.s3.head(key), CONTEXT_PRESENCE);
  private turn: Promise<void> | null = null;

  private readonly config: CoordinatorConfig;
  private readonly catalog: LoadedCatalog;
  private readonly store: BuildStore;
  private readonly s3: S3Store;
  private readonly js: JetStreamClient;
  private readonly log: Logger;
  private readonly onQueued: IntakeDeps['onQueued'];
  private readonly tenancy: IntakeDeps['tenancy'];

  constructor(deps: IntakeDeps) {
    ({ config: this.config, catalog: this.catalog, store: this.store, s3: this.s3, js: this.js, log: this.log, onQueued: this.onQueued, tenancy: this.tenancy } = deps);
  }

  /** `caller` is who asks, as authenticated by the API it came through; nothing is recorded for a refused request. */
  async submit(raw: unknown, caller: Caller): Promise<Accepted> {
    const request = parseWith(BuildRequest, raw, 'build request');
    const tenancy = this.tenancy.current();
    authorizeSubmit(caller, request, tenancy);
    // rebuildOf says the platform rebuilt this after a base moved: a tenant must not be able to claim it.
    if (request.rebuildOf !== undefined && caller.subject !== REBUILDS_SUBJECT && !(caller.role === 'admin' && caller.tenant === PLATFORM_TENANT)) {
      throw new FleetError(ErrorCode.E_FORBIDDEN, 'forbidden: rebuildOf: set by the platform\'s rebuilds only', { issues: [{ path: 'rebuildOf', message: 'set by the platform only' }] });
    }
    if (!this.config.pools.includes(request.pool)) {
      throw new FleetError(ErrorCode.E_INVALID_REQUEST, `invalid build request: pool: unknown pool "${request.pool}"`, {
        issues: [{ path: 'pool', message: `unknown pool; known: ${this.config.pools.join(', ')}` }],
      });
    }
    if (request.timeoutSeconds !== undefined && request.timeoutSeconds > this.config.maxRunTimeoutSeconds) {
      throw new FleetError(ErrorCode.E_INVALID_REQUEST, `invalid build request: timeoutSeconds: at most ${this.config.maxRunTimeoutSeconds}`, {
        issues: [{ path: 'timeoutSeconds', message: `at most ${this.config.maxRunTimeoutSeconds} on this platform` }],
      });
    }
    if (request.queueTtlSeconds !== undefined && request.queueTtlSeconds > this.config.maxQueueTtlSeconds) {
      throw new FleetError(ErrorCode.E_INVALID_REQUEST, `invalid build request: queueTtlSeconds: at most ${this.config.maxQueueTtlSeconds}`, {
        issues: [{ path: 'queueTtlSeconds', message: `at most ${this.config.maxQueueTtlSeconds} on this platform` }],
      });
    }
    // A standard build naming ids the catalog lacks is refused here, before it is recorded.
    const job = renderJob(request, this.config, this.catalog, caller.tenant, this.tenancy.bases?.(caller.tenant));
    const key = contextKeyOf(request, this.s3.bucket);
    const context = await this.contexts.lookup(key, key === contextKey(request.context.digest));
    if (context === null) {
      throw new FleetError(ErrorCode.E_CONTEXT_MISSING, `no build context at s3://${this.s3.bucket}/${key}`, {
        issues: [{ path: request.context.url === undefined ? 'context.digest' : 'context.url', message: 'no context was uploaded there' }],
      });
    }
    if (context.size > this.config.maxContextBytes) {
      throw new FleetError(ErrorCode.E_INVALID_REQUEST, `invalid build request: context is ${context.size} bytes, over the limit of ${this.config.maxContextBytes}`, {
        issues: [{ path: 'context', message: `over the limit of ${this.config.maxContextBytes} bytes` }],
      });
    }
    const now = new Date().toISOString();
    const record: BuildRecord = {
      id: request.id,
      requestHash: requestHash(request),
      request,
      tenant: caller.tenant,
      createdAt: now,
      updatedAt: now,
      state: { phase: 'queued' },
    };
    await this.checkActiveLimit(caller, request.id, tenancy);
    await this.sameTurn();
    const result = await this.store.create(record);
    if (!result.created) {
      const existing = result.existing.record;
      if (existing.requestHash !== record.requestHash || existing.tenant !== record.tenant) {
        throw new FleetError(ErrorCode.E_CONFLICT, `build id ${request.id} was already used for a different request`, {
          issues: [{ path: 'id', message: 'already used with a different body' }],
        });
      }
      // A concurrent twin may have stored the record and not yet enqueued it (or crashed in
      // between): enqueue again; the JetStream message id makes it a no-op if it was.
      if (existing.state.phase === 'queued') await this.enqueue(existing);
      return { build: toView(existing), created: false };
    }
    this.onQueued(record);
    // Both only once the record is stored, together: one round trip, not two. The event is
    // written first, so `queued` reaches its stream ahead of anything a worker taking the job does.
    await Promise.all([this.store.publishEvent(record), this.publishJob(job)]);
    this.log.info({ buildId: record.id, pool: request.pool }, 'build queued');
    return { build: toView(record), created: true };
  }

  /**
   * Resolves at the end of this turn of the event loop, for every request that waits in it at
   * once: their KV writes then leave in one socket write. HTTP requests each arrive in a callback
   * of their own, and NATS client flushes once per callback, so without this every HTTP request
   * paid a write (a system call, the costliest step left) for its record alone.
   */
  private sameTurn(): Promise<void> {
    this.turn ??= new Promise<void>((resolve) =>
      setImmediate(() => {
        this.turn = null;
        resolve();
      }),
    );
    return this.turn;
  }

  /** A tenant at its limit of queued and running builds gets no new one (a resubmitted id is not new). */
  private async checkActiveLimit(caller: Caller, id: string, tenancy: Tenancy): Promise<void> {
    if (caller.role === 'admin' && caller.tenant === PLATFORM_TENANT) return;
    const limit = tenancy.tenant(caller.tenant)?.limits.maxActiveBuilds;
    if (limit === undefined || this.tenancy.activeBuilds(caller.tenant) < limit) return;
    if ((await this.store.get(id)) !== null) return;
    throw new FleetError(ErrorCode.E_FORBIDDEN, `forbidden: limits.maxActiveBuilds: tenant ${caller.tenant} has ${limit} builds queued or running, its limit; submit again when one ends`, {
      issues: [{ path: 'limits.maxActiveBuilds', message: `at most ${limit} active builds for tenant ${caller.tenant}` }],
    });
  }

  private async enqueue(record: BuildRecord): Promise<void> {
    await this.publishJob(renderJob(record.request, this.config, this.catalog, record.tenant, this.tenancy.bases?.(record.tenant)));
  }

  /** The build id is the message id: JetStream drops a second publish of the same job. */
  private async publishJob(job: BuildJob): Promise<void> {
    await this.js.publish(subjects.job(job.pool, job.buildId), encode(job), { msgID: job.buildId });
  }
}
