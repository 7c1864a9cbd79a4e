/**
 * `npm run bench -- builders`: one Java multi-stage app (test/fixtures/apps/multi-stage,
 * `--target runtime`) through each builder, in one run:
 * - raw: the tool invoked by hand as the build user, from empty local state, with the argv the
 *   worker's adapter would use (the adapters export it), pushing to its own repository;
 * - fleet: submit → promoted (context transfer, queue, signature checks, gates, promotion
 *   included), each build on a fresh worker (empty local state);
 * - cold (nothing in the app's registry cache) and warm (one source file changed, cache warm);
 * - peak RSS of the build user's processes during the raw run (builder, daemon, RUN steps);
 * - rootless vs rootful raw buildah, same argv, native overlay both.
 * Printed, not asserted: numbers belong to the machine.
 */
import { cp, mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa, type Options } from 'execa';
import { packContext } from '../cli/context-pack.ts';
import { startLocalFleet } from '../deploy/local/fleet.ts';
import { buildUser, chownTree, waitFor } from '../deploy/local/host.ts';
import { KANIKO_IMAGE } from '../images/versions.ts';
import { createLogger } from '../runtime/logger.ts';
import { buildahBudArgs } from '../worker/builders/buildah.ts';
import { buildctlArgs } from '../worker/builders/buildkit.ts';
import { buildkitdCommand, writeBuildkitdConfig } from '../worker/builders/buildkitd.ts';
import { kanikoRunArgs } from '../worker/builders/kaniko.ts';
import type { BuildPlan } from '../worker/builders/types.ts';
import { writeContainersConfig } from '../worker/containers-config.ts';
import { extractContext } from '../worker/context-extract.ts';
import { printTable } from './table.ts';

const BUILDERS = ['buildah', 'buildkit', 'kaniko'] as const;
type BuilderName = (typeof BUILDERS)[number];
const APP = new URL('../test/fixtures/apps/multi-stage', import.meta.url).pathname;
/** the build user's subordinate id range starts here (scripts/versions.env FLEET_SUBID_START) */
const SUBID_START = 200_000;
const TOOL_PATH = `${process.env.FLEET_CACHE_DIR ?? '/var/cache/fleet'}/bin:/usr/sbin:/usr/bin:/sbin:/bin`;

const log = createLogger('bench', { level: 'warn', pretty: false });
const fleet = await startLocalFleet({ workers: 0, coordinator: { pools: ['buildkit', 'kaniko'] } }, log);
const user = await buildUser();
const scratch = await mkdtemp(join(tmpdir(), 'fleet-bench-builders-'));
const host = fleet.registry.host;

/** The app, as it is (cold) or with one source file changed (warm). */
async function appVersion(name: 'cold' | 'warm'): Promise<string> {
  const dir = join(scratch, `app-${name}`);
  await cp(APP, dir, { recursive: true });
  if (name === 'warm') {
    const src = join(dir, 'src', 'Hello.java');
    await writeFile(src, (await readFile(src, 'utf8')).replace('multi-stage says', 'multi-stage still says'));
  }
  return dir;
}

