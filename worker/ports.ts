import { setTimeout as sleep } from 'node:timers/promises';
import type { JetStreamClient } from '@nats-io/jetstream';
import type { KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/nats-core';
import { ClaimReply, ErrorCode, FleetError, decodeWith, encode, subjects, type BuildJob, type WorkerReport } from '../protocol/index.ts';
import type { Logger } from '../adapters/logger.ts';
import type { RegistryClient } from '../adapters/registry-client.ts';
import type { S3Store } from '../adapters/s3-store.ts';
import type { BuildOutput, Builder } from './builders/index.ts';
import type { WorkerConfig } from './config.ts';
import { BuildLog } from './build-log.ts';
import { watchForCancel } from './cancel-watch.ts';
import { downloadContext } from './context-download.ts';
import { extractContext } from './context-extract.ts';
import type { LogMasker } from './log-masker.ts';

/** One attempt's log as the runner uses it. */
export interface AttemptLog extends BuildOutput {
  readonly attempt: number;
  /** the last lines, for a failure's report */
  tail(): string[];
  /** flushes the live log and archives the whole log; idempotent */
  close(): Promise<void>;
}

/**
 * Everything outside the runner that one attempt touches, as narrow ports: the runner's logic
 * (claim → build → settle) can then be tested without NATS, S3 or a builder.
 */
export interface RunnerPorts {
  /** asks the coordinator for this delivery of the job message `jobSeq`; null when granted, the refusal otherwise */
  claim(buildId: string, attempt: number, jobSeq: number): Promise<FleetError | null>;
  /** calls onCancel when the build is cancelled; returns what stops watching */
  watchCancel(buildId: string, onCancel: () => void): Promise<() => void>;
  /** durable before it resolves */
  report(report: WorkerReport): Promise<void>;
  openLog(buildId: string, attempt: number, archiveFile: string, masker: LogMasker): AttemptLog;
  /** downloads and unpacks the job's context into dir (tarball is scratch space) */
  fetchContext(job: BuildJob, tarball: string, dir: string, signal: AbortSignal): Promise<void>;
  registry(host: string): RegistryClient;
  readonly builder: Builder;
  /** where the worker's state follows the attempt */
  readonly lifecycle: { buildStarted(buildId: string): void; buildEnded(): void };
}

const CLAIM_TIMEOUT_MS = 5_000;
const REPORT_RETRY_MS = 60_000;

export interface NatsPortsDeps {
  config: WorkerConfig;
  nc: NatsConnection;
  js: JetStreamClient;
  s3: S3Store;
  builds: KV;
  builder: Builder;
  registry: (host: string) => RegistryClient;
  lifecycle: RunnerPorts['lifecycle'];
  log: Logger;
}

/** The ports a real worker uses: NATS for claims, reports, logs and cancels; S3 for contexts and archives. */
export function natsPorts(deps: NatsPortsDeps): RunnerPorts {
  const { config, nc, js, s3, log } = deps;
  return {
    async claim(buildId, attempt, jobSeq) {
      const reply = await nc.request(subjects.claim(config.pool), encode({ buildId, attempt, workerId: config.workerId, jobSeq }), { timeout: CLAIM_TIMEOUT_MS });
      const answer = decodeWith(ClaimReply, reply.data, 'claim reply', ErrorCode.E_INTERNAL);
      return answer.ok ? null : FleetError.fromBody(answer.error);
    },
    watchCancel: (buildId, onCancel) => watchForCancel(deps.builds, buildId, onCancel, log.child({ buildId })),
    // Retried through a NATS outage (the message id makes a repeat a no-op): a finished build
    // must not be rebuilt because the server restarted just as it ended.
    async report(report) {
      const deadline = Date.now() + REPORT_RETRY_MS;
      for (let delay = 250; ; delay = Math.min(delay * 2, 5_000)) {
        try {
          await js.publish(subjects.report(report.buildId, config.pool), encode(report), { msgID: `${report.buildId}.${report.attempt}.${report.type}` });
          return;
        } catch (e) {
          if (Date.now() + delay > deadline) throw e;
          log.warn({ err: e, buildId: report.buildId, delayMs: delay }, 'report not stored yet; retrying');
          await sleep(delay);
        }
      }
    },
    openLog: (buildId, attempt, archiveFile, masker) => new BuildLog(js, s3, buildId, config.pool, attempt, archiveFile, masker, config.logs),
    async fetchContext(job, tarball, dir, signal) {
      await downloadContext(s3, job.context, tarball, config.extract.maxBytes, signal);
      await extractContext(tarball, dir, config.extract, signal);
    },
    registry: deps.registry,
    builder: deps.builder,
    lifecycle: deps.lifecycle,
  };
}
