import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ErrorCode, FleetError, encode, type BuildJob, type LogLine, type WorkerReport } from '../../protocol/index.ts';
import { createLogger } from '../../adapters/logger.ts';
import type { RegistryClient } from '../../adapters/registry-client.ts';
import type { Builder, BuildPlan, BuildOutput } from '../../worker/builders/index.ts';
import { compileWorkerConfig, type WorkerConfig } from '../../worker/config.ts';
import { JobRunner, type JobMessage } from '../../worker/job-runner.ts';
import { WorkerLifecycle } from '../../worker/lifecycle.ts';
import type { LogMasker } from '../../worker/log-masker.ts';
import type { AttemptLog, RunnerPorts } from '../../worker/ports.ts';

const log = createLogger('test', { pretty: false, level: (process.env.TEST_LOG as 'silent' | undefined) ?? 'silent' });
const DIGEST = `sha256:${'b'.repeat(64)}`;

const job: BuildJob = {
  v: 1,
  buildId: 'job-1',
  pool: 'default',
  kind: 'custom',
  context: { key: 'contexts/sha256/c.tar.gz', digest: `sha256:${'c'.repeat(64)}` },
  dockerfile: 'Dockerfile',
  buildArgs: {},
  labels: {},
  secrets: [],
  timeoutSeconds: 600,
  image: { registry: '127.0.0.1:5000', repository: 'app/x', tags: ['1'] },
  quarantine: { repository: 'quarantine/app/x', tag: 'job-1' },
};

class FakeMessage implements JobMessage {
  readonly data: Uint8Array;
  readonly subject = 'fleet.jobs.default';
  readonly info: { deliveryCount: number; streamSequence: number };
  readonly settled: string[] = [];
  working = vi.fn();
  constructor(body: unknown, deliveryCount = 1, streamSequence = 1) {
    this.data = encode(body);
    this.info = { deliveryCount, streamSequence };
  }
  ack(): void {
    this.settled.push('ack');
  }
  nak(delay?: number): void {
    this.settled.push(delay === undefined ? 'nak' : 'nak-delayed');
  }
  term(reason?: string): void {
    this.settled.push(`term:${reason ?? ''}`);
  }
}

/** Records what the runner does with each port, in order. */
class FakePorts implements RunnerPorts {
  readonly events: string[] = [];
  readonly reports: WorkerReport[] = [];
  readonly lines: string[] = [];
  lifecycle = new WorkerLifecycle();
  claimAnswer: FleetError | null = null;
  readonly claims: Array<[string, number, number]> = [];
  cancel: (() => void) | null = null;
  builder: Builder;

  constructor(build: (plan: BuildPlan, out: BuildOutput, signal: AbortSignal) => Promise<{ digest: string; references: string[] }>) {
    this.lifecycle.ready();
    this.builder = { name: 'fake', build };
  }
  claim(buildId: string, attempt: number, jobSeq: number): Promise<FleetError | null> {
    this.events.push('claim');
    this.claims.push([buildId, attempt, jobSeq]);
    return Promise.resolve(this.claimAnswer);
  }
  watchCancel(_id: string, onCancel: () => void): Promise<() => void> {
    this.events.push('watch');
    this.cancel = onCancel;
    return Promise.resolve(() => this.events.push('unwatch'));
  }
  report(r: WorkerReport): Promise<void> {
    this.events.push(`report:${r.type}`);
    this.reports.push(r);
    return Promise.resolve();
  }
  openLog(_b: string, attempt: number, _f: string, masker: LogMasker): AttemptLog {
    const lines = this.lines;
    const events = this.events;
    let closed = false;
    return {
      attempt,
      masker,
      maxLine: 16_384,
      line: (_s: LogLine['stream'], text: string) => {
        lines.push(text);
        return Promise.resolve();
      },
      tail: () => lines.slice(-40),
      // Idempotent like the real BuildLog: only the first close archives.
      close: () => {
        if (!closed) events.push('log-closed');
        closed = true;
        return Promise.resolve();
      },
    };
  }
  async fetchContext(_job: BuildJob, _tarball: string, dir: string): Promise<void> {
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, 'Dockerfile'), 'FROM scratch\nCOPY a /a\n');
  }
  registry(): RegistryClient {
    // FROM scratch names no platform image, so nothing may reach the registry.
    const endpoint = new URL('http://127.0.0.1:5000');
    return new Proxy({}, {
      get: (_t, key) => {
        if (key === 'endpoint') return endpoint;
        throw new Error('no registry in this test');
      },
    }) as RegistryClient;
  }
}

