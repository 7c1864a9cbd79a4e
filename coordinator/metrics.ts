import type { JetStreamClient } from '@nats-io/jetstream';
import type { KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/nats-core';
import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { ErrorCode, type BuildRecord, type BuildState } from '../protocol/index.ts';
import type { Logger } from '../adapters/logger.ts';
import { BoundedCache } from '../adapters/bounded-cache.ts';
import { BuildStore } from './build-store.ts';
import { UNKNOWN_BUILDER, type RegisteredWorkers } from './registered-workers.ts';

/** Queue waits run from seconds to hours (a pool with no free worker); builds from seconds to the run timeout. */
const WAIT_BUCKETS = [1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 3 * 3600, 6 * 3600, 24 * 3600];
const RUN_BUCKETS = [5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 2 * 3600, 4 * 3600];
const GATE_BUCKETS = [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];
/** A NATS API answer is milliseconds: fine buckets around the claim target (25 ms). */
const ANSWER_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05, 0.075, 0.1, 0.25, 0.5, 1, 2.5, 5];

export type CoordinatorMetrics = ReturnType<typeof createCoordinatorMetrics>;

/**
 * The coordinator's Prometheus metrics, in a registry of its own (two replicas in one process,
 * as tests run them, must not share one). Each transition is counted by the replica whose
 * compare-and-swap stored it, so summing over replicas counts every build once.
 */
export function createCoordinatorMetrics(options: { processMetrics?: boolean } = {}) {
  const registry = new Registry();
  if (options.processMetrics !== false) collectDefaultMetrics({ register: registry });
  const builds = new Counter({
    name: 'fleet_builds_total',
    help: 'Builds that reached a final state, by outcome (pushed, failed, cancelled, expired) and error code (failed only)',
    labelNames: ['pool', 'builder', 'outcome', 'code'] as const,
    registers: [registry],
  });
  const queueWait = new Histogram({
    name: 'fleet_build_queue_wait_seconds',
    help: 'Time from submission to a worker starting the build (first attempt or a redelivery)',
    labelNames: ['pool', 'builder'] as const,
    buckets: WAIT_BUCKETS,
    registers: [registry],
  });
  const runTime = new Histogram({
    name: 'fleet_build_run_seconds',
    help: 'Time a worker spent on an attempt, from its start to its report (or cancel)',
    labelNames: ['pool', 'builder', 'outcome'] as const,
    buckets: RUN_BUCKETS,
    registers: [registry],
  });
  const gates = new Histogram({
    name: 'fleet_gates_seconds',
    help: 'Time the gates took on a quarantined image, from verifying to the verdict being stored',
    labelNames: ['pool', 'outcome'] as const,
    buckets: GATE_BUCKETS,
    registers: [registry],
  });
  const deadLetters = new Counter({
    name: 'fleet_dead_letters_total',
    help: 'Jobs parked in the dead letter queue after exhausting their deliveries',
    labelNames: ['pool'] as const,
    registers: [registry],
  });
  const apiAnswer = new Histogram({
    name: 'fleet_nats_api_answer_seconds',
    help: "Time from a NATS API request's arrival at this coordinator to its answer being sent, by API (claim, submit, status, cancel, ...)",
    labelNames: ['api'] as const,
    buckets: ANSWER_BUCKETS,
    registers: [registry],
  });
  const sbomLayerReads = new Counter({
    name: 'fleet_sbom_layers_read_total',
    help: 'Image layers read from the registry for SBOMs: ahead (a running build announced the base of its image) or sbom (when the SBOM was written); a layer read once is remembered by digest',
    labelNames: ['when'] as const,
    registers: [registry],
  });
  return { registry, builds, queueWait, runTime, gates, deadLetters, apiAnswer, sbomLayerReads };
}

const seconds = (from: string, to: string): number => Math.max(0, (Date.parse(to) - Date.parse(from)) / 1000);

const FINAL = new Set<BuildState['phase']>(['pushed', 'failed', 'cancelled', 'expired']);

