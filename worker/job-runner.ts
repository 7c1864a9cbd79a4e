import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { JsMsg } from '@nats-io/jetstream';
import { BuildId, BuildJob, ErrorCode, FleetError, decodeWith, toFleetError, type BuildJob as Job, type WorkerReport } from '../protocol/index.ts';
import type { Logger } from '../adapters/logger.ts';
import type { RegistryClient } from '../adapters/registry-client.ts';
import type { WorkerConfig } from './config.ts';
import { Attempt } from './attempt.ts';
import { LogMasker } from './log-masker.ts';
import { finalStageBase, resolveBases } from './base-digests.ts';
import { annotatePushed, baseAnnotations } from './builders/base-annotations.ts';
import { BaseResolver } from './base-resolver.ts';
import { fromImages, stageNames, verifyOfficialBases } from './official-bases.ts';
import { runFlagRefusal } from './run-flags.ts';
import { syntaxNote } from './dockerfile-directives.ts';
import { unsupportedFeature } from './builders/dockerfile-support.ts';
import { secretInImage, secretValues } from './secret-leaks.ts';
import type { AttemptLog, RunnerPorts } from './ports.ts';
import { RETRY_BASE_MS, settle, type Outcome, type PushedResult, type Settlement } from './settle.ts';

/** The part of a JetStream message the runner uses. */
export type JobMessage = Pick<JsMsg, 'data' | 'subject' | 'ack' | 'nak' | 'term' | 'working'> & { info: { deliveryCount: number; streamSequence: number } };

/**
 * Runs one delivery of one job: claim, build, settle. Never throws for a job's own failures;
 * every outcome goes through `settle`, and everything the attempt acquired is released by the
 * Attempt whatever happens.
 */
export class JobRunner {
  private readonly patterns: RegExp[];

  constructor(
    private readonly config: WorkerConfig,
    private readonly ports: RunnerPorts,
    /** the pool consumer's max_deliver: the last delivery reports failure instead of retrying */
    private readonly maxDeliver: number,
    private readonly log: Logger,
  ) {
    this.patterns = config.maskPatterns.map((p) => new RegExp(p, 'g'));
  }

  async handle(msg: JobMessage, stop: AbortSignal): Promise<void> {
    const n = msg.info.deliveryCount;
    let job: Job;
    try {
      job = decodeWith(BuildJob, msg.data, 'build job', ErrorCode.E_INVALID_JOB);
    } catch (e) {
      await this.rejectMalformed(msg, n, toFleetError(e));
      return;
    }
    const log = this.log.child({ buildId: job.buildId, attempt: n });
    const attempt = new Attempt(n, log);
    const logs: { current: AttemptLog | null } = { current: null };
    try {
      const outcome = await this.run(job, attempt, msg, stop, logs, log);
      const settlement = settle(outcome, n, this.maxDeliver);
      await this.apply(settlement, msg, job, attempt, logs.current, log.child({ outcome: outcome.type, ...('error' in outcome ? { err: outcome.error } : {}) }));
    } finally {
      await attempt.release();
    }
  }

