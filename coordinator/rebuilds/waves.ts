import { StorageType } from '@nats-io/jetstream';
import type { KV } from '@nats-io/kv';
import {
  ErrorCode,
  FleetError,
  PLATFORM_TENANT,
  RebuildWave,
  buckets,
  encode,
  isTerminal,
  parseWith,
  toFleetError,
  type BuildEvent,
  type BuildRecord,
  type Dependent,
  type NoticedBy,
  type Phase,
  type RebuildOf,
  type RebuildWaveView,
  type WaveMember,
} from '../../protocol/index.ts';
import type { Logger } from '../../adapters/logger.ts';
import { PLATFORM_ADMIN, type Caller } from '../tenancy/authorize.ts';
import { rebuildReason } from './base-name.ts';
import { streamHash, streamOf } from './dependency-index.ts';
import type { JetStreamResources } from '../jetstream-resources.ts';

/** What the waves need of the rest of the coordinator (the intake, the records, the event stream, notifications). */
export interface WaveDeps {
  submit(raw: unknown, caller: Caller): Promise<unknown>;
  record(id: string): Promise<BuildRecord | null>;
  publish(event: BuildEvent): Promise<void>;
  /** tells a dependent's tenant (coordinator/notifications); absent: nobody is told */
  notify?: (tenant: string, subject: string, data: Record<string, unknown>, id: string) => Promise<void>;
}

/** Rebuilds are submitted as the platform acting for the dependent's tenant: that tenant's rules apply, not an admin's. */
export const REBUILDS_SUBJECT = 'platform:rebuilds';
const callerFor = (tenant: string): Caller => (tenant === PLATFORM_TENANT ? { ...PLATFORM_ADMIN, subject: REBUILDS_SUBJECT } : { subject: REBUILDS_SUBJECT, tenant, role: 'submitter' });

/** `app/x-rb-<12 hex of the new base digest>-<stream hash>`: the same (dependent, new base) is always the same build id. */
export function rebuildIdOf(dependent: Pick<Dependent, 'repository' | 'tags'>, to: string): string {
  const slug = dependent.repository.replace(/[^A-Za-z0-9_-]/g, '_').slice(0, 90);
  return `${slug}-rb-${to.slice(7, 19)}-${streamHash(streamOf(dependent.repository, dependent.tags))}`;
}

const waveKey = (base: string, to: string): string => `${Buffer.from(base).toString('base64url')}.${to.slice(7)}`;

/**
 * Rebuild waves in a KV bucket: one per (base, new digest), created with `create` so five
 * notifications, the poller and a second replica noticing the same change make one wave. A wave
 * submits its members' rebuilds a few at a time per pool (`maxInFlightPerPool`: the job queue
 * has no priorities, so this cap is what keeps a wave from starving release builds), each once:
 * a rebuild that fails or is blocked stays so, and the same change never makes another.
 */
export class Waves {
  private readonly open = new Set<string>();
  private pumping: Promise<void> = Promise.resolve();
  private again = false;
  private running = false;

  private constructor(
    private readonly kv: KV,
    private readonly deps: WaveDeps,
    private readonly maxInFlightPerPool: number,
    private readonly log: Logger,
  ) {}

  static async open(resources: JetStreamResources, deps: WaveDeps, maxInFlightPerPool: number, log: Logger): Promise<Waves> {
    const waves = new Waves(await resources.bucket(buckets.rebuilds, { history: 1, storage: StorageType.File }), deps, maxInFlightPerPool, log);
    for await (const key of await waves.kv.keys()) {
      const wave = await waves.read(key);
      if (wave !== null && wave.value.closedAt === undefined) waves.open.add(key);
    }
    return waves;
  }

