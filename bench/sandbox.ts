/**
 * `npm run bench -- sandbox` (`BENCH_N` rounds, default 3; medians): build time with the network
 * sandbox vs without, per builder, in one run on one fleet. Both workers run from copies of the
 * committed tree (HEAD: nobody's uncommitted work in either): "with" as it is, "without" with
 * the builder adapters of PRE_SANDBOX (BuildKit under rootlesskit's host network pulling and
 * pushing itself, kaniko in podman's host network with the push done by the worker). Each round builds the two-stage app into a fresh repository (its layer
 * cache cold) on warm workers of both kinds, alternating which goes first; the first round warms
 * the workers up and is dropped. buildah's adapter did not change (its RUN steps were already
 * private): its two columns are the same code, the noise floor. Printed, not asserted.
 */
import { chmod, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createGunzip } from 'node:zlib';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { startLocalFleet } from '../deploy/local/fleet.ts';
import type { spawnWorker as SpawnWorker, WorkerProcess } from '../deploy/local/worker-process.ts';
import { createLogger } from '../adapters/logger.ts';
import { storedEvents } from '../client/index.ts';
import { waitFor } from '../node/host.ts';
import { BUILDER_KINDS, type BuilderKind } from '../protocol/index.ts';
import { quantile } from './table.ts';

/** the last commit before the network sandbox (its builder adapters are the baseline) */
const PRE_SANDBOX = '782e18a';
const PRE_SANDBOX_FILES = ['worker/builders/buildkit.ts', 'worker/builders/buildkitd.ts', 'worker/builders/kaniko.ts', 'worker/builders/index.ts'];
const N = Number(process.env.BENCH_N ?? 3);
const BUILDERS = BUILDER_KINDS.filter((b) => (process.env.BENCH_BUILDERS ?? BUILDER_KINDS.join(',')).split(',').includes(b));
const ROOT = fileURLToPath(new URL('../', import.meta.url));
/** `BENCH_APP=multi-stage BENCH_TARGET=runtime`: the builders bench's Java app instead of the two-stage one */
const APP = new URL(`../test/fixtures/apps/${process.env.BENCH_APP ?? 'two-stage'}`, import.meta.url).pathname;
const TARGET = process.env.BENCH_TARGET;
type Mode = 'sandbox' | 'host';

/**
 * HEAD as a runnable tree (node_modules linked, readable by the build user); `host`: with the
 * pre-sandbox builder adapters.
 */
async function tree(mode: Mode): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), `fleet-bench-${mode}-`));
  await chmod(dir, 0o755);
  await execa('sh', ['-c', `git archive HEAD | tar -x -C '${dir}'`], { cwd: ROOT });
  if (mode === 'host') for (const file of PRE_SANDBOX_FILES) await writeFile(join(dir, file), (await execa('git', ['show', `${PRE_SANDBOX}:${file}`], { cwd: ROOT })).stdout);
  await symlink(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
  return dir;
}

const log = createLogger('bench', { level: 'warn', pretty: false });
const poolOf = (builder: BuilderKind, mode: Mode): string => `${mode}-${builder}`;
const fleet = await startLocalFleet({ workers: 0, coordinator: { pools: BUILDERS.flatMap((b) => [poolOf(b, 'sandbox'), poolOf(b, 'host')]) } }, log);
const trees: Record<Mode, string> = { sandbox: await tree('sandbox'), host: await tree('host') };
const workers: WorkerProcess[] = [];
try {
  for (const mode of ['sandbox', 'host'] as const) {
    // Each tree's own spawnWorker runs its own worker/main.ts.
    const { spawnWorker } = (await import(join(trees[mode], 'deploy/local/worker-process.ts'))) as { spawnWorker: typeof SpawnWorker };
    for (const builder of BUILDERS) {
      const pool = poolOf(builder, mode);
      const credentials = fleet.natsCredentials[`worker-${pool}`];
      if (credentials === undefined) throw new Error(`no NATS user for ${pool}`);
      workers.push(await spawnWorker({ natsUrl: fleet.nats.url, natsCredentials: credentials, s3: fleet.s3.options, pool, builder, workerId: `${mode}-${builder}-${process.pid}`, insecureRegistries: [fleet.registry.host] }, join(fleet.stateDir, 'workers')));
    }
  }
  await waitFor('workers idle', async () => ((await fleet.client.workers()).filter((w) => w.state === 'idle').length === workers.length ? true : null), 120_000);
  const { digest } = await fleet.client.uploadContext(APP);

  /** A build's archived log (S3, gzipped parts). */
  const archived = async (id: string): Promise<string> => {
    let text = '';
    for (const { key } of await fleet.client.s3.list(`logs/${id}/`)) {
      const body = await fleet.client.s3.get(key);
      if (body !== null) for await (const chunk of body.pipe(createGunzip())) text += (chunk as Buffer).toString();
    }
    return text;
  };

  /** One build; returns the worker's part (started → verifying), ms. */
  const build = async (builder: BuilderKind, mode: Mode, round: number): Promise<number> => {
    const id = `sbx-${builder}-${mode}-${round}`;
    await fleet.client.submit({ id, context: { digest }, pool: poolOf(builder, mode), image: { repository: `bench/sandbox-${builder}-${mode}-r${round}`, tags: ['1'] }, ...(TARGET === undefined ? {} : { target: TARGET }) });
    const done = await fleet.client.follow(id, {});
    if (done.state.phase !== 'pushed') throw new Error(`${id} ended ${JSON.stringify(done.state)}`);
    const events = await storedEvents(fleet.client.nc, id);
    const at = (type: string): number => Date.parse(events.find((e) => e.type === type)?.at ?? '');
    const ms = at('verifying') - at('started');
    // The sandbox's own steps, as the builder timed them (`buildkit: …` / `kaniko: …` in the log): the profile.
    const timing = /\b(?:buildkit|kaniko): (?:image and )?bases and cache in [^"\n]*/.exec(await archived(id))?.[0];
    console.error(`${id}: ${ms} ms${timing === undefined ? '' : `; ${timing}`}`);
    return ms;
  };

  const m = (xs: number[]): number => quantile(xs, 0.5);
  const s = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;
  const load = (): string => loadavg().map((l) => l.toFixed(1)).join(' / ');
  console.log(`\n| builder | without sandbox (host network), median of ${N} | with sandbox | with / without | load average (1/5/15 min) before → after |`);
  console.log('| --- | --- | --- | --- | --- |');
  for (const builder of BUILDERS) {
    const before = load();
    const runs: Record<Mode, number[]> = { sandbox: [], host: [] };
    for (let round = 0; round <= N; round++) {
      const order: Mode[] = round % 2 === 0 ? ['host', 'sandbox'] : ['sandbox', 'host'];
      for (const mode of order) {
        const ms = await build(builder, mode, round);
        if (round > 0) runs[mode].push(ms);
      }
    }
    console.log(`| ${builder} | ${s(m(runs.host))} (${runs.host.map(s).join(', ')}) | ${s(m(runs.sandbox))} (${runs.sandbox.map(s).join(', ')}) | ${(m(runs.sandbox) / m(runs.host)).toFixed(2)}x | ${before} → ${load()} |`);
  }
} finally {
  await Promise.all(workers.map((w) => w.stop()));
  await fleet.stop();
  for (const dir of Object.values(trees)) await rm(dir, { recursive: true, force: true });
}
