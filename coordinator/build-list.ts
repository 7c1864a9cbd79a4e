import type { KV, KvEntry } from '@nats-io/kv';
import { z } from 'zod';
import { BuildListReply, BuildPhase, BuildRecord, BuildSummary, PoolName, isTerminal, type BuildView, type Phase as PhaseType } from '../protocol/index.ts';
import type { Logger } from '../adapters/logger.ts';
import { BoundedCache } from '../adapters/bounded-cache.ts';
import { mayAccess, type Caller } from './tenancy/authorize.ts';

/** `GET /v1/builds` query: every filter optional, combined with AND. */
export const BuildListQuery = z.strictObject({
  state: z.array(BuildPhase).optional(),
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

/** The list's rows and reply live in protocol/ (the live stream's events are built of them); re-exported for the coordinator's callers. */
export { BuildSummary, BuildListReply };

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

/** Workers remembered (ephemeral workers come and go: a bound, not every worker ever seen). */
const KNOWN_WORKERS = 10_000;

/** How many changes the list keeps for streams resuming with Last-Event-ID. */
const RECENT_CHANGES = 2_000;

/** One change to the list: a build's new summary, or null when its record was deleted. */
export interface BuildListChange {
  seq: number;
  id: string;
  tenant: string;
  summary: BuildSummary | null;
}

/** What a stream's client sees of a row; `updatedAt` moves with every record write. */
function sameRow(a: BuildSummary | undefined, b: BuildSummary): boolean {
  return a !== undefined && a.updatedAt === b.updatedAt && a.phase === b.phase && a.attempt === b.attempt && a.workerId === b.workerId && a.builder === b.builder && a.error === b.error;
}

/** The filter of `q` (and the caller's tenancy) as a predicate over rows. */
export function matcher(caller: Caller, q: BuildListQuery): (b: BuildSummary) => boolean {
  const states = q.state === undefined || q.state.length === 0 ? null : new Set<PhaseType>(q.state);
  const since = q.since === undefined ? null : Date.parse(q.since);
  const needle = q.q?.toLowerCase();
  return (b) => {
    if (!mayAccess(caller, b.tenant, 'read')) return false;
    if (states !== null && !states.has(b.phase)) return false;
    if (q.pool !== undefined && b.pool !== q.pool) return false;
    if (q.repository !== undefined && !(q.repository.endsWith('/') ? b.repository.startsWith(q.repository) : b.repository === q.repository)) return false;
    if (q.builder !== undefined && b.builder !== q.builder) return false;
    if (since !== null && Date.parse(b.createdAt) < since) return false;
    if (needle !== undefined && !b.id.toLowerCase().includes(needle)) return false;
    return true;
  };
}

/**
 * Every build's summary, kept from a watch of the builds bucket: the console polls the list every
 * few seconds, and answering from memory keeps that from costing one KV read per build. A summary
 * is a few hundred bytes; the bucket's own history limits how many there are. The same watch
 * counts each tenant's queued and running builds for intake's `maxActiveBuilds` (every replica
 * sees every replica's builds; the count trails a write by a moment, so a burst of concurrent
 * submits can pass a limit by the few that race it, never by more). The console's live list
 * (`GET /v1/builds?watch=1`, coordinator/sse-builds.ts) subscribes to this same watch's changes.
 */
export class BuildList {
  private readonly byId = new Map<string, BuildSummary>();
  /** the builder each worker announced, so a finished build keeps the builder it ran on */
  private readonly builders = new BoundedCache<string, string>({ maxEntries: KNOWN_WORKERS });
  /** workers-bucket keys already decoded */
  private readonly announced = new BoundedCache<string, true>({ maxEntries: KNOWN_WORKERS });
  /** tenant → ids of its builds not yet ended */
  private readonly active = new Map<string, Set<string>>();
  private stops: (() => void)[] = [];
  /** the live stream's listeners (coordinator/sse-builds.ts), fed by this same watch */
  private readonly listeners = new Set<(change: BuildListChange) => void>();
  /** the newest changes, so a reconnecting stream resumes from its Last-Event-ID */
  private readonly recent: BuildListChange[] = [];
  private seq = 0;
  /** names this replica's run of sequence numbers: an id from another replica or run starts afresh */
  readonly epoch = `${Date.now().toString(36)}${Math.floor(Math.random() * 36 ** 4).toString(36)}`;

  /** `onWorker`: every entry of the workers bucket, for the claim check's view of it (coordinator/registered-workers.ts) */
  static async watch(builds: KV, workers: KV, log: Logger, onWorker: (entry: KvEntry) => void = () => undefined): Promise<BuildList> {
    const list = new BuildList();
    const bw = await builds.watch();
    const ww = await workers.watch();
    list.stops = [() => bw.stop(), () => ww.stop()];
    void (async () => {
      for await (const entry of ww) {
        onWorker(entry);
        // A worker announces every state change and every few seconds, its builder never changes:
        // only an entry not seen before is decoded.
        if (entry.operation !== 'PUT' || list.announced.get(entry.key) === true) continue;
        list.announced.set(entry.key, true);
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
    const after = this.byId.get(record.id);
    // the same record seen twice (a replayed watch entry) is no change to tell a stream about
    if (after !== undefined && !sameRow(before, after)) this.emit({ seq: 0, id: record.id, tenant: record.tenant, summary: after });
  }

  /** What `caller` may read, filtered, newest first. */
  query(caller: Caller, q: BuildListQuery): BuildListReply {
    const matches = matcher(caller, q);
    const matched: BuildSummary[] = [];
    for (const b of this.byId.values()) if (matches(b)) matched.push(b);
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
    if (tenant !== undefined) this.emit({ seq: 0, id, tenant, summary: null });
  }

  /** The summary of one build, if this replica has seen it. */
  get(id: string): BuildSummary | undefined {
    return this.byId.get(id);
  }

  /** The ids of every build `caller` may read that match `q` (the stream counts these). */
  matching(caller: Caller, q: BuildListQuery): Set<string> {
    const matches = matcher(caller, q);
    const ids = new Set<string>();
    for (const b of this.byId.values()) if (matches(b)) ids.add(b.id);
    return ids;
  }

  /** The sequence number of the newest change: a stream's snapshot is as of this. */
  get cursor(): number {
    return this.seq;
  }

  /**
   * Every change after `seq`, oldest first; null when `seq` is older than what is kept (or from
   * the future: another run's id), and the caller must start from a snapshot instead.
   */
  changesSince(seq: number): BuildListChange[] | null {
    if (seq > this.seq) return null;
    if (seq === this.seq) return [];
    const oldest = this.recent[0]?.seq ?? this.seq + 1;
    if (seq < oldest - 1) return null;
    return this.recent.filter((c) => c.seq > seq);
  }

  /** Calls `listener` with every change from now on (synchronously, in order); returns the unsubscribe. */
  subscribe(listener: (change: BuildListChange) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private emit(change: BuildListChange): void {
    change.seq = ++this.seq;
    this.recent.push(change);
    // a bounded window: a stream away longer than this many changes gets a fresh snapshot
    if (this.recent.length > RECENT_CHANGES) this.recent.splice(0, this.recent.length - RECENT_CHANGES);
    for (const listener of this.listeners) listener(change);
  }

  /** The tenant of a build this replica has seen (the workers route hides other tenants' ids). */
  tenantOf(id: string): string | undefined {
    return this.byId.get(id)?.tenant;
  }

  close(): void {
    for (const stop of this.stops) stop();
  }
}