  /** Starts the wave for `base` now at `to`, unless it exists. Returns whether this call made it. */
  async start(base: string, to: string, stale: readonly Dependent[], noticedBy: NoticedBy, noticedAt: string): Promise<boolean> {
    const key = waveKey(base, to);
    const members: WaveMember[] = stale.map((d) => ({
      repository: d.repository, tags: [...d.tags], tenant: d.tenant, pool: d.pool, previousBuildId: d.buildId,
      rebuildId: rebuildIdOf(d, to), from: d.baseDigest, status: 'pending',
    }));
    const wave: RebuildWave = { id: key, base, to, noticedBy, noticedAt, createdAt: new Date().toISOString(), members };
    try {
      await this.kv.create(key, encode(wave));
    } catch (e) {
      // `create` refuses an existing key: the same change noticed again (or by another replica).
      if ((await this.read(key)) === null) throw e;
      this.log.debug({ base, to, noticedBy }, 'this base change already has its wave');
      return false;
    }
    this.open.add(key);
    this.log.info({ base, to, noticedBy, dependents: members.length }, 'rebuild wave started');
    this.pump();
    return true;
  }

  /** Moves every open wave on (submit what fits, note what ended). Calls while one runs fold into one more run. */
  pump(): void {
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = true;
    this.pumping = (async () => {
      do {
        this.again = false;
        await this.pumpOnce().catch((e: unknown) => this.log.error({ err: e }, 'rebuild waves could not move on'));
      } while (this.again);
      this.running = false;
    })();
  }

  /** Waits for the run in progress (for a clean stop). */
  settled(): Promise<void> {
    return this.pumping;
  }

  hasOpenWaves(): boolean {
    return this.open.size > 0;
  }

  /** Waves newest first, each member with its build's phase now. */
  async list(filter: { base?: string; tenant?: string } = {}): Promise<RebuildWaveView[]> {
    const views: RebuildWaveView[] = [];
    for await (const key of await this.kv.keys()) {
      const wave = (await this.read(key))?.value;
      if (wave === undefined) continue;
      if (filter.base !== undefined && wave.base !== filter.base && !wave.base.endsWith(`/${filter.base}`)) continue;
      const members = filter.tenant === undefined ? wave.members : wave.members.filter((m) => m.tenant === filter.tenant);
      if (members.length === 0 && filter.tenant !== undefined) continue;
      const viewed = [];
      for (const m of members) {
        const record = m.status === 'submitted' ? await this.deps.record(m.rebuildId) : null;
        const digest = record?.state.phase === 'pushed' ? record.state.digest : undefined;
        const failedWith = record?.state.phase === 'failed' ? record.state.error.code : undefined;
        viewed.push({ ...m, phase: record?.state.phase ?? m.status, ...(digest === undefined ? {} : { digest }), ...(failedWith === undefined ? {} : { failedWith }) });
      }
      views.push({ ...wave, members: viewed });
    }
    return views.sort((a, b) => b.createdAt.localeCompare(a.createdAt));
  }

