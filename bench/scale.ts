/**
 * `npm run bench -- scale`: one real coordinator (a process of its own) against 1,000 queued builds and
 * N simulated workers, N = 10, 100, 1,000 (`BENCH_SCALE_WORKERS`), over a real nats-server.
 *
 * Each N runs twice (`BENCH_SCALE_BUILD_MS`, default `0,2000`): with simulated builds that take no
 * time (saturation: every worker claims again the moment it reported, so the throughput is the
 * coordinator's and NATS's ceiling, and by Little's law a claim then waits about N / throughput
 * whatever the code does), and with builds that take 0.5–1.5× the given mean (paced: claims
 * arrive as a fleet's workers finish real builds, and their latency is the coordinator's answer
 * time under that load: the claim p99 target's figure).
 *
 * A simulated worker speaks the worker protocol exactly as worker/worker.ts and worker/job-runner.ts
 * do, with the worker role's NATS user of its pool, but does not build: it announces itself in the
 * workers bucket (worker/announcer.ts, the real one), pulls from the pool's consumer, claims the
 * delivery (`subjects.claim`), heartbeats (`msg.working()`), publishes a batch of log lines and
 * reports. The report is `failed` (E_BUILD_STEP_FAILED): a `pushed` report would make the
 * coordinator ask the registry for a digest no one pushed, and a failed one still goes the whole
 * report path (reports consumer, claim holder check, record transition, event).
 *
 * The coordinator runs in a child process (bench/scale-coordinator.ts, the fleet's own options)
 * and the simulated workers in another, so the RSS and CPU reported are the coordinator's alone;
 * the bench process's RSS is printed beside it. Each run queues 1,000 fresh builds
 * (new ids, the same uploaded context) in a pool no real worker serves, and ends when every one of
 * them has its `failed` event. Printed, not asserted.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { setTimeout as delay } from 'node:timers/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { NatsCredentials } from '../adapters/nats.ts';
import type { FleetClient } from '../client/index.ts';
import type { CoordinatorOptions } from '../coordinator/index.ts';
import type { CoordinatorAnswer, CoordinatorOrder, CoordinatorSample } from './scale-coordinator.ts';
import { z } from 'zod';
import { compileApp, imageEnv } from '../images/fleet/app-context.ts';
import { quantile } from './table.ts';
import { bucketBoundMs, bucketQuantile, histogramBuckets, type Buckets } from './prom-histogram.ts';

const BUILDS = Number(process.env.BENCH_SCALE_BUILDS ?? 1_000);
const WORKER_COUNTS = (process.env.BENCH_SCALE_WORKERS ?? '10,100,1000').split(',').map(Number);
const BUILD_MS = (process.env.BENCH_SCALE_BUILD_MS ?? '0,2000').split(',').map(Number);
const POOL = 'sim';
const ROOT = fileURLToPath(new URL('../', import.meta.url));
const LOG_LINES = 5;
/** how long a whole run may take before it is reported as stuck */
const RUN_TIMEOUT_MS = Number(process.env.BENCH_SCALE_TIMEOUT_MS ?? 10 * 60_000);
/** simulated workers connecting at once */
const CONNECT_CONCURRENCY = 8;
const SIM_ROLE = '--scale-simulated-workers';

/**
 * The measured coordinator's environment: its image's (NODE_OPTIONS included), or with
 * BENCH_SCALE_COORDINATOR_FLAGS as NODE_OPTIONS instead (e.g. other V8 heap sizing, to see what
 * RSS they buy); and how that reads in a table.
 */
async function coordinatorRuntime(): Promise<{ env: Record<string, string>; described: string }> {
  const image = await imageEnv('coordinator');
  const told = process.env.BENCH_SCALE_COORDINATOR_FLAGS;
  if (told !== undefined) return { env: { ...image, NODE_OPTIONS: told }, described: `compiled; NODE_OPTIONS ${told === '' ? "node's defaults" : told} (BENCH_SCALE_COORDINATOR_FLAGS)` };
  return { env: image, described: `compiled, as its image runs it: NODE_OPTIONS ${image.NODE_OPTIONS ?? '(none)'}` };
}

