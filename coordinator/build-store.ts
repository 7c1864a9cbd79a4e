import type { JetStreamClient } from '@nats-io/jetstream';
import type { KV } from '@nats-io/kv';
import {
  BuildRecord,
  ErrorCode,
  FleetError,
  canTransition,
  encode,
  parseWith,
  streams,
  subjects,
  type BuildEvent,
  type BuildState,
} from '../protocol/index.ts';
import type { Logger } from '../adapters/logger.ts';

export interface StoredRecord {
  record: BuildRecord;
  revision: number;
}

const CAS_ATTEMPTS = 20;
/** records remembered for a compare-and-swap without a read first (a few KB each) */
const KNOWN_RECORDS = 2_048;
const TERMINAL = new Set<BuildState['phase']>(['pushed', 'failed', 'cancelled', 'expired']);

/**
 * Build records in the KV bucket. Every change is a compare-and-swap on the record's revision
 * and must be a legal transition of the state union; the matching event is published after the
 * state is stored, with a message id so a repeated publish is deduplicated by JetStream.
 */
export class BuildStore {
  /**
   * The last revision of each record this coordinator read or wrote, so a transition can try its
   * compare-and-swap straight away (a claim: one KV round trip and no parse, not two and one).
   * Never trusted on its own: only a successful CAS on that revision proves it was current, and a
   * refusal or "no change" computed from it is checked again against a fresh read.
   */
  private readonly known = new Map<string, StoredRecord>();

  constructor(
    private readonly kv: KV,
    private readonly js: JetStreamClient,
    private readonly log: Logger,
  ) {}

  async get(id: string): Promise<StoredRecord | null> {
    const entry = await this.kv.get(id);
    if (entry === null || entry.operation !== 'PUT') return null;
    const record = parseWith(BuildRecord, entry.json(), 'stored build record', ErrorCode.E_INTERNAL);
    const stored = { record, revision: entry.revision };
    this.remember(stored);
    return stored;
  }

  private remember(stored: StoredRecord): void {
    const id = stored.record.id;
    // A read that started before a write may answer after it: keep the newer revision.
    const held = this.known.get(id);
    if (held !== undefined && held.revision > stored.revision) return;
    this.known.delete(id);
    // An ended build changes no more (a late report reads it with get): not worth keeping.
    if (TERMINAL.has(stored.record.state.phase)) return;
    this.known.set(id, stored);
    if (this.known.size > KNOWN_RECORDS) {
      const oldest = this.known.keys().next();
      if (oldest.done !== true) this.known.delete(oldest.value);
    }
  }

  /** Creates the record unless one exists; returns the existing one instead (idempotency). */
  async create(record: BuildRecord): Promise<{ created: true; record: BuildRecord } | { created: false; existing: StoredRecord }> {
    try {
      const revision = await this.kv.create(record.id, encode(record));
      this.remember({ record, revision });
      return { created: true, record };
    } catch (e) {
      const existing = await this.get(record.id);
      if (existing === null) throw e;
      return { created: false, existing };
    }
  }

  /**
   * Moves a build to the state `next` computes from the current record. `next` may throw a
   * FleetError to refuse (e.g. a stale attempt); returning null means "no change".
   */
  async transition(id: string, next: (record: BuildRecord) => BuildState | null): Promise<BuildRecord> {
    const { record, stored } = await this.transitionSent(id, next);
    await stored;
    return record;
  }