  private async pumpOnce(): Promise<void> {
    const waves: Array<{ key: string; value: RebuildWave; revision: number }> = [];
    for (const key of this.open) {
      const read = await this.read(key);
      if (read === null) this.open.delete(key);
      else waves.push({ key, ...read });
    }
    waves.sort((a, b) => a.value.createdAt.localeCompare(b.value.createdAt));
    // Phases of every submitted member, read once: what is in flight per pool, what has ended.
    const phases = new Map<string, Phase>();
    const inFlight = new Map<string, number>();
    for (const { value } of waves) {
      for (const m of value.members.filter((x) => x.status === 'submitted')) {
        const phase = (await this.deps.record(m.rebuildId))?.state.phase ?? 'queued';
        phases.set(m.rebuildId, phase);
        if (!isTerminal(phase)) inFlight.set(m.pool, (inFlight.get(m.pool) ?? 0) + 1);
      }
    }
    // A base that moved again while its older wave still had members waiting: those wait for nothing.
    const newest = new Map<string, string>();
    for (const { value } of waves) newest.set(value.base, value.createdAt);
    for (const { key, value, revision } of waves) {
      let changed = false;
      const members: WaveMember[] = [];
      const superseded = (newest.get(value.base) ?? '') > value.createdAt;
      for (const m of value.members) {
        if (m.status === 'pending' && superseded) {
          members.push({ ...m, status: 'superseded' });
          changed = true;
          continue;
        }
        if (m.status === 'pending' && (inFlight.get(m.pool) ?? 0) < this.maxInFlightPerPool) {
          const submitted = await this.submit(value, m);
          if (submitted.status === 'submitted') inFlight.set(m.pool, (inFlight.get(m.pool) ?? 0) + 1);
          members.push(submitted);
          changed = true;
          continue;
        }
        const phase = phases.get(m.rebuildId);
        if (m.status === 'submitted' && m.ended === undefined && phase !== undefined && isTerminal(phase)) {
          await this.tell(value, m, phase);
          members.push({ ...m, ended: phase });
          changed = true;
          continue;
        }
        members.push(m);
      }
      const done = members.every((m) => m.status === 'refused' || m.status === 'superseded' || m.ended !== undefined);
      if (!changed && !done) continue;
      const next: RebuildWave = { ...value, members, ...(done ? { closedAt: new Date().toISOString() } : {}) };
      try {
        await this.kv.update(key, encode(next), revision);
      } catch (e) {
        // Another replica moved it first; the rebuild ids make anything it also submitted the same build.
        this.log.debug({ err: e, wave: key }, 'wave changed under us; next round');
        this.again = true;
        continue;
      }
      if (done) {
        this.open.delete(key);
        this.log.info({ base: value.base, to: value.to, members: members.map((m) => `${m.repository}:${m.ended ?? m.status}`) }, 'rebuild wave ended');
      }
    }
  }

  private async submit(wave: RebuildWave, m: WaveMember): Promise<WaveMember> {
    const rebuildOf: RebuildOf = { buildId: m.previousBuildId, base: wave.base, from: m.from, to: wave.to, reason: rebuildReason(wave.base, m.from, wave.to) };
    const log = this.log.child({ rebuildId: m.rebuildId, previous: m.previousBuildId });
    try {
      const previous = await this.deps.record(m.previousBuildId);
      if (previous === null) throw new FleetError(ErrorCode.E_NOT_FOUND, `the dependent's last build ${m.previousBuildId} is gone`);
      await this.deps.submit({ ...previous.request, id: m.rebuildId, rebuildOf }, callerFor(m.tenant));
      await this.deps.publish({ type: 'rebuild', buildId: m.rebuildId, at: new Date().toISOString(), rebuildOf });
      log.info({ reason: rebuildOf.reason }, 'rebuild queued');
      return { ...m, status: 'submitted', submittedAt: new Date().toISOString() };
    } catch (e) {
      const err = toFleetError(e);
      log.warn({ err }, 'rebuild refused; reported in its wave, not retried');
      await this.tell(wave, m, 'refused', err.message);
      return { ...m, status: 'refused', error: err.toBody() };
    }
  }

  /** Tells the dependent's tenant how its rebuild ended (once: the id is derived from the rebuild). */
  private async tell(wave: RebuildWave, m: WaveMember, outcome: string, error?: string): Promise<void> {
    if (this.deps.notify === undefined) return;
    const data: Record<string, unknown> = {
      rebuildId: m.rebuildId, previousBuildId: m.previousBuildId, repository: m.repository, tags: m.tags,
      base: wave.base, from: m.from, to: wave.to, reason: rebuildReason(wave.base, m.from, wave.to), outcome, ...(error === undefined ? {} : { error }),
    };
    await this.deps.notify(m.tenant, m.rebuildId, data, `${m.rebuildId}.rebuilt`).catch((e: unknown) => this.log.warn({ err: e, rebuildId: m.rebuildId }, 'could not queue the rebuild notification'));
  }

  private async read(key: string): Promise<{ value: RebuildWave; revision: number } | null> {
    const entry = await this.kv.get(key);
    if (entry === null || entry.operation !== 'PUT') return null;
    return { value: parseWith(RebuildWave, entry.json(), 'rebuild wave', ErrorCode.E_INTERNAL), revision: entry.revision };
  }
}
