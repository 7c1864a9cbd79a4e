/**
 * `npm run bench -- gates`: how long the gates take on a standard Java build (java17, .paas
 * hooks, wget option), from `verifying` to `verdict`. A few builds through the fleet, one source
 * file changed each time, give the figure users see (their events' timestamps); the first one
 * finds the coordinator knowing nothing. Then the gates run on the last build's quarantined image
 * in this process, as the coordinator calls them: with nothing remembered (every app layer read),
 * and with the coordinator's memory. The fleet has no scanner pool, so the vulnerabilities gate
 * (a scan job, see gates/vulnerabilities.ts) is not part of these figures. Printed, not asserted.
 */
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { platformPublicKeyPath } from '../adapters/environment.ts';
import { createLogger } from '../adapters/logger.ts';
import { RegistryClient } from '../adapters/registry-client.ts';
import { storedEvents } from '../client/index.ts';
import { GateCache, loadGatePolicy, runGates } from '../coordinator/gates/index.ts';
import { QUARANTINE_NAMESPACE } from '../coordinator/render-job.ts';
import { startLocalFleet } from '../deploy/local/fleet.ts';
import type { BuildRequestInput } from '../protocol/index.ts';
import { printTable, quantile } from './table.ts';

const BUILDS = Number(process.env.BENCH_GATES_BUILDS ?? 5);
const RUNS = Number(process.env.BENCH_GATES_RUNS ?? 20);
const COLD_RUNS = 3;
const TARGET_MS = 200;
const APP = new URL('../test/fixtures/apps/java-hooks', import.meta.url).pathname;

export interface GatesFigures {
  /** verifying → verdict of each build through the fleet, the first with nothing remembered */
  viaFleetMs: number[];
  /** runGates in this process with a fresh cache */
  coldMs: number[];
  /** runGates as the coordinator calls it (remembering) */
  warmMs: number[];
}

/** The standalone bench: the figures as a Markdown table. */
export async function main(): Promise<void> {
  const f = await measureGates();
  const rows: Array<[string, string]> = f.viaFleetMs.map((ms, i) => [`build ${i + 1}${i === 0 ? ' (first: the coordinator has read nothing yet)' : ''}: verifying → verdict`, `${ms} ms`]);
  rows.push([`through the fleet, p50 of ${f.viaFleetMs.length} builds`, `${quantile(f.viaFleetMs, 0.5)} ms (target <= ${TARGET_MS} ms)`]);
  rows.push([`runGates, nothing remembered, p50 of ${f.coldMs.length}`, `${quantile(f.coldMs, 0.5).toFixed(0)} ms`]);
  rows.push([`runGates, as the coordinator (remembering), p50 / p99 of ${f.warmMs.length}`, `${quantile(f.warmMs, 0.5).toFixed(0)} / ${quantile(f.warmMs, 0.99).toFixed(0)} ms`]);
  printTable(rows);
}

/** BENCH_GATES_BUILDS builds through a fleet of its own, then BENCH_GATES_RUNS runs of the gates on the last image. */
export async function measureGates(): Promise<GatesFigures> {
  const fleet = await startLocalFleet({}, createLogger('bench', { level: 'warn', pretty: false }));
  const scratch = await mkdtemp(join(tmpdir(), 'fleet-bench-gates-'));
  try {
    const app = join(scratch, 'app');
    await cp(APP, app, { recursive: true });
    const viaFleet: number[] = [];
    let last: { digest: string } | null = null;
    for (let i = 0; i < BUILDS; i++) {
      // A source change per build: each gets an image of its own (new app layers), as a user's would.
      const source = join(app, 'src', 'Main.java');
      await writeFile(source, `${await readFile(source, 'utf8')}\n// bench build ${i}\n`);
      const { digest: context } = await fleet.client.uploadContext(app, null);
      const id = `gates-${Date.now()}-${i}`;
      const request: BuildRequestInput = {
        id,
        kind: 'standard',
        context: { digest: context },
        standard: { runtime: 'java17', environment: 'prod', options: ['wget'] },
        image: { repository: 'bench/gates', tags: [String(i)] },
      };
      await fleet.client.submit(request);
      const done = await fleet.client.follow(id, {});
      if (done.state.phase !== 'pushed') throw new Error(`${id} ended ${done.state.phase}`);
      const events = await storedEvents(fleet.client.nc, id);
      const at = (type: string): number => Date.parse(events.find((e) => e.type === type)?.at ?? '');
      const ms = at('verdict') - at('verifying');
      viaFleet.push(ms);
      last = { digest: done.state.digest };
    }
    if (last === null) throw new Error('no build ran');

    // The same gates on the same image, as the coordinator calls them.
    const registry = new RegistryClient({ host: fleet.registry.host, insecure: true });
    const policy = await loadGatePolicy();
    const signingPublicKey = await readFile(platformPublicKeyPath(), 'utf8');
    const digest = last.digest;
    const timed = async (runs: number, cache: () => GateCache | undefined): Promise<number[]> => {
      const ms: number[] = [];
      for (let i = 0; i < runs; i++) {
        const remembered = cache();
        const t0 = performance.now();
        const verdict = await runGates({
          registry,
          policy,
          signingPublicKey,
          kind: 'standard',
          quarantineRepository: `${QUARANTINE_NAMESPACE}bench/gates`,
          digest,
          repository: 'bench/gates',
          ...(remembered === undefined ? {} : { cache: remembered }),
        });
        ms.push(performance.now() - t0);
        if (!verdict.promoted) throw new Error(`gates blocked the bench image: ${JSON.stringify(verdict.gates)}`);
      }
      return ms;
    };
    const cold = await timed(COLD_RUNS, () => new GateCache());
    const warm = await timed(RUNS, () => undefined);
    return { viaFleetMs: viaFleet, coldMs: cold, warmMs: warm };
  } finally {
    await rm(scratch, { recursive: true, force: true });
    await fleet.stop();
  }
}
