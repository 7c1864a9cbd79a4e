import { isAbsolute, join } from 'node:path';
import { jetstream, type Consumer, type JsMsg } from '@nats-io/jetstream';
import { z } from 'zod';
import { ErrorCode, ScanJob, consumers, decodeWith, encode, parseWith, streams, subjects, toFleetError, type ScanReport, type ScannerDbUpdated } from '../protocol/index.ts';
import { NatsCredentials, connectNats } from '../adapters/nats.ts';
import { cacheBin } from '../adapters/environment.ts';
import type { Logger } from '../adapters/logger.ts';
import { GrypeBackend } from './grype.ts';
import { GrypeDbUpdateOptions, MirroredGrypeBackend } from './grype-db.ts';
import { HarborBackend, HarborOptions } from './harbor.ts';
import { TrivyBackend, TrivyOptions } from './trivy.ts';
import type { ScanBackend } from './backend.ts';

export const ScannerOptions = z.strictObject({
  natsUrl: z.string().min(1),
  /** the scanner pool's NATS identity (user `scanner`) */
  natsCredentials: NatsCredentials,
  scannerId: z.string().min(1).default('scanner'),
  /**
   * grype's DB cache dir (GRYPE_DB_CACHE_DIR): filled by `grype db import`, or by the scanner from
   * `dbUpdate`'s mirror. grype never fetches a DB at scan time either way.
   */
  dbDir: z.string().refine(isAbsolute, 'must be an absolute path').optional(),
  /** keep dbDir current from a mirror of grype's DB distribution (at start, then every everyMs) */
  dbUpdate: GrypeDbUpdateOptions.optional(),
  /** a grype DB built longer ago than this is refused: the scan fails closed (E_SCAN_UNAVAILABLE) */
  dbMaxAgeHours: z.number().positive().max(24 * 365).default(120),
  grypeBin: z.string().refine(isAbsolute, 'must be an absolute path').optional(),
  /** scan through a Harbor scanner adapter (Pluggable Scanner API v1.1) instead of grype: set this or dbDir */
  harbor: HarborOptions.optional(),
  /** scan with trivy (its DB in trivy.cacheDir) instead of grype */
  trivy: TrivyOptions.optional(),
  /** a scan running longer is killed and reported as failed */
  scanTimeoutMs: z.number().int().min(1000).default(10 * 60_000),
  /**
   * how often a running scan tells JetStream it is still in progress; must stay well below the scan
   * job consumer's ack wait (coordinator scan.ackWaitMs), or a long scan is handed to a second scanner
   */
  workingEveryMs: z.number().int().min(100).default(20_000),
})
  .refine((o) => [o.dbDir, o.harbor, o.trivy].filter((b) => b !== undefined).length === 1, {
    message: 'set one backend: dbDir (grype), harbor (a Harbor scanner adapter) or trivy',
    path: ['dbDir'],
  })
  .refine((o) => o.dbUpdate === undefined || o.dbDir !== undefined, { message: 'dbUpdate keeps a grype DB current: it needs dbDir', path: ['dbUpdate'] });
export type ScannerOptions = z.input<typeof ScannerOptions>;

export interface Scanner {
  done: Promise<void>;
  stop(): Promise<void>;
}

const PULL_EXPIRES_MS = 5_000;

/**
 * A scanner of the pool: takes scan jobs from the work queue one at a time, runs grype on the
 * image by digest and publishes the report to whoever asked. A job that cannot be scanned is
 * answered with an error report rather than retried: the gate waiting on it fails closed and
 * tells the author at once, instead of after every redelivery's timeout.
 */
