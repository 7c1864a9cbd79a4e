import type { Consumer, JsMsg, JetStreamClient } from '@nats-io/jetstream';
import {
  ErrorCode,
  FleetError,
  WorkerReport,
  decodeWith,
  encode,
  isFleetError,
  subjects,
  toFleetError,
  type BuildRecord,
  type ScanRequest,
} from '../protocol/index.ts';
import type { Logger } from '../runtime/logger.ts';
import { isCurrentAttempt } from './attempts.ts';
import type { BuildStore } from './build-store.ts';
import type { CoordinatorConfig } from './config.ts';
import { fetchManifestDigest } from './registry-client.ts';

const RETRY_DELAY_MS = 2_000;

/**
 * Turns workers' reports into authoritative state. A `pushed` report is only believed after the
 * registry confirms every reference points at the reported digest.
 */
export class ReportProcessor {
  constructor(
    private readonly config: CoordinatorConfig,
    private readonly store: BuildStore,
    private readonly js: JetStreamClient,
    private readonly log: Logger,
  ) {}

  async run(consumer: Consumer, signal: AbortSignal): Promise<void> {
    const messages = await consumer.consume({ max_messages: 32 });
    signal.addEventListener('abort', () => void messages.close(), { once: true });
    for await (const msg of messages) {
      await this.handle(msg);
    }
  }

  private async handle(msg: JsMsg): Promise<void> {
    let report: WorkerReport;
    try {
      report = decodeWith(WorkerReport, msg.data, 'worker report', ErrorCode.E_INVALID_JOB);
    } catch (e) {
      this.log.error({ err: e, subject: msg.subject }, 'discarding malformed worker report');
      msg.term('malformed');
      return;
    }
    const log = this.log.child({ buildId: report.buildId, workerId: report.workerId, attempt: report.attempt });
    try {
      await this.apply(report, log);
      msg.ack();
    } catch (e) {
      const err = toFleetError(e);
      if (err.code === ErrorCode.E_REGISTRY_UNAVAILABLE || err.code === ErrorCode.E_UNAVAILABLE) {
        log.warn({ err }, 'cannot verify report yet; will retry');
        msg.nak(RETRY_DELAY_MS);
        return;
      }
      log.error({ err }, 'report could not be applied');
      msg.term(err.code);
    }
  }

  private async apply(report: WorkerReport, log: Logger): Promise<void> {
    const current = await this.store.get(report.buildId);
    if (current === null) throw new FleetError(ErrorCode.E_NOT_FOUND, `report for unknown build ${report.buildId}`);
    if (!isCurrentAttempt(current.record, report.attempt)) {
      log.warn({ phase: current.record.state.phase }, 'discarding report of a stale attempt');
      return;
    }
    if (report.type === 'failed') {
      await this.fail(report.buildId, report.attempt, FleetError.fromBody(report.error));
      log.info({ code: report.error.code }, 'build failed');
      return;
    }
    const mismatch = await this.verifyPushed(current.record, report.digest);
    if (mismatch !== null) {
      await this.fail(report.buildId, report.attempt, mismatch);
      log.error({ err: mismatch }, 'worker reported a digest the registry does not confirm');
      return;
    }
    const finishedAt = new Date().toISOString();
    const updated = await this.store.transition(report.buildId, (r) =>
      isCurrentAttempt(r, report.attempt)
        ? { phase: 'pushed', attempt: report.attempt, digest: report.digest, references: report.references, finishedAt }
        : null,
    );
    if (updated.state.phase === 'pushed') {
      await this.requestScan(updated, report.digest);
      log.info({ digest: report.digest }, 'build pushed and verified');
    }
  }

  private async verifyPushed(record: BuildRecord, digest: string): Promise<FleetError | null> {
    const { repository, tags } = record.request.image;
    for (const tag of tags) {
      const actual = await fetchManifestDigest(this.config.registry, repository, tag);
      if (actual !== digest) {
        return new FleetError(
          ErrorCode.E_DIGEST_MISMATCH,
          `registry has ${actual ?? 'no manifest'} for ${repository}:${tag}, worker reported ${digest}`,
        );
      }
    }
    return null;
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