/**
 * What one stored transition tells the metrics. `builder` names the builder of the worker that
 * ran (or runs) the build, 'none' when none started it.
 */
export function observeTransition(metrics: CoordinatorMetrics, before: BuildRecord, after: BuildRecord, builder: string): void {
  const pool = after.request.pool;
  const from = before.state;
  const to = after.state;
  if (to.phase === 'running' && from.phase === 'queued') {
    metrics.queueWait.observe({ pool, builder }, seconds(before.createdAt, to.startedAt));
  }
  if (from.phase === 'running' && to.phase !== 'running') {
    const outcome = to.phase === 'verifying' ? 'built' : to.phase;
    metrics.runTime.observe({ pool, builder, outcome }, seconds(from.startedAt, after.updatedAt));
  }
  if (from.phase === 'verifying' && FINAL.has(to.phase)) {
    metrics.gates.observe({ pool, outcome: to.phase }, seconds(before.updatedAt, after.updatedAt));
  }
  if (FINAL.has(to.phase) && !FINAL.has(from.phase)) {
    const code = to.phase === 'failed' ? to.error.code : '';
    metrics.builds.inc({ pool, builder, outcome: to.phase, code });
    if (code === ErrorCode.E_DEAD_LETTER) metrics.deadLetters.inc({ pool });
  }
}

/**
 * The build store, counting every transition it stores. The builder of a build is read from the
 * workers bucket (what the worker that claimed it announced) and remembered per worker.
 */
export class MeteredBuildStore extends BuildStore {
  private readonly builders = new BoundedCache<string, string>({ maxEntries: 10_000 });

  constructor(
    kv: KV,
    js: JetStreamClient,
    log: Logger,
    private readonly metrics: CoordinatorMetrics,
    private readonly registered: RegisteredWorkers,
  ) {
    super(kv, js, log);
  }

  // transitionSent, not transition: every transition goes through it (transition awaits it, a
  // claim answers from it), so no path stores a transition uncounted.
  override async transitionSent(id: string, next: (record: BuildRecord) => BuildState | null): Promise<{ record: BuildRecord; stored: Promise<void> }> {
    let before: BuildRecord | undefined;
    const sent = await super.transitionSent(id, (record) => {
      const state = next(record);
      before = state === null ? undefined : record;
      return state;
    });
    if (before !== undefined) observeTransition(this.metrics, before, sent.record, await this.builderOf(before, sent.record));
    return sent;
  }

  private async builderOf(before: BuildRecord, after: BuildRecord): Promise<string> {
    const s = after.state.phase === 'running' ? after.state : before.state;
    const workerId = 'workerId' in s ? s.workerId : undefined;
    if (workerId === undefined) return 'none';
    const known = this.builders.get(workerId);
    if (known !== undefined) return known;
    // a claim's check has just read this worker's entry: answered from memory, not a second KV read
    const builder = (await this.registered.builderOf(after.request.pool, workerId)) ?? UNKNOWN_BUILDER;
    if (builder !== UNKNOWN_BUILDER) this.builders.set(workerId, builder.kind);
    return builder.kind;
  }
}

/**
 * Readiness: the NATS connection is up (not closed, not between a disconnect and a reconnect),
 * the topology was ensured, and the coordinator is not closing.
 */
export class Readiness {
  private connected = true;
  private topology = false;
  private closing = false;

  constructor(nc: NatsConnection) {
    void (async () => {
      for await (const s of nc.status()) {
        if (s.type === 'disconnect' || s.type === 'reconnecting') this.connected = false;
        if (s.type === 'reconnect') this.connected = true;
      }
    })();
    void nc.closed().then(() => {
      this.connected = false;
    });
  }

  topologyEnsured(): void {
    this.topology = true;
  }

  close(): void {
    this.closing = true;
  }

  get ready(): { ok: boolean; nats: boolean; topology: boolean; closing: boolean } {
    return { ok: this.connected && this.topology && !this.closing, nats: this.connected, topology: this.topology, closing: this.closing };
  }
}