let dir: string;
let config: WorkerConfig;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'runner-'));
  await writeFile(join(dir, 'key.pub'), 'not used by FROM scratch');
  config = compileWorkerConfig({
    natsUrl: 'nats://127.0.0.1:1',
    natsCredentials: { seedFile: join(dir, 'worker.nk'), user: 'worker-default' },
    stateDir: join(dir, 'state'),
    s3: { bucket: 'bkt' },
    signingPublicKeyPath: join(dir, 'key.pub'),
    heartbeatMs: 100,
    workerId: 'w1',
  });
  vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
});

afterEach(async () => {
  vi.useRealTimers();
  await rm(dir, { recursive: true, force: true });
});

const pushed = () => Promise.resolve({ digest: DIGEST, references: ['127.0.0.1:5000/quarantine/app/x:job-1'] });

describe('job runner', () => {
  it('releases heartbeat, cancel watch and worker state when the scratch dir cannot be made', async () => {
    await writeFile(join(dir, 'state'), 'a file where the state dir should be');
    const ports = new FakePorts(pushed);
    const msg = new FakeMessage(job);
    await new JobRunner(config, ports, 5, log).handle(msg, new AbortController().signal);
    expect(ports.events).toEqual(['claim', 'watch', 'unwatch']);
    expect(vi.getTimerCount()).toBe(0);
    vi.advanceTimersByTime(1_000);
    expect(msg.working).not.toHaveBeenCalled();
    expect(ports.lifecycle.state).toEqual({ phase: 'idle' });
    expect(msg.settled).toEqual(['nak-delayed']);
  });

  it('archives the log before reporting a pushed build, then acks and cleans up', async () => {
    const ports = new FakePorts(pushed);
    const msg = new FakeMessage(job);
    await new JobRunner(config, ports, 5, log).handle(msg, new AbortController().signal);
    expect(ports.events).toEqual(['claim', 'watch', 'log-closed', 'report:pushed', 'unwatch']);
    expect(ports.reports[0]).toMatchObject({ type: 'pushed', buildId: 'job-1', attempt: 1, workerId: 'w1', digest: DIGEST, bases: [] });
    expect(msg.settled).toEqual(['ack']);
    expect(vi.getTimerCount()).toBe(0);
    expect(ports.lifecycle.state).toEqual({ phase: 'idle' });
    expect(await readdir(join(dir, 'state', 'scratch'))).toEqual([]);
  });

  it('keeps the worker building while the build runs and heartbeats JetStream', async () => {
    let during: unknown;
    const ports = new FakePorts(async () => {
      during = ports.lifecycle.state;
      vi.advanceTimersByTime(250);
      return pushed();
    });
    const msg = new FakeMessage(job);
    await new JobRunner(config, ports, 5, log).handle(msg, new AbortController().signal);
    expect(during).toEqual({ phase: 'building', buildId: 'job-1' });
    expect(msg.working).toHaveBeenCalledTimes(2);
  });

  it('reports a failing step with the log tail and does not retry it', async () => {
    const ports = new FakePorts(async (_p, out) => {
      await out.line('stderr', 'step 2 exploded');
      throw new FleetError(ErrorCode.E_BUILD_STEP_FAILED, 'RUN make exited 2', { step: 'RUN make' });
    });
    const msg = new FakeMessage(job);
    await new JobRunner(config, ports, 5, log).handle(msg, new AbortController().signal);
    expect(msg.settled).toEqual(['ack']);
    const report = ports.reports[0];
    expect(report?.type).toBe('failed');
    if (report?.type !== 'failed') return;
    expect(report.error.code).toBe('E_BUILD_STEP_FAILED');
    expect(report.error.details?.logTail).toContain('step 2 exploded');
  });

  it('hands an infrastructure fault back, and reports it on the last delivery', async () => {
    const fault = () => Promise.reject(new FleetError(ErrorCode.E_REGISTRY_UNAVAILABLE, 'registry down'));
    const early = new FakePorts(fault);
    const m1 = new FakeMessage(job, 1);
    await new JobRunner(config, early, 3, log).handle(m1, new AbortController().signal);
    expect(m1.settled).toEqual(['nak-delayed']);
    expect(early.reports).toEqual([]);
    const last = new FakePorts(fault);
    const m3 = new FakeMessage(job, 3);
    await new JobRunner(config, last, 3, log).handle(m3, new AbortController().signal);
    expect(m3.settled).toEqual(['ack']);
    expect(last.reports[0]).toMatchObject({ type: 'failed', attempt: 3, error: { code: 'E_REGISTRY_UNAVAILABLE' } });
  });

  it('drops a delivery the coordinator refuses without acquiring anything', async () => {
    const ports = new FakePorts(pushed);
    ports.claimAnswer = new FleetError(ErrorCode.E_STALE_ATTEMPT, 'newer attempt running');
    const msg = new FakeMessage(job);
    await new JobRunner(config, ports, 5, log).handle(msg, new AbortController().signal);
    expect(ports.events).toEqual(['claim']);
    expect(msg.settled).toEqual(['term:E_STALE_ATTEMPT']);
  });

  it('claims naming the delivery count and the job message, and hands back a delivery the coordinator says to try again', async () => {
    const ports = new FakePorts(pushed);
    ports.claimAnswer = new FleetError(ErrorCode.E_UNAVAILABLE, 'the running attempt holds this job message');
    const msg = new FakeMessage(job, 3, 41);
    await new JobRunner(config, ports, 5, log).handle(msg, new AbortController().signal);
    expect(ports.claims).toEqual([['job-1', 3, 41]]);
    expect(ports.events).toEqual(['claim']);
    expect(msg.settled).toEqual(['nak-delayed']);
  });

  it('stops the builder on cancel and acks without a report', async () => {
    const ports = new FakePorts(
      (_p, _o, signal) =>
        new Promise((_resolve, reject) => {
          signal.addEventListener('abort', () => reject(new Error('stopped')), { once: true });
          ports.cancel?.();
        }),
    );
    const msg = new FakeMessage(job);
    await new JobRunner(config, ports, 5, log).handle(msg, new AbortController().signal);
    expect(msg.settled).toEqual(['ack']);
    expect(ports.reports).toEqual([]);
    expect(ports.lines).toContain('build cancelled by request; builder stopped');
    expect(ports.events.at(-1)).toBe('unwatch');
  });

  it('hands the build back, unreported, when the worker stops', async () => {
    const stop = new AbortController();
    const ports = new FakePorts(
      (_p, _o, signal) =>
        new Promise((_resolve, reject) => {
          signal.addEventListener('abort', () => reject(new Error('stopped')), { once: true });
          stop.abort();
        }),
    );
    const msg = new FakeMessage(job);
    await new JobRunner(config, ports, 5, log).handle(msg, stop.signal);
    expect(msg.settled).toEqual(['nak']);
    expect(ports.reports).toEqual([]);
  });

  it('terminates a malformed job and fails its build when the id can be read', async () => {
    const ports = new FakePorts(pushed);
    const msg = new FakeMessage({ buildId: 'job-2', v: 99 });
    await new JobRunner(config, ports, 5, log).handle(msg, new AbortController().signal);
    expect(msg.settled).toEqual(['term:E_INVALID_JOB']);
    expect(ports.reports[0]).toMatchObject({ type: 'failed', buildId: 'job-2', error: { code: 'E_INVALID_JOB' } });
  });
});
