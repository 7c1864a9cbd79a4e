import type { Consumer, JetStreamClient } from '@nats-io/jetstream';
import {
  ErrorCode,
  FleetError,
  WorkerReport,
  decodeWith,
  encode,
  isFleetError,
  subjects,
  type BaseImage,
  type BuildRecord,
  type BuildState,
  type ProvenanceSummary,
  type Verdict,
  type ScanRequest,
} from '../protocol/index.ts';
import type { Logger } from '../adapters/logger.ts';
import type { RegistryClient } from '../adapters/registry-client.ts';
import { holdsClaim, isCurrentAttempt } from './attempts.ts';
import type { BuildStore } from './build-store.ts';
import type { CoordinatorConfig } from './config.ts';
import { runGates, type GatePolicy } from './gates/index.ts';
import { withVulnerabilityScan } from './gates/vulnerabilities.ts';
import type { ScanClient } from './scan-client.ts';
import { stagePromotion } from './promotion.ts';
import { quarantineOf } from './render-job.ts';
import { consume } from './consume.ts';
import type { ProvenanceWriter } from './provenance/writer.ts';
import { parseBaseName } from './rebuilds/base-name.ts';

/** Provenance at promotion: the writer, and what a worker announced about its builder. */
export interface ProvenanceSettings {
  writer: ProvenanceWriter;
  builderOf(pool: string, workerId: string): Promise<{ kind: string; version: string }>;
}

/** What the gates need besides the image: the policy and the official images' signing key. */
export interface GateSettings {
  policy: GatePolicy;
  signingPublicKey: string;
  /** the scanner pool's client; absent when the fleet has none (the vulnerabilities gate is skipped) */
  scan?: ScanClient;
}

// A registry outage is waited out (about 100 minutes at the 30 s backoff cap); a bug is not.
const MAX_DELIVERIES = 200;

/**
 * Turns workers' reports into authoritative state. A `pushed` report is only believed after the
 * registry confirms the quarantine reference points at the reported digest; then the gates read
 * the image by digest, and only an image no gate blocks is promoted to its release tags.
 * A report is acked once all of that is stored, so a coordinator that dies midway gates again.
 */
export class ReportProcessor {
  constructor(
    private readonly config: CoordinatorConfig,
    private readonly registry: RegistryClient,
    private readonly gates: GateSettings,
    private readonly store: BuildStore,
    private readonly js: JetStreamClient,
    private readonly log: Logger,
    /** signs and stores each promoted image's provenance; absent only when platform.provenance is off */
    private readonly provenance?: ProvenanceSettings,
  ) {}

  run(consumer: Consumer, signal: AbortSignal): Promise<void> {
    return consume(
      consumer,
      {
        what: 'worker report',
        decode: (msg) => ({ report: decodeWith(WorkerReport, msg.data, 'worker report', ErrorCode.E_INVALID_JOB), pool: subjects.callerOf(msg.subject) }),
        handle: ({ report, pool }, msg) => this.apply(report, pool, this.log.child({ buildId: report.buildId, workerId: report.workerId, attempt: report.attempt, pool }), () => msg.working()),
        // A report that can never be applied must not leave its build running forever.
        giveUp: ({ report }, err) => this.fail(report.buildId, report.attempt, err),
        log: this.log,
        maxMessages: 32,
        maxDeliveries: MAX_DELIVERIES,
        // Reports of different builds are independent (gates, registry calls): applied side by
        // side; one build's stay in order, so a redelivered report never overtakes a later one.
        concurrency: this.config.reportConcurrency,
        keyOf: ({ report }) => report.buildId,
      },
      signal,
    );
  }

