import { randomBytes } from 'node:crypto';
import type { JetStreamClient } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import { ErrorCode, FleetError, ScanReport, decodeWith, encode, subjects, type ScanJob } from '../protocol/index.ts';
import type { Logger } from '../adapters/logger.ts';

export type ScanSuccess = Extract<ScanReport, { ok: true }>;

export interface ScanTarget {
  buildId: string;
  attempt: number;
  registry: string;
  insecure: boolean;
  repository: string;
  digest: string;
}

/**
 * Asks the scanner pool to scan one digest and waits for its report. Fails closed: whatever
 * keeps a usable report from arriving in time (no scanner, a scanner error, a bad DB) is an
 * E_SCAN_UNAVAILABLE, never a pass.
 */
export class ScanClient {
  /** told the DB build time of each gate scan's report (coordinator/rescans.ts watches for a newer DB) */
  onDbBuilt: ((dbBuilt: string) => void) | undefined;

  constructor(
    private readonly nc: NatsConnection,
    private readonly js: JetStreamClient,
    private readonly timeoutMs: number,
    private readonly log: Logger,
  ) {}

  /** `observeDb: false` for scans that must not start a rescan themselves (the rescans' own). */
  async scan(target: ScanTarget, signal?: AbortSignal, options: { observeDb?: boolean } = {}): Promise<ScanSuccess> {
    // A fresh id per gate run: a redelivered worker report gates (and scans) again, and its
    // answer must not be taken for an older run's.
    const scanId = `${target.buildId}-${target.attempt}-${randomBytes(6).toString('hex')}`;
    const log = this.log.child({ buildId: target.buildId, scanId, digest: target.digest });
    // Subscribed before the job is published, so even an instant report is not missed.
    const sub = this.nc.subscribe(subjects.scanResult(scanId), { max: 1 });
    const timer = setTimeout(() => sub.unsubscribe(), this.timeoutMs);
    const onAbort = (): void => sub.unsubscribe();
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      const job: ScanJob = {
        scanId,
        buildId: target.buildId,
        registry: target.registry,
        insecure: target.insecure,
        repository: target.repository,
        digest: target.digest,
        at: new Date().toISOString(),
      };
      await this.js.publish(subjects.scanJobs, encode(job), { msgID: scanId });
      log.info('scan requested');
      for await (const msg of sub) {
        const report = decodeWith(ScanReport, msg.data, 'scan report', ErrorCode.E_SCAN_UNAVAILABLE);
        if (report.digest !== target.digest) {
          throw new FleetError(ErrorCode.E_SCAN_UNAVAILABLE, `the scanner reported on ${report.digest}, not ${target.digest}`);
        }
        if (!report.ok) {
          log.warn({ code: report.error.code, reason: report.error.message }, 'scanner could not scan');
          throw new FleetError(ErrorCode.E_SCAN_UNAVAILABLE, `vulnerability scan failed: ${report.error.message}`);
        }
        log.info({ findings: report.findings.length, durationMs: report.durationMs, dbBuilt: report.scanner.dbBuilt }, 'scan report received');
        if (options.observeDb !== false) this.onDbBuilt?.(report.scanner.dbBuilt);
        return report;
      }
      if (signal?.aborted === true) throw new FleetError(ErrorCode.E_CANCELLED, 'scan wait aborted');
      // A coordinator stopping mid-scan is no verdict on the image: retryable, so the worker's
      // report is delivered again (to this coordinator's successor) and the image scanned again.
      if (this.nc.isClosed() || this.nc.isDraining()) throw new FleetError(ErrorCode.E_UNAVAILABLE, 'the coordinator stopped while waiting for a scan report');
      throw new FleetError(ErrorCode.E_SCAN_UNAVAILABLE, `no vulnerability scan report within ${Math.round(this.timeoutMs / 1000)} s: is a scanner running?`);
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      sub.unsubscribe();
    }
  }
}
