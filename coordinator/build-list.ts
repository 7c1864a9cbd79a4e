import type { KV } from '@nats-io/kv';
import { z } from 'zod';
import { BuildRecord, PoolName, isTerminal, type BuildView, type Phase as PhaseType } from '../protocol/index.ts';
import type { Logger } from '../adapters/logger.ts';
import { mayAccess, type Caller } from './tenancy/authorize.ts';

/** Every phase of protocol/state.ts, as a schema for query strings. */
const Phase = z.enum(['queued', 'running', 'verifying', 'pushed', 'failed', 'cancelled', 'expired']) satisfies z.ZodType<PhaseType>;

/** `GET /v1/builds` query: every filter optional, combined with AND. */
export const BuildListQuery = z.strictObject({
  state: z.array(Phase).optional(),
  pool: PoolName.optional(),
  /** a repository, or a prefix ending in `/` */
  repository: z.string().max(300).optional(),
  /** the builder of the worker that last ran it (`buildah`, `buildkit`, `kaniko`) */
  builder: z.string().max(40).optional(),
  /** created at or after this time */
  since: z.iso.datetime({ offset: true }).optional(),
  /** part of the build id */
  q: z.string().max(200).optional(),
  limit: z.coerce.number().int().min(1).max(500).default(100),
});
export type BuildListQuery = z.infer<typeof BuildListQuery>;

/** One row of the list: enough for the console's table, newest first. */
export const BuildSummary = z.object({
  id: z.string(),
  tenant: z.string(),
  phase: Phase,
  pool: z.string(),
  repository: z.string(),
  tags: z.array(z.string()),
  kind: z.string(),
  createdAt: z.string(),
  updatedAt: z.string(),
  attempt: z.number().int().nonnegative().optional(),
  workerId: z.string().optional(),
  builder: z.string().optional(),
  /** the failure's code, for failed builds */
  error: z.string().optional(),
});
export type BuildSummary = z.infer<typeof BuildSummary>;

export const BuildListReply = z.object({ builds: z.array(BuildSummary), total: z.number().int().nonnegative() });
export type BuildListReply = z.infer<typeof BuildListReply>;

/** Raw query-string parameters into a BuildListQuery (`state` may repeat or be comma-separated). */
export function queryOf(params: URLSearchParams): unknown {
  const raw: Record<string, unknown> = {};
  for (const key of new Set(params.keys())) {
    if (key === 'state') raw.state = params.getAll('state').flatMap((s) => s.split(',')).filter((s) => s !== '');
    else raw[key] = params.get(key);
  }
  return raw;
}

/**
 * The part of a worker's announcement the list keeps. Built once: a zod object built per
 * announcement (every worker's every state change) cost its construction and JIT compile each
 * time, about 3 s of coordinator CPU in the scale bench's 1,000 builds (bench/scale.ts).
 */
const AnnouncedBuilder = z.object({ workerId: z.string(), builder: z.string() });

/**
 * Every build's summary, kept from a watch of the builds bucket: the console polls the list every
 * few seconds, and answering from memory keeps that from costing one KV read per build. A summary
 * is a few hundred bytes; the bucket's own history limits how many there are. The same watch
 * counts each tenant's queued and running builds for intake's `maxActiveBuilds` (every replica
 * sees every replica's builds; the count trails a write by a moment, so a burst of concurrent
 * submits can pass a limit by the few that race it, never by more).
 */
export class BuildList {
  private readonly byId = new Map<string, BuildSummary>();
  /** the builder each worker announced, so a finished build keeps the builder it ran on */
  private readonly builders = new Map<string, string>();
  /** tenant → ids of its builds not yet ended */
  private readonly active = new Map<string, Set<string>>();
  private stops: (() => void)[] = [];