  private async apply(report: WorkerReport, pool: string, log: Logger, keepAlive: () => void): Promise<void> {
    const current = await this.store.get(report.buildId);
    if (current === null) {
      log.warn('discarding a report for an unknown build');
      return;
    }
    // The subject's pool is proven by the sender's NATS user; the report must also come from the claim holder.
    if (current.record.request.pool !== pool) {
      log.warn({ pool, buildPool: current.record.request.pool }, 'discarding a report sent from another pool');
      return;
    }
    if (!holdsClaim(current.record, report.attempt, report.workerId)) {
      log.warn({ phase: current.record.state.phase }, 'discarding a report from a worker not holding the current claim');
      return;
    }
    if (report.type === 'resolved') {
      this.readAhead(report.base, log);
      return;
    }
    if (report.type === 'failed') {
      await this.fail(report.buildId, report.attempt, FleetError.fromBody(report.error));
      log.info({ code: report.error.code }, 'build failed');
      return;
    }
    const record = current.record;
    const quarantine = quarantineOf(record.request);
    const actual = (await this.registry.manifest(quarantine.repository, quarantine.tag))?.digest ?? null;
    if (actual !== report.digest) {
      const mismatch = new FleetError(
        ErrorCode.E_DIGEST_MISMATCH,
        `registry has ${actual ?? 'no manifest'} for ${quarantine.repository}:${quarantine.tag}, worker reported ${report.digest}`,
      );
      await this.fail(report.buildId, report.attempt, mismatch);
      log.error({ err: mismatch }, 'worker reported a digest the registry does not confirm');
      return;
    }
    const quarantineRef = `${this.config.registry.host}/${quarantine.repository}:${quarantine.tag}`;
    const startedAt = new Date().toISOString();
    // The attempt's start, for provenance: the running phase's clock, kept through verifying.
    const buildStartedAt = current.record.state.phase === 'running' ? current.record.state.startedAt : undefined;
    const verifying = await this.store.transition(report.buildId, (r) =>
      r.state.phase === 'verifying' && r.state.attempt === report.attempt
        ? null // a redelivered report: the gates run again on the same quarantined digest
        : holdsClaim(r, report.attempt, report.workerId)
          ? { phase: 'verifying', attempt: report.attempt, workerId: report.workerId, digest: report.digest, quarantine: quarantineRef, ...basesOf(report), ...(buildStartedAt === undefined ? {} : { buildStartedAt }), startedAt }
          : null,
    );
    if (verifying.state.phase !== 'verifying' || verifying.state.attempt !== report.attempt) return;

    const gated = await runGates({
      registry: this.registry,
      policy: this.gates.policy,
      signingPublicKey: this.gates.signingPublicKey,
      kind: record.request.kind,
      quarantineRepository: quarantine.repository,
      digest: report.digest,
      repository: record.request.image.repository,
    });
    const verdict = await withVulnerabilityScan(gated, {
      scan: this.gates.scan, policy: this.gates.policy, kind: record.request.kind, repository: record.request.image.repository, keepAlive,
      target: { buildId: report.buildId, attempt: report.attempt, registry: this.config.registry.host, insecure: this.config.registry.insecure, repository: quarantine.repository, digest: report.digest },
    });
    if (verdict instanceof FleetError) {
      await this.fail(report.buildId, report.attempt, verdict);
      log.error({ err: verdict, digest: report.digest }, 'no usable vulnerability scan; stays in quarantine');
      return;
    }
    await this.store.publish({ type: 'verdict', buildId: report.buildId, at: new Date().toISOString(), attempt: report.attempt, verdict });
    const blocking = verdict.gates.filter((g) => g.outcome === 'block');
    if (blocking.length > 0) {
      const error = new FleetError(
        ErrorCode.E_GATE_BLOCKED,
        `gates blocked promotion: ${blocking.map((g) => `${g.gate} ${g.code}: ${g.reason}`).join('; ')}`,
        { gates: blocking.map((g) => ({ gate: g.gate, code: g.code, reason: g.reason })) },
      );
      await this.fail(report.buildId, report.attempt, error);
      log.warn({ digest: report.digest, gates: blocking.map((g) => g.code) }, 'image blocked by gates; stays in quarantine');
      return;
    }
    const finishedAt = new Date().toISOString();
    // Signed before the release tags move, so no promoted image is without its attestation; the
    // blobs are mounted meanwhile.
    const [provenance, tagRelease] = await Promise.all([
      this.writeProvenance(record, report, verifying.state, verdict, finishedAt, quarantine.repository),
      stagePromotion(this.registry, { repository: quarantine.repository, digest: report.digest }, record.request.image),
    ]);
    const references = await tagRelease();
    const updated = await this.store.transition(report.buildId, (r) =>
      r.state.phase === 'verifying' && r.state.attempt === report.attempt
        ? { phase: 'pushed', attempt: report.attempt, digest: report.digest, references, verdict, ...basesOf(report), ...(provenance === null ? {} : { provenance }), finishedAt }
        : null,
    );
    if (updated.state.phase === 'pushed') {
      await this.requestScan(updated, report.digest);
      log.info({ digest: report.digest }, 'build verified, gated and promoted');
    }
  }

  /**
   * Starts reading the layers of the image's base for the SBOM while the build runs (they are
   * remembered by digest, and a pushed image shares its base's). Only a base in the platform's
   * own registry, named by tag; nothing waits on it, and a failed read leaves the SBOM to read
   * the layers itself.
   */
  private readAhead(base: BaseImage, log: Logger): void {
    const writer = this.provenance?.writer;
    const ref = parseBaseName(base.name);
    if (writer === undefined || ref?.host !== this.config.registry.host) return;
    void writer.readAhead(ref.repository, base.digest).catch((err: unknown) => log.debug({ err, base: base.name }, 'reading a base’s packages ahead failed'));
  }

  private async writeProvenance(
    record: BuildRecord,
    report: WorkerReport & { type: 'pushed' },
    verifying: BuildState,
    verdict: Verdict,
    finishedOn: string,
    quarantineRepository: string,
  ): Promise<ProvenanceSummary | null> {
    if (this.provenance === undefined) return null;
    const startedOn = verifying.phase === 'verifying' ? verifying.buildStartedAt : undefined;
    return this.provenance.writer.write(
      {
        record,
        registry: this.config.registry.host,
        digest: report.digest,
        attempt: report.attempt,
        workerId: report.workerId,
        builder: await this.provenance.builderOf(record.request.pool, report.workerId),
        bases: report.bases ?? [],
        startedOn,
        finishedOn,
        verdict,
      },
      quarantineRepository,
    );
  }

  private async fail(buildId: string, attempt: number, error: FleetError): Promise<void> {
    const finishedAt = new Date().toISOString();
    try {
      await this.store.transition(buildId, (r) =>
        isCurrentAttempt(r, attempt) ? { phase: 'failed', attempt, error: error.toBody(), finishedAt } : null,
      );
    } catch (e) {
      if (!isFleetError(e, ErrorCode.E_CONFLICT)) throw e;
    }
  }

  private async requestScan(record: BuildRecord, digest: string): Promise<void> {
    const scan: ScanRequest = {
      buildId: record.id,
      digest,
      registry: this.config.registry.host,
      repository: record.request.image.repository,
      references: record.request.image.tags.map((t) => `${this.config.registry.host}/${record.request.image.repository}:${t}`),
      at: new Date().toISOString(),
    };
    await this.js.publish(subjects.scanRequest, encode(scan), { msgID: `${record.id}.scan` });
  }
}

/** The report's resolved bases for the record; nothing from a worker older than the field. */
function basesOf(report: WorkerReport & { type: 'pushed' }): { bases?: BaseImage[] } {
  return report.bases === undefined ? {} : { bases: report.bases };
}