export async function startScanner(options: ScannerOptions, log: Logger): Promise<Scanner> {
  const config = parseWith(ScannerOptions, options, 'scanner options');
  const slog = log.child({ scannerId: config.scannerId });
  const grypeBin = config.grypeBin ?? join(cacheBin(), 'grype');
  const grype = config.dbDir === undefined ? null : new GrypeBackend(grypeBin, config.dbDir, config.dbMaxAgeHours);
  const mirrored =
    grype !== null && config.dbUpdate !== undefined && config.dbDir !== undefined
      ? new MirroredGrypeBackend(grype, grypeBin, config.dbDir, config.dbUpdate, config.dbMaxAgeHours, slog.child({ component: 'grype-db' }))
      : null;
  const backend: ScanBackend =
    config.harbor !== undefined
      ? new HarborBackend(config.harbor)
      : config.trivy !== undefined
        ? new TrivyBackend({ ...config.trivy, trivyBin: config.trivy.trivyBin ?? join(cacheBin(), 'trivy') })
        : (mirrored ?? grype ?? new GrypeBackend(grypeBin, ''));
  const nc = await connectNats(config.natsUrl, `fleet-scanner-${config.scannerId}`, config.natsCredentials, slog);
  const js = jetstream(nc);
  const stopping = new AbortController();
  if (mirrored !== null) {
    // Each DB this scanner starts scanning with is announced: the coordinator rescans released
    // images on a newer one at once (it ignores build times it already knows: many scanners, one rescan).
    mirrored.onDbChanged = (dbBuilt) => {
      const announcement: ScannerDbUpdated = { scannerId: config.scannerId, dbBuilt, at: new Date().toISOString() };
      try {
        nc.publish(subjects.scannerDbUpdated, encode(announcement));
      } catch (e) {
        // (closing down) the next report's dbBuilt still tells the coordinator
        slog.warn({ err: e, dbBuilt }, 'could not announce the DB update');
      }
    };
  }
  // The first update before taking jobs: a fresh scanner scans with the mirror's DB, not whatever
  // its dir held. A failure does not stop it: its scans fail closed until a DB fit to use is there.
  const updates = mirrored === null ? Promise.resolve() : mirrored.updateNow(stopping.signal).then(() => mirrored.runSchedule(stopping.signal));
  // (each backend caches per (digest, DB build): a redelivered worker report gates and asks again)

  const handle = async (msg: JsMsg): Promise<void> => {
    let job: ScanJob;
    try {
      job = decodeWith(ScanJob, msg.data, 'scan job', ErrorCode.E_INVALID_JOB);
    } catch (e) {
      slog.error({ err: e }, 'discarding a malformed scan job');
      msg.term('malformed');
      return;
    }
    const jlog = slog.child({ scanId: job.scanId, buildId: job.buildId, digest: job.digest });
    const timeout = AbortSignal.timeout(config.scanTimeoutMs);
    const signal = AbortSignal.any([timeout, stopping.signal]);
    const beat = setInterval(() => msg.working(), config.workingEveryMs);
    const started = Date.now();
    let report: ScanReport;
    try {
      const { findings, scanner, cached } = await backend.scan({ registry: job.registry, insecure: job.insecure, repository: job.repository, digest: job.digest }, signal);
      report = { ok: true, scanId: job.scanId, digest: job.digest, scanner, findings, durationMs: Date.now() - started, at: new Date().toISOString() };
      jlog.info({ findings: findings.length, durationMs: report.durationMs, dbBuilt: scanner.dbBuilt, cached }, 'scanned');
    } catch (e) {
      // A shutdown mid-scan hands the job back to another scanner; anything else is answered.
      if (stopping.signal.aborted) {
        clearInterval(beat);
        msg.nak();
        return;
      }
      const err = toFleetError(e, ErrorCode.E_SCAN_UNAVAILABLE);
      report = { ok: false, scanId: job.scanId, digest: job.digest, error: { code: ErrorCode.E_SCAN_UNAVAILABLE, message: err.message }, at: new Date().toISOString() };
      jlog.error({ err }, 'scan failed');
    } finally {
      clearInterval(beat);
    }
    nc.publish(subjects.scanResult(job.scanId), encode(report));
    await nc.flush();
    msg.ack();
  };

  const run = async (): Promise<void> => {
    let consumer: Consumer | null = null;
    for (let warned = false; consumer === null && !stopping.signal.aborted; ) {
      try {
        consumer = await js.consumers.get(streams.scanJobs, consumers.scanner);
      } catch (e) {
        if (!warned) slog.warn({ err: e }, 'scan job consumer not there yet (is the coordinator up?); waiting');
        warned = true;
        await new Promise((r) => setTimeout(r, 500));
      }
    }
    if (consumer === null) return;
    const where = { harbor: { url: config.harbor?.url }, trivy: { cacheDir: config.trivy?.cacheDir }, grype: { dbDir: config.dbDir, grypeBin, mirror: config.dbUpdate?.url } }[backend.kind];
    slog.info({ backend: backend.kind, ...where }, 'scanner ready');
    while (!stopping.signal.aborted) {
      let msg: JsMsg | null;
      try {
        msg = await consumer.next({ expires: PULL_EXPIRES_MS });
      } catch (e) {
        if (stopping.signal.aborted) break;
        slog.warn({ err: e }, 'pull failed; retrying');
        await new Promise((r) => setTimeout(r, 1_000));
        continue;
      }
      if (msg === null) continue;
      await handle(msg).catch((e: unknown) => {
        slog.error({ err: e }, 'scan job handling failed; handing it back');
        msg.nak(1_000);
      });
    }
  };

  const done = Promise.all([run(), updates]).then(() => undefined).finally(async () => {
    await nc.drain().catch(() => undefined);
    slog.info('scanner stopped');
  });
  return {
    done,
    async stop() {
      stopping.abort();
      await done;
    },
  };
}