interface SimSetup {
  natsUrl: string;
  worker: NatsCredentials;
  admin: NatsCredentials;
}
/** parent → child: start a run of `workers` over these build ids */
interface RunOrder {
  workers: number;
  buildIds: string[];
  /** mean simulated build time, ms (0: none) */
  buildMs: number;
}
/** child → parent: a run's figures as the workers saw them */
interface RunSeen {
  claimMs: number[];
  /** the claims after each worker's first: without the opening burst (every idle worker claiming at once) */
  laterClaimMs: number[];
  recordedMs: number[];
  /** from the first pull to the last build's `failed` event */
  wallMs: number;
  refusedClaims: number;
  firstRefusal?: string;
  settled: number;
  /** the simulated workers' own event loop delay p99 during the run, ms (their queueing, in the claim figures) */
  lagP99Ms: number;
}

/** One row of the growth curve: measured, or why not. */
export type ScaleRow = MeasuredRow | { workers: number; builds: number; buildMs: number; error: string };

export interface MeasuredRow {
  workers: number;
  builds: number;
  /** mean simulated build time, ms (0: saturation) */
  buildMs: number;
  settled: number;
  /** builds settled per second */
  throughput: number;
  claimP50Ms: number;
  claimP99Ms: number;
  /** claim p99 without each worker's first claim (the opening burst) */
  laterClaimP99Ms: number;
  /**
   * The coordinator's own answer time for claims (arrival → reply sent), p50 and p99, from its
   * `fleet_nats_api_answer_seconds` histogram: the upper bound of the bucket that holds them. The
   * figures above are as the simulated workers saw them, and add their own process's queueing.
   */
  answerP50Ms: number;
  answerP99Ms: number;
  recordedP50Ms: number;
  recordedP99Ms: number;
  /** peak RSS of the coordinator's process (a child of its own) during the run */
  peakRssMb: number;
  /** peak RSS of the bench's own process (the fleet's admin client, the bench), for comparison with earlier runs */
  benchPeakRssMb: number;
  /** peak V8 heap in use during the run (what the coordinator's objects take, without the process's fixed costs) */
  peakHeapMb: number;
  /** coordinator process CPU during the run, as a share of one core */
  cpuCores: number;
  /** coordinator CPU per settled build */
  cpuMsPerBuild: number;
  refusedClaims: number;
  firstRefusal?: string;
  /** the machine's 1-minute load average at the end of this row's run (others share it) */
  load1: number;
  /** event loop delay p99 during the run, ms: the coordinator's, and the simulated workers' process's */
  coordinatorLagP99Ms: number;
  simulatorLagP99Ms: number;
}

export interface ScaleFigures {
  rows: ScaleRow[];
  /** the coordinator process's RSS once started, nothing queued yet (node and the compiled coordinator at rest) */
  idleRssMb: number;
  /** how the coordinator ran (coordinatorRuntime) */
  coordinatorRuntime: string;
  idleHeapMb: number;
  /** the machine's 1-minute load average at the end (others share it) */
  load1: number;
}

if (process.argv.includes(SIM_ROLE)) await simulate();

