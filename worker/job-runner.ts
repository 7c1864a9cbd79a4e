import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { JetStreamClient, JsMsg } from '@nats-io/jetstream';
import type { KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/nats-core';
import {
  BuildId,
  BuildJob,
  ClaimReply,
  ErrorCode,
  FleetError,
  decodeWith,
  encode,
  isRetryable,
  subjects,
  toFleetError,
  type BuildJob as Job,
  type WorkerReport,
} from '../protocol/index.ts';
import type { Logger } from '../adapters/logger.ts';
import type { RegistryAccess } from './registry-access.ts';
import type { S3Store } from '../adapters/s3-store.ts';
import { downloadContext } from './context-download.ts';
import { extractContext } from './context-extract.ts';
import type { Builder } from './builders/index.ts';
import type { WorkerConfig } from './config.ts';
import { BuildLog } from './build-log.ts';
import { watchForCancel } from './cancel-watch.ts';
import { LogMasker } from './log-masker.ts';
import { verifyOfficialBases } from './official-bases.ts';

const CLAIM_TIMEOUT_MS = 5_000;
const RETRY_BASE_MS = 1_000;
const RETRY_MAX_MS = 30_000;
const REPORT_RETRY_MS = 60_000;

/** Runs one delivery of one job, from claim to report. Never throws: every outcome is handled. */
export class JobRunner {
  constructor(
    private readonly config: WorkerConfig,
    private readonly nc: NatsConnection,
    private readonly js: JetStreamClient,
    private readonly s3: S3Store,
    private readonly builds: KV,
    private readonly builder: Builder,
    private readonly registries: RegistryAccess,
    /** the pool consumer's max_deliver: the last delivery reports failure instead of retrying */
    private readonly maxDeliver: number,
    /** told which build this worker is on (null when idle), for `fleet workers` */
    private readonly onBuild: (buildId: string | null) => void,
    private readonly log: Logger,
  ) {
    this.patterns = config.maskPatterns.map((p) => new RegExp(p, 'g'));
  }

  private readonly patterns: RegExp[];

  async handle(msg: JsMsg, signal: AbortSignal): Promise<void> {
    const attempt = msg.info.deliveryCount;
    let job: Job;
    try {
      job = decodeWith(BuildJob, msg.data, 'build job', ErrorCode.E_INVALID_JOB);
    } catch (e) {
      await this.rejectMalformed(msg, attempt, toFleetError(e));
      return;
    }
    const log = this.log.child({ buildId: job.buildId, attempt });

    const claim = await this.claim(job.buildId, attempt).catch((e: unknown) => toFleetError(e, ErrorCode.E_UNAVAILABLE));
    if (claim instanceof FleetError) {
      if (claim.code === ErrorCode.E_UNAVAILABLE) {
        log.warn({ err: claim }, 'coordinator unavailable; handing the job back');
        msg.nak(RETRY_BASE_MS);
      } else {
        log.info({ reason: claim.message }, 'not mine to build; dropping this delivery');
        msg.term(claim.code);
      }
      return;
    }

    const cancel = new AbortController();
    // Right after a NATS server restart the JetStream API may not answer yet: hand the job back
    // rather than build without a way to be cancelled (or let the error end the worker).
    const stopWatching = await watchForCancel(this.builds, job.buildId, cancel, log).catch((e: unknown) => toFleetError(e, ErrorCode.E_UNAVAILABLE));
    if (stopWatching instanceof FleetError) {
      log.warn({ err: stopWatching }, 'cannot watch the build record; handing the job back');
      msg.nak(RETRY_BASE_MS);
      return;
    }
    this.onBuild(job.buildId);
    const heartbeat = setInterval(() => msg.working(), this.config.heartbeatMs);
    const scratch = join(this.config.stateDir, 'scratch', `${job.buildId}-${attempt}`);
    await mkdir(scratch, { recursive: true, mode: 0o700 });
    // Secrets are known before the first line of output, so the very first line is masked.
    const secrets = await this.loadSecrets(job).catch((e: unknown) => toFleetError(e));
    const masker = secrets instanceof FleetError ? new LogMasker([], this.patterns) : secrets.masker;
    const logs = new BuildLog(this.js, job.buildId, attempt, join(scratch, 'build.log.gz'), masker, this.config.logs);
    // The run clock starts now, at the claim: time spent queued never counts against it.
    const runTimeout = AbortSignal.timeout(job.timeoutSeconds * 1000);
    try {
      if (secrets instanceof FleetError) throw secrets;
      const result = await this.build(job, scratch, logs, secrets.files, AbortSignal.any([signal, runTimeout, cancel.signal]), log);
      await logs.flush();
      await this.archiveLog(logs, log);
      await this.report({ type: 'pushed', buildId: job.buildId, attempt, workerId: this.config.workerId, at: now(), ...result });
      msg.ack();
      log.info({ digest: result.digest }, 'build pushed');
    } catch (e) {
      const err = runTimeout.aborted && !signal.aborted && !cancel.signal.aborted ? timedOut(job) : toFleetError(e);
      if (runTimeout.aborted) await logs.line('system', `build exceeded its run timeout of ${job.timeoutSeconds}s and was stopped`).catch(() => undefined);
      await logs.flush().catch(() => undefined);
      if (cancel.signal.aborted) {
        // The coordinator already recorded `cancelled`; nothing to report, the job is done.
        await logs.line('system', 'build cancelled by request; builder stopped').catch(() => undefined);
        await logs.flush().catch(() => undefined);
        await this.archiveLog(logs, log);
        msg.ack();
        return;
      }
      if (signal.aborted) {
        log.warn('worker is stopping; handing the job back for another worker');
        msg.nak();
        return;
      }
      if (isRetryable(err.code) && attempt < this.maxDeliver) {
        // Integer millis: a fractional delay is sent as fractional nanos, which the server ignores.
        const delay = Math.round(Math.min(RETRY_MAX_MS, RETRY_BASE_MS * 2 ** (attempt - 1)) * (0.5 + Math.random() / 2));
        log.warn({ err, delayMs: delay }, 'infrastructure fault; job goes back to the queue');
        msg.nak(delay);
        return;
      }
      const error = err.details?.logTail === undefined ? new FleetError(err.code, err.message, { ...err.details, logTail: logs.tail() }) : err;
      log.info({ code: err.code, step: err.details?.step }, 'build failed');
      // Archived before the terminal report, so a finished build always has its archive.
      await this.archiveLog(logs, log);
      await this.report({ type: 'failed', buildId: job.buildId, attempt, workerId: this.config.workerId, at: now(), error: error.toBody() })
        .then(() => msg.ack())
        .catch((re: unknown) => {
          log.error({ err: re }, 'could not report failure; job goes back to the queue');
          msg.nak(RETRY_BASE_MS);
        });
    } finally {
      this.onBuild(null);
      stopWatching();
      clearInterval(heartbeat);
      // Every ending archives the log: pushed, failed, handed back, cancelled.
      await this.archiveLog(logs, log);
      await rm(scratch, { recursive: true, force: true });
    }
  }

  private async build(job: Job, scratch: string, logs: BuildLog, secrets: Record<string, string>, signal: AbortSignal, log: Logger) {
    const contextDir = join(scratch, 'context');
    const tarball = join(scratch, 'context.tar.gz');
    await logs.line('system', `worker ${this.config.workerId} building with ${this.builder.name} (attempt ${logs.attempt})`);
    await downloadContext(this.s3, job.context, tarball, this.config.extract.maxBytes, signal);
    await extractContext(tarball, contextDir, this.config.extract);
    log.debug('context ready');
    // A standard build's Dockerfile is the platform's rendering, kept outside the app's context.
    const dockerfile = job.renderedDockerfile === undefined ? join(contextDir, job.dockerfile) : join(scratch, 'Dockerfile.platform');
    if (job.renderedDockerfile !== undefined) await writeFile(dockerfile, job.renderedDockerfile);
    const text = await readFile(dockerfile, 'utf8').catch(() => {
      throw new FleetError(ErrorCode.E_CONTEXT_INVALID, `the context has no ${job.dockerfile}`);
    });
    const registry = this.registries.client(job.image.registry);
    // FLEET_* names are refused in requests, so these values are the platform's own.
    const { buildArgs, verified } = await verifyOfficialBases(
      text,
      { ...job.buildArgs, FLEET_REGISTRY: job.image.registry },
      registry,
      await readFile(this.config.signingPublicKeyPath, 'utf8'),
      signal,
    );
    for (const v of verified) await logs.line('system', `verified platform signature: ${v}`);
    return this.builder.build(
      {
        buildId: job.buildId,
        contextDir,
        dockerfile,
        ...(job.target === undefined ? {} : { target: job.target }),
        buildArgs,
        labels: job.labels,
        secrets,
        // Only quarantine: the coordinator promotes to the release tags once the gates pass.
        destinations: [`${job.image.registry}/${job.quarantine.repository}:${job.quarantine.tag}`],
        cacheRepository: `${job.image.registry}/cache/${job.image.repository}`,
        workDir: scratch,
      },
      logs,
      signal,
    );
  }

  private async archiveLog(logs: BuildLog, log: Logger): Promise<void> {
    await logs.archive(this.s3).catch((e: unknown) => log.error({ err: e }, 'could not archive the build log'));
  }

  /** Reads the job's build secrets from the pool's secrets dir; their values feed the masker. */
  private async loadSecrets(job: Job): Promise<{ files: Record<string, string>; masker: LogMasker }> {
    const files: Record<string, string> = {};
    const values: string[] = [];
    for (const id of job.secrets) {
      const file = this.config.secretsDir === undefined ? null : join(this.config.secretsDir, id);
      const value = file === null ? null : await readFile(file, 'utf8').catch(() => null);
      if (file === null || value === null) {
        throw new FleetError(ErrorCode.E_SECRET_MISSING, `build secret "${id}" is not configured for pool ${this.config.pool}`);
      }
      files[id] = file;
      values.push(value, value.trim());
    }
    return { files, masker: new LogMasker(values, this.patterns) };
  }

  private async claim(buildId: string, attempt: number): Promise<FleetError | null> {
    const reply = await this.nc.request(subjects.claim, encode({ buildId, attempt, workerId: this.config.workerId }), {
      timeout: CLAIM_TIMEOUT_MS,
    });
    const answer = decodeWith(ClaimReply, reply.data, 'claim reply', ErrorCode.E_INTERNAL);
    return answer.ok ? null : FleetError.fromBody(answer.error);
  }

  /**
   * Durable before it returns (the job is acked only after this), and retried through a NATS
   * outage (the message id makes a repeat a no-op): a finished build must not be rebuilt because
   * the server restarted just as it ended.
   */
  private async report(report: WorkerReport): Promise<void> {
    const deadline = Date.now() + REPORT_RETRY_MS;
    for (let delay = 250; ; delay = Math.min(delay * 2, 5_000)) {
      try {
        await this.js.publish(subjects.report(report.buildId), encode(report), { msgID: `${report.buildId}.${report.attempt}.${report.type}` });
        return;
      } catch (e) {
        if (Date.now() + delay > deadline) throw e;
        this.log.warn({ err: e, buildId: report.buildId, delayMs: delay }, 'report not stored yet; retrying');
        await new Promise((r) => setTimeout(r, delay));
      }
    }
  }

  /** A job that cannot be parsed is terminated, never redelivered; its build fails if it has one. */
  private async rejectMalformed(msg: JsMsg, attempt: number, err: FleetError): Promise<void> {
    this.log.error({ err, subject: msg.subject }, 'malformed job terminated');
    const buildId = recoverBuildId(msg.data);
    if (buildId !== null) {
      await this.report({ type: 'failed', buildId, attempt, workerId: this.config.workerId, at: now(), error: err.toBody() }).catch(
        (e: unknown) => this.log.error({ err: e }, 'could not report malformed job'),
      );
    }
    msg.term(ErrorCode.E_INVALID_JOB);
  }
}

function recoverBuildId(data: Uint8Array): string | null {
  try {
    const value: unknown = JSON.parse(new TextDecoder().decode(data));
    if (typeof value !== 'object' || value === null || !('buildId' in value)) return null;
    const parsed = BuildId.safeParse(value.buildId);
    return parsed.success ? parsed.data : null;
  } catch {
    return null;
  }
}

function now(): string {
  return new Date().toISOString();
}

function timedOut(job: Job): FleetError {
  return new FleetError(ErrorCode.E_TIMEOUT, `build exceeded its run timeout of ${job.timeoutSeconds}s`);
}
