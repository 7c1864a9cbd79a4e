/**
 * `npm run chaos`: 200 small builds on 3 workers while workers are killed (kill -9) at random and
 * nats-server is restarted once, with 25% of the submissions duplicated. Prints what happened to
 * every request: terminal states, duplicates built twice (must be 0), lost (must be 0), latency.
 */
import { startLocalFleet } from '../deploy/local/fleet.ts';
import { isTerminal, type BuildView } from '../protocol/index.ts';
import { createLogger } from '../adapters/logger.ts';
import { storedEvents } from '../client/index.ts';
import { printTable, quantile } from './table.ts';

const BUILDS = Number(process.env.CHAOS_BUILDS ?? 200);
const APP = new URL('../test/fixtures/apps/tiny', import.meta.url).pathname;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const fleet = await startLocalFleet(
  { workers: 3, coordinator: { jobAckWaitMs: 3_000, workerTtlMs: 3_000 }, worker: { heartbeatMs: 1_000, announceMs: 500 } },
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
  for (let i = 0; i < BUILDS; i++) {
    inFlight.push(submit(i));
    if (Math.random() < 0.25) {
      duplicates += 1;
      const j = Math.floor(Math.random() * (i + 1)); // the same request again, maybe right now
      inFlight.push(submit(j));
    }
    if (i === Math.floor(BUILDS * 0.4)) {
      await fleet.nats.restart({ kill: true, downMs: 1_000 });
      restarts += 1;
    }
    await sleep(100);
  }
  await Promise.all(inFlight);

  const ids = Array.from({ length: BUILDS }, (_, i) => `${run}-${i}`);
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

  const byState = new Map<string, number>();
  for (const b of finals.values()) byState.set(b.state.phase, (byState.get(b.state.phase) ?? 0) + 1);
  let attempts = 0;
  let pushedTwice = 0;
  for (const id of ids) {
    const events = await storedEvents(client.nc, id);
    attempts += events.filter((e) => e.type === 'started').length;
    if (events.filter((e) => e.type === 'pushed').length > 1) pushedTwice += 1;
  }
  const builtTwice = [...createdTrue.values()].filter((n) => n > 1).length + pushedTwice;
  // Why the failed ones failed, and after how many attempts: a build whose every delivery was
  // killed ends in the dead letter queue by design.
  const failures = new Map<string, number>();
  for (const b of finals.values()) {
    if (b.state.phase !== 'failed') continue;
    const key = `${b.state.error.code} (attempt ${b.state.attempt})`;
    failures.set(key, (failures.get(key) ?? 0) + 1);
  }
  const e2e = [...finals.values()].map((b) => Date.parse(b.updatedAt) - Date.parse(b.createdAt));
  printTable([
    ['requests sent (with duplicates)', `${submitted} (${duplicates} duplicates)`],
    ['distinct builds', String(BUILDS)],
    ['terminal states', [...byState.entries()].map(([k, v]) => `${k} ${v}`).join(', ')],
    ['failed, by code', failures.size === 0 ? '-' : [...failures.entries()].map(([k, v]) => `${v} × ${k}`).join(', ')],
    ['attempts started (retries after kills included)', String(attempts)],
    ['duplicates built twice (must be 0)', String(builtTwice)],
    ['lost: accepted, never terminal (must be 0)', String(ids.length - finals.size)],
    ['workers killed (kill -9) / nats restarts', `${kills} / ${restarts}`],
    ['end-to-end p50 / p99', `${quantile(e2e, 0.5)} ms / ${quantile(e2e, 0.99)} ms`],
    ['wall time', `${((Date.now() - started) / 1000).toFixed(0)} s`],
  ]);
} finally {
  await fleet.stop();
}