/** Runs the growth curve and returns its rows. */
export async function measureScale(workerCounts: number[] = WORKER_COUNTS, builds: number = BUILDS, onRow?: (row: ScaleRow) => void, buildTimes: number[] = BUILD_MS): Promise<ScaleFigures> {
  const { startLocalFleet } = await import('../deploy/local/fleet.ts');
  const { createLogger } = await import('../adapters/logger.ts');
  const fleet = await startLocalFleet({ workers: 0, pool: POOL }, createLogger('bench', { level: 'warn', pretty: false }));
  const dir = await mkdtemp(join(tmpdir(), 'fleet-bench-scale-'));
  const children: ChildProcess[] = [];
  try {
    await writeFile(join(dir, 'Dockerfile'), 'ARG FLEET_REGISTRY\nFROM ${FLEET_REGISTRY}/official/base:1\nUSER 1000\n');
    const { digest } = await fleet.client.uploadContext(dir);
    const worker = fleet.natsCredentials[`worker-${POOL}`];
    const admin = fleet.natsCredentials.admin;
    if (worker === undefined || admin === undefined) throw new Error('the local fleet has no worker or admin NATS user');
    const app = join(dir, 'app');
    await compileApp(app);
    // the compiled code resolves its dependencies here, as in the image's /app (dev ones beside them, unused)
    await symlink(join(ROOT, 'node_modules'), join(app, 'node_modules'));
    const runtime = await coordinatorRuntime();
    let figures: Omit<ScaleFigures, 'coordinatorRuntime'> | undefined;
    // The fleet's in-process coordinator steps aside for the run: the one measured is a process of its own.
    await fleet.restartCoordinator(async () => {
      const coordinator = await CoordinatorChild.start(fleet.coordinatorOptions, app, runtime.env, children);
      figures = await curve(fleet.client, coordinator, { natsUrl: fleet.nats.url, worker, admin }, digest, workerCounts, buildTimes, builds, children, onRow);
      await coordinator.stop();
    });
    if (figures === undefined) throw new Error('the scale run ended without figures');
    return { ...figures, coordinatorRuntime: runtime.described };
  } finally {
    for (const child of children) child.kill();
    await rm(dir, { recursive: true, force: true });
    await fleet.stop();
  }
}

/** The coordinator under measure, as a child process (bench/scale-coordinator.ts). */
class CoordinatorChild {
  private readonly waiting = new Map<string, Array<(answer: CoordinatorAnswer) => void>>();
  private failed: Error | null = null;

  private constructor(private readonly child: ChildProcess) {
    child.on('message', (answer: CoordinatorAnswer) => {
      const kind = Object.keys(answer)[0] ?? '';
      if (kind === 'error') this.failed = new Error(`the coordinator child: ${(answer as { error: string }).error}`);
      for (const waiter of kind === 'error' ? [...this.waiting.values()].flatMap((w) => w.splice(0)) : (this.waiting.get(kind)?.splice(0, 1) ?? [])) waiter(answer);
    });
    child.once('exit', (code) => {
      this.failed ??= new Error(`the coordinator child exited (${code ?? 'signal'})`);
      for (const waiter of [...this.waiting.values()].flatMap((w) => w.splice(0))) waiter({ error: this.failed.message });
    });
  }