  static async watch(builds: KV, workers: KV, log: Logger): Promise<BuildList> {
    const list = new BuildList();
    const bw = await builds.watch();
    const ww = await workers.watch();
    list.stops = [() => bw.stop(), () => ww.stop()];
    void (async () => {
      for await (const entry of ww) {
        if (entry.operation !== 'PUT') continue;
        list.noteWorker(entry.json());
      }
    })().catch((e: unknown) => log.warn({ err: e }, 'build-list workers watch ended'));
    void (async () => {
      for await (const entry of bw) {
        if (entry.operation !== 'PUT') {
          list.forget(entry.key);
          continue;
        }
        const parsed = BuildRecord.safeParse(entry.json());
        if (parsed.success) list.apply(parsed.data);
      }
    })().catch((e: unknown) => log.warn({ err: e }, 'build-list watch ended; the list shows what it last saw'));
    return list;
  }

  /** a worker's announcement (a workers bucket value): its builder is remembered for the builds it runs */
  noteWorker(value: unknown): void {
    const w = AnnouncedBuilder.safeParse(value);
    if (w.success) this.builders.set(w.data.workerId, w.data.builder);
  }

  apply(record: BuildRecord | BuildView): void {
    const s = record.state;
    const before = this.byId.get(record.id);
    const workerId = 'workerId' in s && s.workerId !== undefined ? s.workerId : before?.workerId;
    const builder = workerId === undefined ? undefined : (this.builders.get(workerId) ?? before?.builder);
    const ids = this.active.get(record.tenant) ?? new Set<string>();
    if (isTerminal(s.phase)) ids.delete(record.id);
    else ids.add(record.id);
    this.active.set(record.tenant, ids);
    this.byId.set(record.id, {
      id: record.id,
      tenant: record.tenant,
      phase: s.phase,
      pool: record.request.pool,
      repository: record.request.image.repository,
      tags: record.request.image.tags,
      kind: record.request.kind,
      createdAt: record.createdAt,
      updatedAt: record.updatedAt,
      ...('attempt' in s ? { attempt: s.attempt } : {}),
      ...(workerId === undefined ? {} : { workerId }),
      ...(builder === undefined ? {} : { builder }),
      ...(s.phase === 'failed' ? { error: s.error.code } : {}),
    });
  }

  /** What `caller` may read, filtered, newest first. */
  query(caller: Caller, q: BuildListQuery): BuildListReply {
    const states = q.state === undefined || q.state.length === 0 ? null : new Set<PhaseType>(q.state);
    const since = q.since === undefined ? null : Date.parse(q.since);
    const needle = q.q?.toLowerCase();
    const matched: BuildSummary[] = [];
    for (const b of this.byId.values()) {
      if (!mayAccess(caller, b.tenant, 'read')) continue;
      if (states !== null && !states.has(b.phase)) continue;
      if (q.pool !== undefined && b.pool !== q.pool) continue;
      if (q.repository !== undefined && !(q.repository.endsWith('/') ? b.repository.startsWith(q.repository) : b.repository === q.repository)) continue;
      if (q.builder !== undefined && b.builder !== q.builder) continue;
      if (since !== null && Date.parse(b.createdAt) < since) continue;
      if (needle !== undefined && !b.id.toLowerCase().includes(needle)) continue;
      matched.push(b);
    }
    matched.sort((a, b) => (a.createdAt < b.createdAt ? 1 : a.createdAt > b.createdAt ? -1 : a.id.localeCompare(b.id)));
    return { builds: matched.slice(0, q.limit), total: matched.length };
  }

  /** How many builds `tenant` has queued, running or verifying. */
  activeCount(tenant: string): number {
    return this.active.get(tenant)?.size ?? 0;
  }

  private forget(id: string): void {
    const tenant = this.byId.get(id)?.tenant;
    if (tenant !== undefined) this.active.get(tenant)?.delete(id);
    this.byId.delete(id);
  }

  /** The tenant of a build this replica has seen (the workers route hides other tenants' ids). */
  tenantOf(id: string): string | undefined {
    return this.byId.get(id)?.tenant;
  }

  close(): void {
    for (const stop of this.stops) stop();
  }
}