  /** Acquires the attempt's resources in order and builds; the ending is an Outcome, never a throw. */
  private async run(job: Job, attempt: Attempt, msg: JobMessage, stop: AbortSignal, logs: { current: AttemptLog | null }, log: Logger): Promise<Outcome> {
    const refused = await this.ports.claim(job.buildId, attempt.number, msg.info.streamSequence).catch((e: unknown) => toFleetError(e, ErrorCode.E_UNAVAILABLE));
    if (refused !== null) return { type: 'claim-refused', error: refused };
    // Right after a NATS server restart the JetStream API may not answer yet: hand the job back
    // rather than build without a way to be cancelled.
    try {
      attempt.hold('cancel watch', await this.ports.watchCancel(job.buildId, () => attempt.cancel.abort()));
    } catch (e) {
      return { type: 'not-started', error: toFleetError(e, ErrorCode.E_UNAVAILABLE) };
    }
    // The run clock starts at the claim: time spent queued never counts against it.
    const runTimeout = AbortSignal.timeout(job.timeoutSeconds * 1000);
    try {
      this.ports.lifecycle.buildStarted(job.buildId);
      attempt.hold('worker state', () => this.ports.lifecycle.buildEnded());
      const heartbeat = setInterval(() => msg.working(), this.config.heartbeatMs);
      attempt.hold('heartbeat', () => clearInterval(heartbeat));
      const scratch = join(this.config.stateDir, 'scratch', `${job.buildId}-${attempt.number}`);
      await mkdir(scratch, { recursive: true, mode: 0o700 });
      attempt.hold('scratch dir', () => rm(scratch, { recursive: true, force: true }));
      // Secrets are known before the first line of output, so the very first line is masked.
      const secrets = await this.loadSecrets(job).catch((e: unknown) => toFleetError(e));
      const masker = secrets instanceof FleetError ? new LogMasker([], this.patterns, job.buildArgs) : secrets.masker;
      const buildLog = this.ports.openLog(job.buildId, attempt.number, join(scratch, 'build.log.gz'), masker);
      logs.current = buildLog;
      attempt.hold('build log', () => closeLog(buildLog, log));
      if (secrets instanceof FleetError) throw secrets;
      const signal = AbortSignal.any([stop, runTimeout, attempt.cancel.signal]);
      return { type: 'pushed', result: await this.build(job, scratch, buildLog, secrets, signal, log) };
    } catch (e) {
      const buildLog = logs.current;
      if (attempt.cancel.signal.aborted) {
        await buildLog?.line('system', 'build cancelled by request; builder stopped').catch(() => undefined);
        return { type: 'cancelled' };
      }
      if (stop.aborted) return { type: 'handed-back' };
      if (runTimeout.aborted) {
        await buildLog?.line('system', `build exceeded its run timeout of ${job.timeoutSeconds}s and was stopped`).catch(() => undefined);
        return { type: 'failed', error: new FleetError(ErrorCode.E_TIMEOUT, `build exceeded its run timeout of ${job.timeoutSeconds}s`) };
      }
      return { type: 'failed', error: toFleetError(e) };
    }
  }

  private async apply(s: Settlement, msg: JobMessage, job: Job, attempt: Attempt, buildLog: AttemptLog | null, log: Logger): Promise<void> {
    const base = { buildId: job.buildId, attempt: attempt.number, workerId: this.config.workerId };
    switch (s.action) {
      case 'ack':
        log.info('build cancelled by request; job done');
        msg.ack();
        return;
      case 'nak':
        log.warn({ delayMs: s.delayMs }, 'job goes back to the queue');
        msg.nak(s.delayMs);
        return;
      case 'term':
        log.info({ reason: s.reason }, 'not mine to build; dropping this delivery');
        msg.term(s.reason);
        return;
      case 'report-pushed':
        // Archived before the terminal report, so a finished build always has its archive.
        if (buildLog !== null) await closeLog(buildLog, log);
        await this.reportThenAck({ type: 'pushed', ...base, at: now(), ...s.result }, msg, log);
        log.info({ digest: s.result.digest }, 'build pushed');
        return;
      case 'report-failed': {
        const err = s.error;
        const error = err.details?.logTail === undefined && buildLog !== null ? new FleetError(err.code, err.message, { ...err.details, logTail: buildLog.tail() }) : err;
        log.info({ code: err.code, step: err.details?.step }, 'build failed');
        if (buildLog !== null) await closeLog(buildLog, log);
        await this.reportThenAck({ type: 'failed', ...base, at: now(), error: error.toBody() }, msg, log);
        return;
      }
    }
  }