/** Sums VmRSS of the build user's non-node processes every 100 ms; returns the peak in MiB. */
function rssSampler(): () => Promise<number> {
  let peak = 0;
  let stop = false;
  const sample = async (): Promise<void> => {
    let sum = 0;
    for (const pid of (await readdir('/proc')).filter((p) => /^\d+$/.test(p))) {
      const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
      const uid = Number(/^Uid:\s+(\d+)/m.exec(status)?.[1] ?? -1);
      // The build user's own processes, and those running as other ids of its user namespace
      // (subordinate ids, e.g. a RUN step as USER 1000); not the workers' node processes.
      if (/^Name:\s+node$/m.test(status) || (uid !== user.uid && uid < SUBID_START)) continue;
      sum += Number(/^VmRSS:\s+(\d+)/m.exec(status)?.[1] ?? 0);
    }
    peak = Math.max(peak, sum);
  };
  const loop = (async () => {
    while (!stop) {
      await sample();
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  return async () => {
    stop = true;
    await loop;
    return peak / 1024;
  };
}

/** One raw build by hand from empty local state; returns wall ms and peak RSS MiB. */
async function raw(builder: BuilderName, app: string, tag: string, asRoot = false): Promise<{ ms: number; rssMiB: number }> {
  const dir = await mkdtemp(join(scratch, `raw-${builder}-`));
  const packed = await packContext(app, 'Dockerfile', join(dir, 'ctx.tgz'));
  const contextDir = join(dir, 'ctx');
  await extractContext(packed.file, contextDir);
  const state = join(dir, 'state');
  const env = { PATH: TOOL_PATH, ...(await writeContainersConfig(state, [host])) };
  const plan: BuildPlan = {
    buildId: `raw-${tag}`,
    contextDir,
    dockerfile: join(contextDir, 'Dockerfile'),
    target: 'runtime',
    buildArgs: { FLEET_REGISTRY: host },
    secrets: {},
    labels: {},
    destinations: [`${host}/bench/raw-${builder}:${tag}`],
    cacheRepository: `${host}/cache/bench/raw-${builder}`,
    workDir: dir,
  };
  const runAs = !asRoot && user.switchUser;
  if (runAs) await chownTree(dir, user.uid, user.gid);
  const opts: Options = { env, extendEnv: false, cwd: dir, uid: runAs ? user.uid : undefined, gid: runAs ? user.gid : undefined, stdio: 'ignore' };
  const stopSampling = rssSampler();
  const t0 = performance.now();
  switch (builder) {
    case 'buildah':
      await execa('buildah', buildahBudArgs(plan, 'localhost/bench:latest', 'none'), opts);
      await execa('buildah', ['push', '--digestfile', join(dir, 'digest'), 'localhost/bench:latest', `docker://${plan.destinations[0] ?? ''}`], opts);
      break;
    case 'buildkit': {
      const bk = join(state, 'buildkit');
      await mkdir(join(bk, 'run'), { recursive: true });
      await writeBuildkitdConfig(bk, [host]);
      if (runAs) await chownTree(state, user.uid, user.gid);
      const socket = join(bk, 'buildkitd.sock');
      const daemon = execa(buildkitdCommand(bk, socket)[0] ?? '', buildkitdCommand(bk, socket).slice(1), { ...opts, env: { ...env, XDG_RUNTIME_DIR: join(bk, 'run') }, reject: false });
      await waitFor('buildkitd', async () => ((await execa('buildctl', ['--addr', `unix://${socket}`, 'debug', 'workers'], { ...opts, reject: false })).exitCode === 0 ? true : null));
      await execa('buildctl', ['--addr', `unix://${socket}`, ...buildctlArgs(plan, join(dir, 'metadata.json'), [host])], opts);
      daemon.kill('SIGTERM');
      await daemon;
      break;
    }
    case 'kaniko': {
      const image = `${host}/${KANIKO_IMAGE.split(':')[0] ?? ''}@${fleet.officialImages[KANIKO_IMAGE] ?? ''}`;
      await execa('podman', ['pull', '--quiet', image], opts);
      const argv = await kanikoRunArgs(plan, image, `bench-${tag}`, [host]);
      if (runAs) await chownTree(dir, user.uid, user.gid);
      await execa('podman', argv, opts);
      break;
    }
  }
  const ms = performance.now() - t0;
  const rssMiB = await stopSampling();
  await execa('buildah', ['unshare', 'rm', '-rf', state], { ...opts, reject: false });
  await rm(dir, { recursive: true, force: true });
  return { ms, rssMiB };
}

/** One build through the fleet on a fresh worker of the builder's pool; returns wall ms. */
async function viaFleet(builder: BuilderName, app: string, tag: string): Promise<number> {
  const worker = await fleet.addWorker({ pool: builder === 'buildah' ? 'default' : builder, builder });
  try {
    const { digest } = await fleet.client.uploadContext(app);
    const id = `bench-${builder}-${tag}`;
    const t0 = performance.now();
    await fleet.client.submit({ id, context: { digest }, pool: builder === 'buildah' ? 'default' : builder, target: 'runtime', image: { repository: `bench/fleet-${builder}`, tags: [tag] } });
    const done = await fleet.client.follow(id, {});
    if (done.state.phase !== 'pushed') throw new Error(`${id} ended ${done.state.phase}`);
    return performance.now() - t0;
  } finally {
    await worker.stop();
  }
}

const s = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;
try {
  const cold = await appVersion('cold');
  const warm = await appVersion('warm');
  console.log('\n| builder | raw cold | fleet cold | overhead cold | raw warm | fleet warm | overhead warm | warm/cold (fleet, fresh worker) | peak RSS (raw) |');
  console.log('| --- | --- | --- | --- | --- | --- | --- | --- | --- |');
  for (const builder of BUILDERS) {
    const rawCold = await raw(builder, cold, 'cold');
    const rawWarm = await raw(builder, warm, 'warm');
    const fleetCold = await viaFleet(builder, cold, 'cold');
    const fleetWarm = await viaFleet(builder, warm, 'warm');
    console.log(
      `| ${builder} | ${s(rawCold.ms)} | ${s(fleetCold)} | ${(fleetCold / rawCold.ms).toFixed(2)}x | ${s(rawWarm.ms)} | ${s(fleetWarm)} | ${(fleetWarm / rawWarm.ms).toFixed(2)}x | ${(fleetWarm / fleetCold).toFixed(2)}x | ${Math.max(rawCold.rssMiB, rawWarm.rssMiB).toFixed(0)} MiB |`,
    );
  }
  const rootless = await raw('buildah', cold, 'rootless');
  const rootful = user.switchUser ? await raw('buildah', cold, 'rootful', true) : null;
  printTable([
    ['raw buildah, rootless (build user), cold', s(rootless.ms)],
    ['raw buildah, rootful (root), cold', rootful === null ? 'not run (needs root)' : s(rootful.ms)],
    ['rootless / rootful', rootful === null ? '-' : `${(rootless.ms / rootful.ms).toFixed(2)}x  (target <= 1.1x)`],
  ]);
} finally {
  await rm(scratch, { recursive: true, force: true });
  await fleet.stop();
}