  /**
   * As its image runs it: the compiled app (`app`, from compileApp) under the image's environment
   * (`env`, coordinatorRuntime), and no TypeScript loader.
   */
  static async start(options: CoordinatorOptions, app: string, env: Record<string, string>, children: ChildProcess[]): Promise<CoordinatorChild> {
    const child = fork(fileURLToPath(new URL('./scale-coordinator.ts', import.meta.url)), [app], {
      // node's own type stripping runs that one file; its warning is not the coordinator's output
      execArgv: ['--disable-warning=ExperimentalWarning'],
      env: { ...process.env, ...env },
      serialization: 'advanced',
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    children.push(child);
    const c = new CoordinatorChild(child);
    const ready = await c.ask({ start: options }, 'ready');
    if ('httpUrl' in ready) c.httpUrl = ready.httpUrl;
    return c;
  }

  /** the coordinator's HTTP API, for its /metrics */
  httpUrl = '';

  /** Its claim answer-time histogram, scraped from /metrics as Prometheus would. */
  async claimAnswers(): Promise<Buckets> {
    const text = await (await fetch(`${this.httpUrl}/metrics`)).text();
    return histogramBuckets(text, 'fleet_nats_api_answer_seconds', ['api="claim"']);
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  async sample(resetLag = false): Promise<CoordinatorSample> {
    const answer = await this.ask({ sample: true, resetLag }, 'sample');
    if (!('sample' in answer)) throw new Error('the coordinator child sent no sample');
    return answer.sample;
  }

  async stop(): Promise<void> {
    await this.ask({ stop: true }, 'stopped');
  }

  private ask(order: CoordinatorOrder, kind: string): Promise<CoordinatorAnswer> {
    if (this.failed !== null) return Promise.reject(this.failed);
    return new Promise<CoordinatorAnswer>((resolve, reject) => {
      const list = this.waiting.get(kind) ?? [];
      list.push((answer) => ('error' in answer ? reject(new Error(answer.error)) : resolve(answer)));
      this.waiting.set(kind, list);
      this.child.send(order);
    });
  }
}

/** The growth curve against a running coordinator child. */
async function curve(
  client: FleetClient,
  coordinator: CoordinatorChild,
  setup: SimSetup,
  digest: string,
  workerCounts: number[],
  buildTimes: number[],
  builds: number,
  children: ChildProcess[],
  onRow?: (row: ScaleRow) => void,
): Promise<Omit<ScaleFigures, 'coordinatorRuntime'>> {
  // The same node flags (the tsx loader) in the child: it runs this file in its simulator role.
  const sim = fork(fileURLToPath(import.meta.url), [SIM_ROLE], { serialization: 'advanced', stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  children.push(sim);
  const answers: Array<(seen: RunSeen | { error: string }) => void> = [];
  // `ready`: the run's workers are connected and announced, and pull from now on
  let onReady = (): void => undefined;
  sim.on('message', (m: RunSeen | { ready: true } | { error: string }) => ('ready' in m ? onReady() : answers.shift()?.(m)));
  const exited = new Promise<never>((_, reject) => sim.once('exit', (code) => reject(new Error(`the simulated workers exited (${code ?? 'signal'})`))));
  exited.catch(() => undefined);
  sim.send(setup);

  const rows: ScaleRow[] = [];
  const rest = await coordinator.sample();
  for (const [workers, buildMs] of workerCounts.flatMap((w) => buildTimes.map((b) => [w, b] as const))) {
    // Re-queued for each run: fresh ids (a settled build is never queued again), one context.
    const buildIds = Array.from({ length: builds }, (_, i) => `scale-w${workers}-${Date.now().toString(36)}-${i}`);
    await queue(client, buildIds, digest);
    const connected = new Promise<void>((resolve) => {
      onReady = resolve;
    });
    const done = new Promise<RunSeen | { error: string }>((resolve) => {
      answers.push(resolve);
      const order: RunOrder = { workers, buildIds, buildMs };
      sim.send(order);
    });
    // Measured from the first pull: connecting 1,000 clients is not the coordinator's work.
    const failedEarly = done.then((d) => ('error' in d ? d : null));
    const early = await Promise.race([connected.then(() => null), failedEarly, exited]);
    if (early !== null) {
      // (e.g. could not connect this many clients): the curve stops here, what was measured stays
      rows.push({ workers, builds, buildMs, error: early.error });
      onRow?.(rows.at(-1) as ScaleRow);
      break;
    }
    const first = await coordinator.sample(true);
    const answersBefore = await coordinator.claimAnswers();
    let peakRss = first.rss;
    let peakHeap = first.heapUsed;
    let benchPeakRss = process.memoryUsage().rss;
    let sampling = false;
    const sampler = setInterval(() => {
      benchPeakRss = Math.max(benchPeakRss, process.memoryUsage().rss);
      if (sampling) return;
      sampling = true;
      coordinator.sample().then(
        (m) => {
          peakRss = Math.max(peakRss, m.rss);
          peakHeap = Math.max(peakHeap, m.heapUsed);
          sampling = false;
        },
        () => undefined,
      );
    }, 100);
    const t0 = performance.now();
    const ended = await Promise.race([done, exited]);
    clearInterval(sampler);
    if ('error' in ended) throw new Error(ended.error);
    const seen = ended;
    const wallMs = performance.now() - t0;
    const last = await coordinator.sample();
    const answersAfter = await coordinator.claimAnswers();
    peakRss = Math.max(peakRss, last.rss);
    peakHeap = Math.max(peakHeap, last.heapUsed);
    const cpuMs = (last.cpuMicros - first.cpuMicros) / 1000;
    rows.push({
      workers,
      builds,
      buildMs,
      settled: seen.settled,
      throughput: seen.settled / (seen.wallMs / 1000),
      claimP50Ms: quantile(seen.claimMs, 0.5),
      claimP99Ms: quantile(seen.claimMs, 0.99),
      laterClaimP99Ms: quantile(seen.laterClaimMs, 0.99),
      answerP50Ms: bucketQuantile(answersBefore, answersAfter, 0.5) * 1000,
      answerP99Ms: bucketQuantile(answersBefore, answersAfter, 0.99) * 1000,
      recordedP50Ms: quantile(seen.recordedMs, 0.5),
      recordedP99Ms: quantile(seen.recordedMs, 0.99),
      peakRssMb: peakRss / 2 ** 20,
      peakHeapMb: peakHeap / 2 ** 20,
      benchPeakRssMb: benchPeakRss / 2 ** 20,
      cpuCores: cpuMs / wallMs,
      cpuMsPerBuild: cpuMs / Math.max(1, seen.settled),
      refusedClaims: seen.refusedClaims,
      load1: loadavg()[0] ?? NaN,
      coordinatorLagP99Ms: last.lagP99Ms,
      simulatorLagP99Ms: seen.lagP99Ms,
      ...(seen.firstRefusal === undefined ? {} : { firstRefusal: seen.firstRefusal }),
    });
    onRow?.(rows.at(-1) as ScaleRow);
  }
  sim.kill();
  return { rows, idleRssMb: rest.rss / 2 ** 20, idleHeapMb: rest.heapUsed / 2 ** 20, load1: loadavg()[0] ?? NaN };
}

/** Submits every id (16 at a time) and checks each became a new queued build. */
async function queue(client: FleetClient, ids: string[], digest: string): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      while (next < ids.length) {
        const id = ids[next++] ?? '';
        const { created } = await client.submit({ id, pool: POOL, context: { digest }, image: { repository: 'bench/scale', tags: ['1'] } });
        if (!created) throw new Error(`build ${id} was not created`);
      }
    }),
  );
}

const pace = (buildMs: number): string => (buildMs === 0 ? 'none (saturation)' : `${(buildMs / 1000).toFixed(1)} s mean`);

export function scaleTable(figures: ScaleFigures): string {
  const lines = [
    '| workers | simulated build | builds settled | throughput | claim p50 / p99 as workers see it (p99 without the opening burst) | claim answered by the coordinator p50 / p99 | report → recorded p50 / p99 | coordinator peak RSS (heap) | coordinator CPU | event loop delay p99: coordinator / simulated workers | bench process RSS | load (1 min) | refused claims |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
  ];
  for (const r of figures.rows) {
    if ('error' in r) {
      lines.push(`| ${r.workers} | ${pace(r.buildMs)} | not measured: ${r.error} | | | | | | | | | | |`);
      continue;
    }
    lines.push(
      `| ${r.workers} | ${pace(r.buildMs)} | ${r.settled} of ${r.builds} | ${r.throughput.toFixed(0)} builds/s | ${r.claimP50Ms.toFixed(1)} / ${r.claimP99Ms.toFixed(1)} ms (${r.laterClaimP99Ms.toFixed(1)} ms) | ≤ ${bucketBoundMs(r.answerP50Ms)} / ≤ ${bucketBoundMs(r.answerP99Ms)} | ` +
        `${r.recordedP50Ms.toFixed(1)} / ${r.recordedP99Ms.toFixed(1)} ms | ${r.peakRssMb.toFixed(0)} MB (${r.peakHeapMb.toFixed(0)} MB) | ${r.cpuCores.toFixed(2)} cores, ${r.cpuMsPerBuild.toFixed(1)} ms/build | ` +
        `${r.coordinatorLagP99Ms.toFixed(0)} / ${r.simulatorLagP99Ms.toFixed(0)} ms | ${r.benchPeakRssMb.toFixed(0)} MB | ${r.load1.toFixed(1)} | ` +
        `${r.refusedClaims}${r.firstRefusal === undefined ? '' : ` (${r.firstRefusal})`} |`,
    );
  }
  return lines.join('\n');
}

/** The standalone bench: the growth curve as a Markdown table. */
export async function main(): Promise<void> {
  const figures = await measureScale(WORKER_COUNTS, BUILDS, (r) => console.error(`scale: ${JSON.stringify(r)}`));
  console.log(`\n${scaleTable(figures)}\n\ncoordinator process (${figures.coordinatorRuntime}) at rest (started, nothing queued): RSS ${figures.idleRssMb.toFixed(0)} MB, heap ${figures.idleHeapMb.toFixed(0)} MB; target: coordinator RSS < 200 MB, claim p99 <= 25 ms at 100 workers (paced builds); load average ${figures.load1.toFixed(1)} at the end (shared machine)`);
}

// ---------------------------------------------------------------------------------------------
// The child: the simulated workers.

async function simulate(): Promise<void> {
  const { jetstream } = await import('@nats-io/jetstream');
  const { Kvm } = await import('@nats-io/kv');
  const { connectNats } = await import('../adapters/nats.ts');
  const { createLogger } = await import('../adapters/logger.ts');
  const { Announcer } = await import('../worker/announcer.ts');
  const p = await import('../protocol/index.ts');
  // What a simulated worker reads of its job: the build's id. A fleet's workers each decode their
  // job on a CPU of their own; 100 of them decoding whole jobs in this one process took 15 ms of
  // the opening burst's 70 (a CPU profile), and every reply of the burst waited behind it.
  const SimulatedJob = z.object({ buildId: p.BuildJob.shape.buildId });
  const log = createLogger('scale-sim', { level: 'warn', pretty: false });
  const setup = await new Promise<SimSetup>((resolve) => process.once('message', (m: SimSetup) => resolve(m)));
  // The watcher sees each build's authoritative `failed` event (admin user: it may read every build).
  const watcher = await connectNats(setup.natsUrl, 'scale-watcher', setup.admin, log);
  const reportedAt = new Map<string, number>();
  // (a holder: the run installs its own callback)
  const settled: { on: (buildId: string, at: number) => void } = { on: () => undefined };
  const events = watcher.subscribe(p.subjects.buildsWildcard);
  void (async () => {
    for await (const m of events) {
      if (!m.subject.endsWith('.event')) continue;
      const event = p.decodeWith(p.BuildEvent, m.data, 'build event', p.ErrorCode.E_INTERNAL);
      if (event.type === 'failed') settled.on(event.buildId, performance.now());
    }
  })();

  // the bench gone (killed): so are its simulated workers (bench/scale-coordinator.ts says why)
  process.once('disconnect', () => process.exit(0));
  process.on('message', (m: SimSetup | RunOrder) => {
    if (!('workers' in m)) return;
    void run(m).then(
      (seen) => process.send?.(seen),
      (e: unknown) => process.send?.({ error: e instanceof Error ? e.message : String(e) }),
    );
  });

  async function run(order: RunOrder): Promise<RunSeen> {
    const wanted = new Set(order.buildIds);
    const claimMs: number[] = [];
    const laterClaimMs: number[] = [];
    const recordedMs: number[] = [];
    let refusedClaims = 0;
    let firstRefusal: string | undefined;
    let count = 0;
    const stop = new AbortController();
    let t0 = 0;
    let tEnd = 0;
    const allSettled = new Promise<void>((resolve) => {
      settled.on = (buildId, at) => {
        if (!wanted.delete(buildId)) return;
        const sent = reportedAt.get(buildId);
        if (sent !== undefined) recordedMs.push(at - sent);
        reportedAt.delete(buildId);
        count += 1;
        if (wanted.size === 0) {
          tEnd = at;
          resolve();
        }
      };
    });
    const timeout = setTimeout(() => stop.abort(), RUN_TIMEOUT_MS);
    const lag = monitorEventLoopDelay({ resolution: 5 });

    // One NATS connection per worker, as real workers have; all connected and announced before any
    // pull. A few at a time, retried: 100 nkey handshakes at once on a loaded 2-core machine run
    // past nats-server's authentication timeout (a fleet's workers do not all start in one instant).
    const connectOne = async (i: number) => {
      const workerId = `sim${order.workers}-${i}-${process.pid}`;
      for (let tries = 1; ; tries++) {
        try {
          const nc = await connectNats(setup.natsUrl, `fleet-worker-${workerId}`, setup.worker, log);
          const js = jetstream(nc);
          const kvm = new Kvm(nc);
          const announcer = new Announcer(await kvm.open(p.buckets.workers), { workerId, pool: POOL, builder: 'simulated', version: '0' }, 5_000, log);
          await announcer.start();
          const consumer = await js.consumers.get(p.streams.jobs, p.consumers.pool(POOL));
          return { workerId, nc, js, announcer, consumer };
        } catch (e) {
          if (tries >= 5) throw e;
        }
      }
    };
    const sims: Array<Awaited<ReturnType<typeof connectOne>>> = [];
    let nextWorker = 0;
    await Promise.all(
      Array.from({ length: Math.min(CONNECT_CONCURRENCY, order.workers) }, async () => {
        while (nextWorker < order.workers) sims.push(await connectOne(nextWorker++));
      }),
    );
    const aborted = new Promise<void>((resolve) => stop.signal.addEventListener('abort', () => resolve(), { once: true }));
    const ending = Promise.race([allSettled, aborted]).then(() => stop.abort());
    process.send?.({ ready: true });
    lag.enable();
    t0 = performance.now();
    await Promise.all([
      ...sims.map(async ({ workerId, nc, js, announcer, consumer }) => {
        for (let claims = 0; !stop.signal.aborted; ) {
          const msg = await consumer.next({ expires: 2_000 }).catch(() => null);
          if (msg === null) continue;
          const job = p.decodeWith(SimulatedJob, msg.data, 'build job', p.ErrorCode.E_INVALID_JOB);
          const attempt = msg.info.deliveryCount;
          const c0 = performance.now();
          const reply = await nc.request(p.subjects.claim(POOL), p.encode({ buildId: job.buildId, attempt, workerId }), { timeout: 5_000 }).catch((e: unknown) => e);
          claimMs.push(performance.now() - c0);
          if (claims++ > 0) laterClaimMs.push(performance.now() - c0);
          const answer = reply instanceof Error ? null : p.decodeWith(p.ClaimReply, (reply as { data: Uint8Array }).data, 'claim reply', p.ErrorCode.E_INTERNAL);
          if (answer === null || !answer.ok) {
            refusedClaims += 1;
            firstRefusal ??= answer === null ? String(reply) : answer.error.code;
            msg.term('claim refused');
            continue;
          }
          announcer.set('building', job.buildId);
          msg.working();
          if (order.buildMs > 0) await delay(order.buildMs * (0.5 + Math.random()), undefined, { signal: stop.signal }).catch(() => undefined);
          const at = new Date().toISOString();
          const lines = Array.from({ length: LOG_LINES }, (_, n) => ({ n: n + 1, stream: 'stdout' as const, at, text: `simulated step ${n + 1} of ${LOG_LINES}` }));
          await js.publish(p.subjects.log(job.buildId, POOL), p.encode({ buildId: job.buildId, attempt, lines }));
          const error = new p.FleetError(p.ErrorCode.E_BUILD_STEP_FAILED, 'simulated worker: no build ran').toBody();
          reportedAt.set(job.buildId, performance.now());
          await js.publish(p.subjects.report(job.buildId, POOL), p.encode({ type: 'failed', buildId: job.buildId, attempt, workerId, at: new Date().toISOString(), error }), {
            msgID: `${job.buildId}.${attempt}.failed`,
          });
          msg.ack();
          announcer.set('idle');
        }
      }),
      ending,
    ]);
    clearTimeout(timeout);
    lag.disable();
    await Promise.all(sims.map(async ({ nc, announcer }) => {
      await announcer.stop();
      await nc.close();
    }));
    return { claimMs, laterClaimMs, recordedMs, wallMs: (tEnd === 0 ? performance.now() : tEnd) - t0, refusedClaims, ...(firstRefusal === undefined ? {} : { firstRefusal }), settled: count, lagP99Ms: lag.percentile(99) / 1e6 };
  }
}
