/**
 * `npm run bench -- overhead`: the same two-stage app built N times by hand (raw `buildah bud` + `buildah
 * push` with the worker adapter's argv, registry layer cache included, same rootless user) and N times through the fleet, in one run. Prints the
 * overhead ratio (fleet / raw, median wall time per build) and submit→build-start latency.
 * Printed, not asserted: numbers depend on the machine.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { packContext } from '../client/index.ts';
import { startLocalFleet } from '../deploy/local/fleet.ts';
import { buildUser, chownTree, runAsOptions } from '../node/host.ts';
import { createLogger } from '../adapters/logger.ts';
import { writeContainersConfig } from '../node/containers-config.ts';
import { extractContext } from '../worker/context-extract.ts';
import { buildahBudArgs } from '../worker/builders/buildah.ts';
import type { BuildPlan } from '../worker/builders/types.ts';
import { storedEvents } from '../client/index.ts';
import { printTable, quantile } from './table.ts';

const N = Number(process.env.BENCH_N ?? 10);
const APP = new URL('../test/fixtures/apps/two-stage', import.meta.url).pathname;

const median = (xs: number[]): number => quantile(xs, 0.5);

export interface OverheadFigures {
  builds: number;
  rawMedianMs: number;
  fleetMedianMs: number;
  /** fleet / raw, median wall time per warm build */
  ratio: number;
  startP50Ms: number;
  startP99Ms: number;
}

/** The standalone bench: the figures as a Markdown table. */
export async function main(): Promise<void> {
  const f = await measureOverhead();
  printTable([
    ['builds (warm)', String(f.builds)],
    ['raw buildah bud+push, median', `${f.rawMedianMs.toFixed(0)} ms`],
    ['through the fleet, median', `${f.fleetMedianMs.toFixed(0)} ms`],
    ['overhead ratio (fleet/raw)', `${f.ratio.toFixed(3)}x  (target <= 1.05x)`],
    ['submit -> build start, p50', `${f.startP50Ms.toFixed(0)} ms`],
    ['submit -> build start, p99', `${f.startP99Ms.toFixed(0)} ms  (target <= 25 ms)`],
  ]);
}

/** BENCH_N warm builds of the two-stage app, raw and through a fleet of its own (one buildah worker). */
export async function measureOverhead(): Promise<OverheadFigures> {
  const log = createLogger('bench', { level: 'warn', pretty: false });
  const fleet = await startLocalFleet({}, log);
  const user = await buildUser();
  const scratch = await mkdtemp(join(tmpdir(), 'fleet-bench-'));
  try {
    // Raw: the exact context the worker gets, built by hand with the worker's flags.
    const packed = await packContext(APP, 'Dockerfile', join(scratch, 'ctx.tgz'));
    const ctx = join(scratch, 'ctx');
    await extractContext(packed.file, ctx);
    const containers = await writeContainersConfig(join(scratch, 'raw'), [fleet.registry.host], { owner: user.switchUser ? user : undefined });
    const env = containers.env;
    if (user.switchUser) await chownTree(scratch, user.uid, user.gid);
    const asUser = { env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', ...env }, extendEnv: false, ...runAsOptions(user), cwd: scratch } as const;
    // The worker adapter's own argv (as the builders bench's raw runs): its registry layer cache
    // included, which pushes every step's layer, a cache hit's too.
    const plan: BuildPlan = {
      buildId: 'raw',
      contextDir: ctx,
      dockerfile: join(ctx, 'Dockerfile'),
      buildArgs: { FLEET_REGISTRY: fleet.registry.host },
      secrets: {},
      labels: {},
      destinations: [`${fleet.registry.host}/bench/raw:0`],
      cacheRepository: `${fleet.registry.host}/cache/bench/raw`,
      workDir: scratch,
    };
    const raw: number[] = [];
    for (let i = 0; i <= N; i++) {
      const t0 = performance.now();
      await execa('buildah', buildahBudArgs(plan, 'localhost/bench:latest', 'private'), asUser);
      await execa('buildah', ['push', '--digestfile', join(scratch, 'digest'), 'localhost/bench:latest', `docker://${fleet.registry.host}/bench/raw:${i}`], asUser);
      await execa('buildah', ['rmi', 'localhost/bench:latest'], asUser);
      if (i > 0) raw.push(performance.now() - t0); // run 0 warms the layer cache, as the fleet's first build does
    }
    await containers.close();

    const viaFleet: number[] = [];
    const startLatency: number[] = [];
    const { digest } = await fleet.client.uploadContext(APP);
    for (let i = 0; i <= N; i++) {
      const id = `bench-${Date.now()}-${i}`;
      const t0 = performance.now();
      const submittedAt = Date.now();
      await fleet.client.submit({ id, context: { digest }, image: { repository: 'bench/fleet', tags: [String(i)] } });
      const final = await fleet.client.follow(id, {});
      const elapsed = performance.now() - t0;
      if (final.state.phase !== 'pushed') throw new Error(`bench build ${id} ${final.state.phase}`);
      const started = (await storedEvents(fleet.client.nc, id)).find((e) => e.type === 'started');
      if (i > 0) {
        viaFleet.push(elapsed);
        if (started !== undefined) startLatency.push(Date.parse(started.at) - submittedAt);
      }
    }

    const rawMed = median(raw);
    const fleetMed = median(viaFleet);
    return { builds: N, rawMedianMs: rawMed, fleetMedianMs: fleetMed, ratio: fleetMed / rawMed, startP50Ms: quantile(startLatency, 0.5), startP99Ms: quantile(startLatency, 0.99) };
  } finally {
    await rm(scratch, { recursive: true, force: true });
    await fleet.stop();
  }
}
