/**
 * `npm run chaos`: 200 small builds on 3 workers while workers are killed (kill -9) at random and
 * nats-server is restarted once, with 25% of the submissions duplicated. Prints what happened to
 * every request: terminal states, duplicates built twice (must be 0), lost (must be 0), latency.
 * Workers have the node's shared store of platform images (`CHAOS_NODE_STORE=0`: without), as a
 * node would give its ephemeral workers: a replacement for a killed worker does not pull the base.
 */
import { startLocalFleet } from '../deploy/local/fleet.ts';
import { isTerminal, type BuildView } from '../protocol/index.ts';
import { createLogger } from '../adapters/logger.ts';
import { storedEvents, type FleetClient } from '../client/index.ts';
import { printTable, quantile } from './table.ts';

const BUILDS = Number(process.env.CHAOS_BUILDS ?? 200);
const NODE_STORE = process.env.CHAOS_NODE_STORE !== '0';
const APP = new URL('../test/fixtures/apps/tiny', import.meta.url).pathname;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A build's last `n` log lines, as `fleet logs` shows them. */
async function lastLines(client: FleetClient, id: string, n: number): Promise<string[]> {
  const lines: string[] = [];
  await client.logs(id, { line: (l) => lines.push(l.text) }, { follow: false }).catch((e: unknown) => lines.push(`(log unreadable: ${String(e)})`));
  return lines.slice(-n);
}

export interface ChaosFigures {
  builds: number;
  nodeStore: boolean;
  submitted: number;
  duplicates: number;
  byState: Record<string, number>;
  failures: Record<string, number>;
  attempts: number;
  builtTwice: number;
  lost: number;
  /** each build never terminal: its state and stored events */
  stuck: string[];
  /** the last log lines of each build that failed for a reason other than its worker being killed */
  failureLogs: string[];
  kills: number;
  restarts: number;
  e2eP50Ms: number;
  e2eP99Ms: number;
  /** submit → first attempt started: waiting behind 3 workers */
  queueP50Ms: number;
  /** last attempt started → ended: the build itself, gates and promotion */
  runP50Ms: number;
  wallS: number;
}