  /**
   * As `transition`, but resolves once the record is stored and its event is *sent*, not acked:
   * `stored` settles with the event's JetStream ack (and the job's withdrawal, if any). The event
   * is written to the connection before this resolves, so anything the caller sends after it on
   * the same connection (a claim's reply) reaches the server behind the event: a worker never
   * sees its claim answered before the server has the `started` event, and the events of a build
   * stay in order. A claim answers here and awaits `stored` after, a round trip shorter.
   */
  async transitionSent(id: string, next: (record: BuildRecord) => BuildState | null): Promise<{ record: BuildRecord; stored: Promise<void> }> {
    // First try from the remembered revision; every retry (and every answer that is not a write) reads.
    let remembered = this.known.get(id);
    for (let i = 0; i < CAS_ATTEMPTS; i++) {
      const fromMemory = remembered !== undefined;
      const current = remembered ?? (await this.get(id));
      remembered = undefined;
      if (current === null) throw new FleetError(ErrorCode.E_NOT_FOUND, `no build with id ${id}`);
      let state: BuildState | null;
      try {
        state = next(current.record);
      } catch (e) {
        if (fromMemory) continue; // a refusal must be of the current record
        throw e;
      }
      if (state === null) {
        if (fromMemory) continue;
        return { record: current.record, stored: Promise.resolve() };
      }
      const from = current.record.state.phase;
      if (!canTransition(from, state.phase)) {
        if (fromMemory) continue;
        throw new FleetError(ErrorCode.E_CONFLICT, `build ${id} cannot go from ${from} to ${state.phase}`);
      }
      const updated: BuildRecord = { ...current.record, state, updatedAt: new Date().toISOString() };
      let revision: number;
      try {
        revision = await this.kv.update(id, encode(updated), current.revision);
      } catch (e) {
        this.log.debug({ buildId: id, err: e }, 'record changed under us; retrying');
        this.known.delete(id);
        continue;
      }
      this.remember({ record: updated, revision });
      // Called without an await in between: the event's PUB is in the connection's buffer now.
      const published = this.publishEvent(updated);
      const stored = from === 'queued' && state.phase !== 'running' ? published.then(() => this.withdrawJob(updated)) : published;
      return { record: updated, stored };
    }
    throw new FleetError(ErrorCode.E_UNAVAILABLE, `build ${id} is changing too fast to update`);
  }

  /**
   * A build that ends while queued (cancelled, expired) takes its job out of the work queue, so
   * it stops counting as lag (KEDA would start a worker for it) and no worker pulls it. Best
   * effort: if the purge fails, a worker that pulls the job has its claim refused, as before.
   */
  private async withdrawJob(record: BuildRecord): Promise<void> {
    try {
      const jsm = await this.js.jetstreamManager();
      await jsm.streams.purge(streams.jobs, { filter: subjects.job(record.request.pool, record.id) });
    } catch (e) {
      this.log.warn({ buildId: record.id, err: e }, 'could not take the job of an ended build out of the queue');
    }
  }

  async publishEvent(record: BuildRecord): Promise<void> {
    await this.publish(eventFor(record));
  }

  /** Publishes an event that is not a phase change of its own (e.g. a gate verdict). */
  async publish(event: BuildEvent): Promise<void> {
    const attempt = 'attempt' in event ? event.attempt : 0;
    await this.js.publish(subjects.event(event.buildId), encode(event), { msgID: `${event.buildId}.${event.type}.${attempt}` });
  }
}

function eventFor(record: BuildRecord): BuildEvent {
  const base = { buildId: record.id, at: record.updatedAt };
  const s = record.state;
  switch (s.phase) {
    case 'queued':
      return { ...base, type: 'queued' };
    case 'running':
      return { ...base, type: 'started', attempt: s.attempt, workerId: s.workerId };
    case 'verifying':
      return { ...base, type: 'verifying', attempt: s.attempt, digest: s.digest, quarantine: s.quarantine };
    case 'pushed':
      return { ...base, type: 'pushed', attempt: s.attempt, digest: s.digest, references: s.references };
    case 'failed':
      return { ...base, type: 'failed', attempt: s.attempt, error: s.error };
    case 'cancelled':
      return { ...base, type: 'cancelled', attempt: s.attempt };
    case 'expired':
      return { ...base, type: 'expired', queueTtlSeconds: s.queueTtlSeconds };
  }
}
