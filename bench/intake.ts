/**
 * `npm run bench -- intake`: how many build requests one coordinator accepts per second, and how
 * long each waits for its answer, over HTTP (`POST /v1/builds`, keep-alive) and over NATS (the
 * client's submit), at concurrency 8, 32 and 64. The context is uploaded once beforehand, so
 * this is intake alone: validate, record, enqueue, answer. The fleet has no worker: jobs queue.
 *
 * The load runs in a worker thread of its own (this same file): the coordinator lives in this
 * process, and a load generator sharing its event loop would be measured as coordinator time.
 * Printed, not asserted.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { Agent, request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import type { NatsCredentials } from '../adapters/nats.ts';
import type { S3Options } from '../adapters/s3-store.ts';
import { FleetClient } from '../client/index.ts';
import { RawHttpConnection } from './raw-http-client.ts';
import { printTable, quantile } from './table.ts';

const REQUESTS = Number(process.env.BENCH_INTAKE_N ?? 2_000);
const CONCURRENCY = (process.env.BENCH_INTAKE_CONCURRENCY ?? '8,32,64').split(',').map(Number);
const ALL_TRANSPORTS = ['http', 'nats'] as const;
type Transport = (typeof ALL_TRANSPORTS)[number];
const TRANSPORTS = ALL_TRANSPORTS.filter((t) => (process.env.BENCH_INTAKE_TRANSPORTS ?? 'http,nats').split(',').includes(t));
/** the load thread's HTTP client: `raw` (bench/raw-http-client.ts, default) or `node` (node:http with a keep-alive agent) */
const HTTP_CLIENT = process.env.BENCH_INTAKE_HTTP_CLIENT === 'node' ? 'node' : 'raw';

interface Setup {
  natsUrl: string;
  /** the platform admin's, as NATS user and as HTTP bearer token */
  credentials: NatsCredentials;
  token: string;
  s3: S3Options;
  httpUrl: string;
  digest: string;
}
interface Round {
  transport: Transport;
  concurrency: number;
  prefix: string;
}
interface Outcome {
  latencies: number[];
  wallMs: number;
  /** the load thread's own CPU over the round, µs */
  loadCpuUs: number;
  /** answers that were not a new build (an error, or `created: false`) */
  failures: number;
  firstFailure?: string;
}

// The load thread runs this file too; in the main thread, importing it only declares the measures.
if (!isMainThread) await load(workerData as Setup);

/** One round's figures. */
export interface IntakeRound {
  transport: Transport;
  concurrency: number;
  requests: number;
  ratePerSecond: number;
  p50Ms: number;
  p99Ms: number;
  /** coordinator thread CPU per request, where node reports it */
  cpuUsPerRequest?: number;
  /** the load generator's thread CPU per request (HTTP client or FleetClient) */
  loadCpuUsPerRequest: number;
  /** for HTTP: which client the load thread used */
  client?: string;
  failures: number;
  firstFailure?: string;
}

/** The standalone bench: every round as a Markdown table. */
export async function main(): Promise<void> {
  const rounds = await measureIntake();
  const rows: Array<[string, string]> = [['requests per round', String(REQUESTS)]];
  for (const r of rounds) {
    rows.push([
      `${r.transport.toUpperCase()} c=${r.concurrency}`,
      `${Math.round(r.ratePerSecond)} req/s, p50 ${r.p50Ms.toFixed(1)} ms, p99 ${r.p99Ms.toFixed(1)} ms` +
        (r.cpuUsPerRequest === undefined ? '' : `, coordinator ${Math.round(r.cpuUsPerRequest)} µs CPU/request`) +
        `, load generator${r.client === undefined ? '' : ` (${r.client} client)`} ${Math.round(r.loadCpuUsPerRequest)} µs CPU/request` +
        (r.failures === 0 ? '' : `, ${r.failures} not created (${r.firstFailure ?? '?'})`),
    ]);
  }
  rows.push(['target', '>= 2000 req/s, p99 <= 50 ms at c=64']);
  printTable(rows);
}