export async function measureChaos(builds: number = BUILDS, nodeStore: boolean = NODE_STORE): Promise<ChaosFigures> {
  const fleet = await startLocalFleet(
    { workers: 3, sharedImageStore: nodeStore, coordinator: { jobAckWaitMs: 3_000, workerTtlMs: 3_000 }, worker: { heartbeatMs: 1_000, announceMs: 500 } },
    createLogger('chaos', { level: 'error', pretty: false }),
  );
  const { client } = fleet;
  let kills = 0;
  let restarts = 0;
  let submitted = 0;
  let duplicates = 0;
  const createdTrue = new Map<string, number>();
  const run = `c${Date.now().toString(36)}`;
  try {
    const { digest } = await client.uploadContext(APP);
    const request = (i: number) => ({ id: `${run}-${i}`, context: { digest }, buildArgs: { N: String(i) }, image: { repository: 'chaos/tiny', tags: [String(i)] } });
    const submit = async (i: number): Promise<void> => {
      for (let tries = 0; ; tries++) {
        try {
          const answer = await client.submit(request(i));
          submitted += 1;
          if (answer.created) createdTrue.set(answer.build.id, (createdTrue.get(answer.build.id) ?? 0) + 1);
          return;
        } catch (e) {
          if (tries > 60) throw e; // the fleet is reconnecting after the NATS restart
          await sleep(250);
        }
      }
    };

    let stop = false;
    const chaos = (async () => {
      while (!stop) {
        await sleep(4_000 + Math.random() * 4_000);
        if (stop) break;
        const alive = fleet.workers.filter((w) => w.pid > 0);
        const victim = alive[Math.floor(Math.random() * alive.length)];
        if (victim !== undefined) {
          victim.signal('SIGKILL');
          await victim.exited;
          fleet.workers.splice(fleet.workers.indexOf(victim), 1);
          kills += 1;
          await fleet.addWorker();
        }
      }
    })();

    const started = Date.now();
    const inFlight: Array<Promise<void>> = [];
    for (let i = 0; i < builds; i++) {
      inFlight.push(submit(i));
      if (Math.random() < 0.25) {
        duplicates += 1;
        const j = Math.floor(Math.random() * (i + 1)); // the same request again, maybe right now
        inFlight.push(submit(j));
      }
      if (i === Math.floor(builds * 0.4)) {
        await fleet.nats.restart({ kill: true, downMs: 1_000 });
        restarts += 1;
      }
      await sleep(100);
    }
    await Promise.all(inFlight);

    const ids = Array.from({ length: builds }, (_, i) => `${run}-${i}`);
    const finals = new Map<string, BuildView>();
    const deadline = Date.now() + 15 * 60_000;
    while (finals.size < ids.length && Date.now() < deadline) {
      for (const id of ids) {
        if (finals.has(id)) continue;
        const b = await client.status(id).catch(() => null);
        if (b !== null && isTerminal(b.state.phase)) finals.set(id, b);
      }
      await sleep(1_000);
    }
    stop = true;
    await chaos;

    const byState: Record<string, number> = {};
    for (const b of finals.values()) byState[b.state.phase] = (byState[b.state.phase] ?? 0) + 1;
    let attempts = 0;
    let pushedTwice = 0;
    const queueMs: number[] = [];
    const runMs: number[] = [];
    for (const id of ids) {
      const events = await storedEvents(client.nc, id);
      const starts = events.filter((e) => e.type === 'started');
      attempts += starts.length;
      const final = finals.get(id);
      const first = starts[0];
      const last = starts.at(-1);
      if (final !== undefined && first !== undefined && last !== undefined) {
        queueMs.push(Date.parse(first.at) - Date.parse(final.createdAt));
        runMs.push(Date.parse(final.updatedAt) - Date.parse(last.at));
      }
      if (events.filter((e) => e.type === 'pushed').length > 1) pushedTwice += 1;
    }
    // Why the failed ones failed, and after how many attempts: a build whose every delivery was
    // killed ends in the dead letter queue by design.
    const failures: Record<string, number> = {};
    const failureLogs: string[] = [];
    for (const b of finals.values()) {
      if (b.state.phase !== 'failed') continue;
      // A dead letter says why by itself; any other failure under chaos is a finding: its message too.
      const why = b.state.error.code === 'E_DEAD_LETTER' ? '' : `: ${b.state.error.message.slice(0, 300)}`;
      const key = `${b.state.error.code} (attempt ${b.state.attempt})${why}`;
      if (why !== '') failureLogs.push(`${b.id}:\n${(await lastLines(client, b.id, 25)).join('\n')}`);
      failures[key] = (failures[key] ?? 0) + 1;
    }
    // A build never terminal is described, not only counted: its state and its stored events.
    const stuck: string[] = [];
    for (const id of ids.filter((i) => !finals.has(i))) {
      const b = await client.status(id).catch(() => null);
      const events = (await storedEvents(client.nc, id)).map((e) => e.type).join(' ');
      stuck.push(`${id}: ${b === null ? 'no record' : `${b.state.phase} (attempt ${'attempt' in b.state ? String(b.state.attempt) : '-'}, updated ${b.updatedAt})`}; events: ${events || 'none'}`);
    }
    const e2e = [...finals.values()].map((b) => Date.parse(b.updatedAt) - Date.parse(b.createdAt));
    return {
      builds,
      nodeStore,
      submitted,
      duplicates,
      byState,
      failures,
      attempts,
      builtTwice: [...createdTrue.values()].filter((n) => n > 1).length + pushedTwice,
      lost: ids.length - finals.size,
      stuck,
      failureLogs,
      kills,
      restarts,
      e2eP50Ms: quantile(e2e, 0.5),
      e2eP99Ms: quantile(e2e, 0.99),
      queueP50Ms: quantile(queueMs, 0.5),
      runP50Ms: quantile(runMs, 0.5),
      wallS: (Date.now() - started) / 1000,
    };
  } finally {
    await fleet.stop();
  }
}

export async function main(): Promise<void> {
  const c = await measureChaos();
  const list = (r: Record<string, number>): string => Object.entries(r).map(([k, v]) => `${k} ${v}`).join(', ');
  printTable([
    ['requests sent (with duplicates)', `${c.submitted} (${c.duplicates} duplicates)`],
    ['distinct builds', String(c.builds)],
    ['node image store', c.nodeStore ? 'yes' : 'no (CHAOS_NODE_STORE=0)'],
    ['terminal states', list(c.byState)],
    ['failed, by code', Object.keys(c.failures).length === 0 ? '-' : Object.entries(c.failures).map(([k, v]) => `${v} × ${k}`).join(', ')],
    ['attempts started (retries after kills included)', String(c.attempts)],
    ['duplicates built twice (must be 0)', String(c.builtTwice)],
    ['lost: accepted, never terminal (must be 0)', [String(c.lost), ...c.stuck].join('; ')],
    ['workers killed (kill -9) / nats restarts', `${c.kills} / ${c.restarts}`],
    ['end-to-end p50 / p99', `${c.e2eP50Ms} ms / ${c.e2eP99Ms} ms`],
    ['of which: queued (submit → first start) p50 / running (last start → end) p50', `${c.queueP50Ms} ms / ${c.runP50Ms} ms`],
    ['wall time', `${c.wallS.toFixed(0)} s`],
  ]);
  for (const log of c.failureLogs) process.stdout.write(`\n${log}\n`);
}