  private async reportThenAck(report: WorkerReport, msg: JobMessage, log: Logger): Promise<void> {
    try {
      await this.ports.report(report);
      msg.ack();
    } catch (e) {
      log.error({ err: e }, 'could not report; job goes back to the queue');
      msg.nak(RETRY_BASE_MS);
    }
  }

  private async build(job: Job, scratch: string, logs: AttemptLog, loaded: LoadedSecrets, signal: AbortSignal, log: Logger): Promise<PushedResult> {
    const secrets = loaded.files;
    const contextDir = join(scratch, 'context');
    await logs.line('system', `worker ${this.config.workerId} building with ${this.ports.builder.name} (attempt ${logs.attempt})`);
    await this.ports.fetchContext(job, join(scratch, 'context.tar.gz'), contextDir, signal);
    log.debug('context ready');
    // A standard build's Dockerfile is the platform's rendering, kept outside the app's context.
    const dockerfile = job.renderedDockerfile === undefined ? join(contextDir, job.dockerfile) : join(scratch, 'Dockerfile.platform');
    if (job.renderedDockerfile !== undefined) await writeFile(dockerfile, job.renderedDockerfile);
    const text = await readFile(dockerfile, 'utf8').catch(() => {
      throw new FleetError(ErrorCode.E_CONTEXT_INVALID, `the context has no ${job.dockerfile}`);
    });
    // A --target naming no stage is refused here, the same on every builder and before any pull:
    // BuildKit's own refusal reaches the log racing its exit, so its code was not always the same.
    if (job.target !== undefined) {
      const stages = stageNames(text);
      if (!stages.includes(job.target.toLowerCase())) {
        throw new FleetError(ErrorCode.E_TARGET_NOT_FOUND, `stage not found (--target ${job.target}): the Dockerfile's named stages are ${stages.join(', ') || 'none'}`);
      }
    }
    // RUN flags that would take a step out of the sandbox, the same refusal on every builder.
    const refusedFlag = runFlagRefusal(text);
    if (refusedFlag !== null) throw refusedFlag;
    const syntax = syntaxNote(text, this.ports.builder.name);
    if (syntax !== null) await logs.line('system', syntax);
    const unsupported = unsupportedFeature(text, this.ports.builder.name);
    if (unsupported !== null) throw unsupported;
    // FLEET_* names are refused in requests, so these values are the platform's own.
    const platformArgs = { ...job.buildArgs, FLEET_REGISTRY: job.image.registry };
    // One resolver for the build: each base's manifest is read once, by the check, and the
    // signature check and the digest pinning below use that read.
    const registry = (host: string): RegistryClient => this.ports.registry(host);
    const resolver = new BaseResolver(registry, signal);
    // Before any pull, identically for every builder: each base allowed for this tenant, and there.
    const pullable = await resolver.check(text, platformArgs, job.allowedBases ?? [{ registry: job.image.registry }]);
    await logs.line('system', `bases allowed and present: ${pullable.map((b) => b.image).join(', ') || 'none (FROM scratch)'}`);
    const { buildArgs, verified } = await verifyOfficialBases(
      text,
      platformArgs,
      this.ports.registry(job.image.registry),
      await readFile(this.config.signingPublicKeyPath, 'utf8'),
      resolver,
      pullable.filter((use) => !/^FROM\s/i.test(use.text)).map((use) => use.image),
    );
    for (const v of verified) await logs.line('system', `verified platform signature: ${v}`);
    // Resolved before the build, so the digests are the ones the builder pulls (the official ones pinned).
    const bases = await resolveBases(text, platformArgs, buildArgs, registry, signal, resolver);
    for (const b of bases) await logs.line('system', `base image: ${b.name}@${b.digest}`);
    const finalBase = finalStageBase(text, platformArgs, job.target);
    const imageBase = finalBase === null ? null : (bases.find((b) => b.name === finalBase) ?? null);
    // Told now, so the coordinator reads the image's base for the SBOM while this builds. Only
    // the final stage's: the image holds no other stage's packages.
    const announced =
      imageBase === null
        ? Promise.resolve()
        : this.ports
            .report({ type: 'resolved', buildId: job.buildId, attempt: logs.attempt, workerId: this.config.workerId, at: now(), base: imageBase })
            .catch((err: unknown) => log.warn({ err }, 'could not announce the image’s base; the coordinator reads it after the push'));
    // the FROM images as the base check read them (their manifests are the resolver's already), each once
    const fromBases = [...new Set(fromImages(text, platformArgs).map((f) => f.image))];
    const result = await this.ports.builder.build(
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
        cacheScope: job.tenant === undefined ? `repository:${job.image.repository}` : `tenant:${job.tenant}`,
        resolvedBases: bases,
        baseTriggers: async () => (await Promise.all(fromBases.map((image) => resolver.onBuild(image)))).flat(),
        workDir: scratch,
      },
      logs,
      signal,
    );
    // The platform's base annotations, the same whichever builder pushed: the manifest is re-put
    // under the quarantine tag with them, and that digest is the one reported, gated and promoted.
    const annotations = baseAnnotations(imageBase);
    const digest = await annotatePushed(this.ports.registry(job.image.registry), job.quarantine.repository, job.quarantine.tag, result.digest, annotations, signal);
    if (digest !== result.digest) await logs.line('system', `base annotations set: ${Object.entries(annotations).map(([k, v]) => `${k}=${v}`).join(' ')} (${digest})`);
    if (job.secrets.length > 0) {
      // The bases' layers cannot hold this build's secrets: only the app's own are read.
      const baseLayers = new Set((await Promise.all(fromBases.map((image) => resolver.layers(image)))).flat());
      const leaked = await secretInImage(this.ports.registry(job.image.registry), job.quarantine.repository, digest, baseLayers, secretValues(loaded.values), signal);
      if (leaked !== null) throw leaked;
      await logs.line('system', `no build secret's value in the image (${baseLayers.size} base layers skipped)`);
    }
    await announced;
    return { ...result, digest, bases };
  }

  /** Reads the job's build secrets from the pool's secrets dir; their values feed the masker and, after the push, the search of the image. */
  private async loadSecrets(job: Job): Promise<LoadedSecrets> {
    const files: Record<string, string> = {};
    const byId: Record<string, string> = {};
    const values: string[] = [];
    for (const id of job.secrets) {
      const file = this.config.secretsDir === undefined ? null : join(this.config.secretsDir, id);
      const value = file === null ? null : await readFile(file, 'utf8').catch(() => null);
      if (file === null || value === null) {
        throw new FleetError(ErrorCode.E_SECRET_MISSING, `build secret "${id}" is not configured for pool ${this.config.pool}`);
      }
      files[id] = file;
      byId[id] = value;
      values.push(value, value.trim());
    }
    return { files, values: byId, masker: new LogMasker(values, this.patterns, job.buildArgs) };
  }

  /** A job that cannot be parsed is terminated, never redelivered; its build fails if it has one. */
  private async rejectMalformed(msg: JobMessage, attempt: number, err: FleetError): Promise<void> {
    this.log.error({ err, subject: msg.subject }, 'malformed job terminated');
    const buildId = recoverBuildId(msg.data);
    if (buildId !== null) {
      await this.ports
        .report({ type: 'failed', buildId, attempt, workerId: this.config.workerId, at: now(), error: err.toBody() })
        .catch((e: unknown) => this.log.error({ err: e }, 'could not report malformed job'));
    }
    msg.term(ErrorCode.E_INVALID_JOB);
  }
}

/** A build's secrets: the files the builder mounts, and their values (read once). */
interface LoadedSecrets {
  files: Record<string, string>;
  values: Record<string, string>;
  masker: LogMasker;
}

async function closeLog(buildLog: AttemptLog, log: Logger): Promise<void> {
  await buildLog.close().catch((e: unknown) => log.error({ err: e }, 'could not archive the build log'));
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