/** Every round (BENCH_INTAKE_TRANSPORTS × BENCH_INTAKE_CONCURRENCY, BENCH_INTAKE_N requests each) on a fleet of its own. */
export async function measureIntake(): Promise<IntakeRound[]> {
  const { startLocalFleet } = await import('../deploy/local/fleet.ts');
  const { createLogger } = await import('../adapters/logger.ts');
  const fleet = await startLocalFleet({ workers: 0 }, createLogger('bench', { level: 'warn', pretty: false }));
  const dir = await mkdtemp(join(tmpdir(), 'fleet-bench-intake-'));
  let loader: Worker | null = null;
  try {
    await writeFile(join(dir, 'Dockerfile'), 'ARG FLEET_REGISTRY\nFROM ${FLEET_REGISTRY}/official/base:1\nUSER 1000\n');
    const { digest } = await fleet.client.uploadContext(dir);
    const credentials = fleet.natsCredentials.admin;
    if (credentials === undefined) throw new Error('the local fleet has no admin NATS user');
    const setup: Setup = { natsUrl: fleet.nats.url, credentials, token: fleet.adminToken, s3: fleet.s3.options, httpUrl: fleet.coordinator.httpUrl, digest };
    // A worker thread does not inherit the tsx loader of `node --import tsx`: it loads this file through tsx's API.
    const boot = `import(${JSON.stringify(import.meta.resolve('tsx/esm/api'))}).then((tsx) => tsx.tsImport(${JSON.stringify(import.meta.url)}, ${JSON.stringify(import.meta.url)}))`;
    const worker = new Worker(boot, { eval: true, workerData: setup });
    loader = worker;
    const answers: Array<(o: Outcome) => void> = [];
    worker.on('message', (o: Outcome) => answers.shift()?.(o));
    worker.on('error', (e) => {
      console.error('load thread failed:', e);
      process.exitCode = 1;
    });
    const run = (round: Round): Promise<Outcome> =>
      new Promise((resolve) => {
        answers.push(resolve);
        worker.postMessage(round);
      });

    // Warm both paths (connections, JIT, the coordinator's caches) before anything is timed.
    for (const transport of TRANSPORTS) await run({ transport, concurrency: 8, prefix: `warm-${transport}` });

    const rounds: IntakeRound[] = [];
    // CPU the coordinator's thread spent per request: unlike the rates, unmoved by other load on the machine.
    const threadCpu = (process as { threadCpuUsage?: (previous?: NodeJS.CpuUsage) => NodeJS.CpuUsage }).threadCpuUsage?.bind(process);
    for (const transport of TRANSPORTS) {
      for (const concurrency of CONCURRENCY) {
        const cpu0 = threadCpu?.();
        const o = await run({ transport, concurrency, prefix: `${transport}-c${concurrency}` });
        const cpu = cpu0 === undefined ? undefined : threadCpu?.(cpu0);
        rounds.push({
          transport,
          concurrency,
          requests: o.latencies.length,
          ratePerSecond: (o.latencies.length / o.wallMs) * 1000,
          p50Ms: quantile(o.latencies, 0.5),
          p99Ms: quantile(o.latencies, 0.99),
          ...(cpu === undefined ? {} : { cpuUsPerRequest: (cpu.user + cpu.system) / o.latencies.length }),
          loadCpuUsPerRequest: o.loadCpuUs / o.latencies.length,
          ...(transport === 'http' ? { client: HTTP_CLIENT } : {}),
          failures: o.failures,
          ...(o.firstFailure === undefined ? {} : { firstFailure: o.firstFailure }),
        });
      }
    }
    return rounds;
  } finally {
    await loader?.terminate();
    await rm(dir, { recursive: true, force: true });
    await fleet.stop();
  }
}

/** The load thread: answers each round posted to it with its latencies. */
async function load(setup: Setup): Promise<void> {
  const port = parentPort;
  if (port === null) throw new Error('intake load must run in a worker thread');
  const client = await FleetClient.connect(setup.natsUrl, setup.credentials, setup.s3);
  const headers = { 'content-type': 'application/json', authorization: `Bearer ${setup.token}` };
  const agent = new Agent({ keepAlive: true, maxSockets: 256 });
  const target = new URL(`${setup.httpUrl}/v1/builds`);
  const request = (id: string) => ({ id, context: { digest: setup.digest }, image: { repository: 'bench/intake', tags: ['1'] } });
  /** One concurrent lane of a round: sends requests one after another; true when it created a build. */
  type Lane = { send: (id: string) => Promise<boolean>; close: () => void };
  const lanes: Record<Transport, () => Promise<Lane>> = {
    http: async () => {
      if (HTTP_CLIENT === 'raw') {
        const connection = await RawHttpConnection.open(target);
        return {
          send: async (id) => {
            const answer = await connection.request('POST', target.pathname, headers, JSON.stringify(request(id)));
            if (answer.status !== 202) throw new Error(`HTTP ${answer.status}: ${answer.body.slice(0, 200)}`);
            return true;
          },
          close: () => connection.close(),
        };
      }
      return {
        send: (id) =>
          new Promise<boolean>((resolve, reject) => {
            const body = JSON.stringify(request(id));
            const req = httpRequest({ agent, host: target.hostname, port: target.port, path: target.pathname, method: 'POST', headers: { ...headers, 'content-length': Buffer.byteLength(body) } }, (res) => {
              const chunks: Buffer[] = [];
              res.on('data', (c: Buffer) => chunks.push(c));
              res.on('error', reject);
              res.on('end', () => (res.statusCode === 202 ? resolve(true) : reject(new Error(`HTTP ${res.statusCode ?? '?'}: ${Buffer.concat(chunks).toString('utf8').slice(0, 200)}`))));
            });
            req.on('error', reject);
            req.end(body);
          }),
        close: () => undefined,
      };
    },
    nats: () => Promise.resolve({ send: async (id) => (await client.submit(request(id))).created, close: () => undefined }),
  };
  port.on('message', (round: Round) => {
    void (async () => {
      const open = await Promise.all(Array.from({ length: round.concurrency }, () => lanes[round.transport]()));
      const latencies: number[] = [];
      let failures = 0;
      let firstFailure: string | undefined;
      let next = 0;
      const t0 = performance.now();
      const cpu0 = process.threadCpuUsage();
      await Promise.all(
        open.map(async ({ send }) => {
          while (next < REQUESTS) {
            const id = `${round.prefix}-${next++}`;
            const start = performance.now();
            const created = await send(id).catch((e: unknown) => {
              firstFailure ??= e instanceof Error ? e.message : String(e);
              return false;
            });
            latencies.push(performance.now() - start);
            if (!created) failures++;
          }
        }),
      );
      const wallMs = performance.now() - t0;
      const cpu = process.threadCpuUsage(cpu0);
      for (const lane of open) lane.close();
      const outcome: Outcome = { latencies, wallMs, loadCpuUs: cpu.user + cpu.system, failures, ...(firstFailure === undefined ? {} : { firstFailure }) };
      port.postMessage(outcome);
    })();
  });
}
