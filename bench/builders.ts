/**
 * `npm run bench -- builders` (`BENCH_N` rounds, default 3; medians): one Java multi-stage app (test/fixtures/apps/multi-stage,
 * `--target runtime`) through each builder, in one run:
 * - raw: the tool invoked by hand as the build user, from empty local state, with the argv the
 *   worker's adapter would use (the adapters export it), pushing to its own repository;
 * - fleet: submit → promoted (context transfer, queue, signature checks, gates, promotion
 *   included), each build on a fresh worker (empty local state);
 * - cold (nothing in the app's registry cache) and warm (one source file changed, cache warm);
 * - warm again on a fresh worker that has the node's shared store of platform images;
 * - peak RSS of the build user's processes during the raw run (builder, daemon, RUN steps);
 * - the tiny app (one RUN on the official base), submit → promoted, on a fresh worker and then
 *   again on the same worker (issue 19: kaniko within 2x of buildah);
 * - rootless vs rootful raw buildah, same argv, native overlay both.
 * Printed, not asserted: numbers belong to the machine.
 */
import { BUILDER_KINDS, type BuilderKind } from '../protocol/index.ts';
import { chmod, cp, mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa, type Options } from 'execa';
import { packContext } from '../client/index.ts';
import { startLocalFleet } from '../deploy/local/fleet.ts';
import { buildUser, chownTree, waitFor } from '../node/host.ts';
import { KANIKO_IMAGE } from '../images/versions.ts';
import { createLogger } from '../adapters/logger.ts';
import { builderToolPath } from '../adapters/environment.ts';
import { buildahBudArgs } from '../worker/builders/buildah.ts';
import { buildctlArgs } from '../worker/builders/buildkit.ts';
import { buildkitdCommand, writeBuildkitdConfig } from '../worker/builders/buildkitd.ts';
import { kanikoRunArgs } from '../worker/builders/kaniko.ts';
import { BaseStore, pinFromLines, repositoryOf, type ImportedBase } from '../worker/builders/base-import.ts';
import { fromImages } from '../worker/official-bases.ts';
import { buildkitChecks } from '../worker/dockerfile-directives.ts';
import type { BuildPlan } from '../worker/builders/types.ts';
import { writeContainersConfig } from '../node/containers-config.ts';
import { extractContext } from '../worker/context-extract.ts';
import { storedEvents } from '../client/index.ts';
import { printTable, quantile } from './table.ts';
import { pageCacheNotDropped, settleMachine } from './settle-machine.ts';

const ALL_BUILDERS = BUILDER_KINDS;
const N = Number(process.env.BENCH_N ?? 3);
type BuilderName = BuilderKind;
/** `BENCH_BUILDERS=buildah,kaniko` runs some of them */
const BUILDERS = ALL_BUILDERS.filter((b) => (process.env.BENCH_BUILDERS ?? ALL_BUILDERS.join(',')).split(',').includes(b));
const APP = new URL('../test/fixtures/apps/multi-stage', import.meta.url).pathname;
/** the build user's subordinate id range starts here (scripts/versions.env FLEET_SUBID_START) */
const SUBID_START = 200_000;
const TOOL_PATH = builderToolPath();

const TINY = new URL('../test/fixtures/apps/tiny', import.meta.url).pathname;

type LocalFleet = Awaited<ReturnType<typeof startLocalFleet>>;
/** One run's fleet, build user and scratch directory (set by measureBuilders). */
let fleet: LocalFleet;
let user: Awaited<ReturnType<typeof buildUser>>;
let scratch: string;
let host: string;

/** The app as it is (cold), or with its one source file changed one way or another. */
async function appVersion(name: 'cold' | 'warm' | 'again'): Promise<string> {
  const dir = join(scratch, `app-${name}`);
  await cp(APP, dir, { recursive: true });
  if (name !== 'cold') {
    const src = join(dir, 'src', 'Hello.java');
    await writeFile(src, (await readFile(src, 'utf8')).replace('multi-stage says', `multi-stage says (${name})`));
  }
  return dir;
}

/**
 * Sums VmRSS of the build user's processes (its own uid, and subordinate ids of its user
 * namespace, e.g. a RUN step as USER 1000), node processes (workers) aside, every 250 ms; returns
 * the peak in MiB. The owner comes from stat() so only matching processes are read.
 */
function rssSampler(): () => Promise<number> {
  let peak = 0;
  let stop = false;
  const sample = async (): Promise<void> => {
    let sum = 0;
    for (const pid of (await readdir('/proc')).filter((p) => /^\d+$/.test(p))) {
      const uid = await stat(`/proc/${pid}`).then((st) => st.uid, () => -1);
      if (uid !== user.uid && uid < SUBID_START) continue;
      const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
      if (/^Name:\s+node$/m.test(status)) continue;
      sum += Number(/^VmRSS:\s+(\d+)/m.exec(status)?.[1] ?? 0);
    }
    peak = Math.max(peak, sum);
  };
  const loop = (async () => {
    while (!stop) {
      await sample();
      await new Promise((r) => setTimeout(r, 250));
    }
  })();
  return async () => {
    stop = true;
    await loop;
    return peak / 1024;
  };
}

/**
 * What the worker does around a sandboxed builder (base-import.ts, oci-push.ts), by hand as the
 * build user: each FROM image copied into an OCI layout under DIR.
 */
async function rawBases(plan: BuildPlan, opts: Options): Promise<{ store: BaseStore; bases: ImportedBase[] }> {
  const store = new BaseStore(join(plan.workDir, 'bases'), {}, [host]); // its layout: made by raw()
  const bases: ImportedBase[] = [];
  for (const { image } of fromImages(await readFile(plan.dockerfile, 'utf8'), plan.buildArgs)) {
    const digestFile = join(plan.workDir, `base-${bases.length}`);
    await execa('skopeo', ['copy', '--quiet', '--src-tls-verify=false', '--digestfile', digestFile, `docker://${image}`, `oci:${store.layout}:b${bases.length}`], opts);
    const digest = (await readFile(digestFile, 'utf8')).trim();
    bases.push({ image, digest, pinned: `${repositoryOf(image)}@${digest}` });
  }
  return { store, bases };
}

/** The worker's push of a builder's OCI layout, by hand. */
async function rawPush(layout: string, plan: BuildPlan, opts: Options): Promise<void> {
  await execa('skopeo', ['copy', '--quiet', '--preserve-digests', '--dest-tls-verify=false', `oci:${layout}`, `docker://${plan.destinations[0] ?? ''}`], opts);
}

/** One raw build by hand from empty local state; returns wall ms and peak RSS MiB. */
async function raw(builder: BuilderName, app: string, tag: string, round: string, mode: 'worker' | 'rootless' | 'rootful' = 'worker'): Promise<{ ms: number; rssMiB: number }> {
  // The worker's default (`private`: RUN steps in their own network namespace); the rootful
  // comparison uses `none` on both sides (rootful private networking needs CNI plugins).
  const network = mode === 'worker' ? 'private' : 'none';
  const asRoot = mode === 'rootful';
  const dir = await mkdtemp(join(scratch, `raw-${builder}-`));
  const packed = await packContext(app, 'Dockerfile', join(dir, 'ctx.tgz'));
  const contextDir = join(dir, 'ctx');
  await extractContext(packed.file, contextDir);
  const state = join(dir, 'state');
  const runAs = !asRoot && user.switchUser;
  const containers = await writeContainersConfig(state, [host], { owner: runAs ? user : undefined });
  const env = { PATH: TOOL_PATH, ...containers.env };
  const plan: BuildPlan = {
    buildId: `raw-${tag}`,
    contextDir,
    dockerfile: join(contextDir, 'Dockerfile'),
    target: 'runtime',
    buildArgs: { FLEET_REGISTRY: host },
    secrets: {},
    labels: {},
    destinations: [`${host}/bench/raw-${builder}-${round}:${tag}`],
    cacheRepository: `${host}/cache/bench/raw-${builder}-${round}`,
    workDir: dir,
  };
  // rawBases' layout (skopeo makes no parent directories), before the tree goes to the build user
  await mkdir(new BaseStore(join(dir, 'bases'), {}, []).layout, { recursive: true, mode: 0o700 });
  if (runAs) await chownTree(dir, user.uid, user.gid);
  const opts: Options = { env, extendEnv: false, cwd: dir, ...(runAs ? { uid: user.uid, gid: user.gid } : {}), stdin: 'ignore', stdout: 'ignore' };
  await settleMachine();
  const stopSampling = rssSampler();
  try {
    const t0 = performance.now();
    switch (builder) {
      case 'buildah':
        await execa('buildah', await asideBudArgs(buildahBudArgs(plan, 'localhost/bench:latest', network), mode), opts);
        await execa('buildah', ['push', '--digestfile', join(dir, 'digest'), 'localhost/bench:latest', `docker://${plan.destinations[0] ?? ''}`], opts);
        break;
      case 'buildkit': {
        const bk = join(state, 'buildkit');
        await mkdir(join(bk, 'run'), { recursive: true });
        await writeBuildkitdConfig(bk, [host]);
        if (runAs) await chownTree(state, user.uid, user.gid);
        const socket = join(bk, 'buildkitd.sock');
        const daemon = execa(buildkitdCommand(bk, socket)[0] ?? '', buildkitdCommand(bk, socket).slice(1), { ...opts, env: { ...env, XDG_RUNTIME_DIR: join(bk, 'run') }, reject: false });
        const out = join(dir, 'out');
        // the daemon dies with the run, also when a step of it fails (a bench must leave nothing running)
        try {
          await waitFor('buildkitd', async () => ((await execa('buildctl', ['--addr', `unix://${socket}`, 'debug', 'workers'], { ...opts, reject: false })).exitCode === 0 ? true : null));
          const { store, bases } = await rawBases(plan, opts);
          // The app's layer cache is local now: kept per builder and round, as a worker keeps it.
          const cache = join(scratch, `cache-${builder}-${round}`);
          await mkdir(cache, { recursive: true });
          if (runAs) await chownTree(cache, user.uid, user.gid);
          const filled = await stat(join(cache, 'index.json')).then(() => true, () => false);
          await execa('buildctl', ['--addr', `unix://${socket}`, ...buildctlArgs(plan, join(dir, 'metadata.json'), { layout: out, baseLayout: store.layout, bases, network: 'private', checks: buildkitChecks(await readFile(plan.dockerfile, 'utf8')), cache: { dir: cache, filled } })], opts);
        } finally {
          daemon.kill('SIGTERM');
          await daemon;
        }
        await rawPush(out, plan, opts);
        break;
      }
      case 'kaniko': {
        const image = `${host}/${KANIKO_IMAGE.split(':')[0] ?? ''}@${fleet.officialImages[KANIKO_IMAGE] ?? ''}`;
        await execa('podman', ['pull', '--quiet', image], opts);
        const { store, bases } = await rawBases(plan, opts);
        const tarballs = join(dir, 'kaniko-bases');
        await mkdir(tarballs, { recursive: true });
        for (const base of bases) await store.writeTarball(base.digest, join(tarballs, base.digest), AbortSignal.timeout(600_000));
        const dockerfile = join(dir, 'kaniko-dockerfile', 'Dockerfile');
        await mkdir(join(dir, 'kaniko-dockerfile'), { recursive: true });
        await writeFile(dockerfile, pinFromLines(await readFile(plan.dockerfile, 'utf8'), plan.buildArgs, bases));
        const cache = join(scratch, `cache-${builder}-${round}`);
        await mkdir(cache, { recursive: true });
        const argv = await kanikoRunArgs(plan, image, `bench-${tag}`, { dockerfile, bases: tarballs, cache, cacheLayers: true, network: 'private' }, [host]);
        if (runAs) await chownTree(dir, user.uid, user.gid);
        if (runAs) await chownTree(cache, user.uid, user.gid);
        await execa('podman', argv, opts);
        await rawPush(join(dir, 'kaniko-out', 'oci'), plan, opts);
        break;
      }
    }
    const ms = performance.now() - t0;
    return { ms, rssMiB: await stopSampling() };
  } finally {
    // also when the build failed: the sampler's timer would keep the bench running after its table
    await stopSampling();
    await containers.close();
    // Rootful buildah leaves its storage's overlay directory mounted (containers/storage mounts it
    // private for root): unmounted first, or removing the tree fails EBUSY.
    if (asRoot) await unmountUnder(state);
    await execa('buildah', ['unshare', 'rm', '-rf', state], { ...opts, reject: false });
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * The rootless/rootful aside's argv: both sides get `--ulimit` nofile and nproc at this process's
 * hard limits. For root, buildah asks runc for 1048576 of each, which root in a container without
 * CAP_SYS_RESOURCE cannot raise to (`error setting rlimit type 7`, then `type 6`).
 */
async function asideBudArgs(args: string[], mode: 'worker' | 'rootless' | 'rootful'): Promise<string[]> {
  if (mode === 'worker') return args;
  const hard = async (flag: string): Promise<string> => (await execa('bash', ['-c', `ulimit -H${flag}`])).stdout.trim();
  const [nofile, nproc] = await Promise.all([hard('n'), hard('u')]);
  const at = args.indexOf('bud') + 1;
  return [...args.slice(0, at), '--ulimit', `nofile=${nofile}:${nofile}`, '--ulimit', `nproc=${nproc}:${nproc}`, ...args.slice(at)];
}

/** Lazily unmounts every mount at or under `dir`, deepest first. */
async function unmountUnder(dir: string): Promise<void> {
  const mounts = (await readFile('/proc/self/mounts', 'utf8'))
    .split('\n')
    .map((line) => line.split(' ')[1] ?? '')
    .filter((point) => point === dir || point.startsWith(`${dir}/`))
    .sort((a, b) => b.length - a.length);
  for (const point of mounts) await execa('umount', ['-l', point], { reject: false });
}

/**
 * One build through the fleet on a fresh worker of the builder's pool (booted and idle before the
 * clock starts); returns submit → promoted, the worker's part (started → verifying) and the
 * coordinator's after it (gates and promotion).
 */
async function viaFleet(builder: BuilderName, app: string, tag: string, round: string, nodeStore = false): Promise<{ ms: number; workerMs: number; gatesMs: number }> {
  const pool = builder === 'buildah' ? 'default' : builder;
  // Before the worker starts, not under it: what it does as it boots (a BuildKit worker copies the
  // node's seed) is part of the fresh worker, and must not read a cache dropped under its feet.
  await settleMachine();
  const worker = await fleet.addWorker({ pool, builder, ...(nodeStore ? {} : { sharedImageStore: undefined }) });
  try {
    await waitFor('worker idle', async () => ((await fleet.client.workers()).some((w) => w.workerId === worker.workerId && w.state === 'idle') ? true : null), 30_000);
    const { digest } = await fleet.client.uploadContext(app);
    const id = `bench-${builder}-${round}-${tag}`;
    const t0 = performance.now();
    await fleet.client.submit({ id, context: { digest }, pool, target: 'runtime', image: { repository: `bench/fleet-${builder}-${round}`, tags: [tag] } });
    const done = await fleet.client.follow(id, {});
    const ms = performance.now() - t0;
    if (done.state.phase !== 'pushed') throw new Error(`${id} ended ${JSON.stringify(done.state)}`);
    const events = await storedEvents(fleet.client.nc, id);
    const at = (type: string): number => Date.parse(events.find((e) => e.type === type)?.at ?? '');
    return { ms, workerMs: at('verifying') - at('started'), gatesMs: at('pushed') - at('verifying') };
  } finally {
    await worker.stop();
  }
}

/** Medians of one builder's rounds, in ms (RSS in MiB). */
export interface BuilderFigures {
  builder: BuilderName;
  rawCold: number;
  fleetCold: number;
  workerCold: number;
  rawWarm: number;
  fleetWarm: number;
  workerWarm: number;
  /** warm (another source change) on a fresh worker that has the node's shared store */
  stored: number;
  gates: number;
  peakRssMiB: number;
  /** the tiny app (one RUN on the official base), submit → promoted: the first build of a fresh worker, then the median of its next ones */
  trivialFresh: number;
  trivialWarm: number;
}

export interface BuildersFigures {
  rounds: number;
  builders: BuilderFigures[];
  /** raw buildah cold, rootless and rootful (empty when not root), per round */
  rootless: number[];
  rootful: number[];
  /** why the rootless/rootful comparison stopped, if it did */
  rootError?: string;
  /** why the page cache was not dropped before each timed build (settleMachine), if it was not */
  cacheNotDropped?: string;
}

const median = (xs: number[]): number => quantile(xs, 0.5);

/** The tiny app `n` times on one fresh worker of the builder's pool: submit → promoted each. */
async function trivial(builder: BuilderName, n: number): Promise<number[]> {
  const pool = builder === 'buildah' ? 'default' : builder;
  const worker = await fleet.addWorker({ pool, builder, sharedImageStore: undefined });
  try {
    await waitFor('worker idle', async () => ((await fleet.client.workers()).some((w) => w.workerId === worker.workerId && w.state === 'idle') ? true : null), 30_000);
    const { digest } = await fleet.client.uploadContext(TINY);
    const times: number[] = [];
    for (let i = 0; i < n; i++) {
      const id = `bench-tiny-${builder}-${Date.now().toString(36)}-${i}`;
      const t0 = performance.now();
      await fleet.client.submit({ id, context: { digest }, pool, buildArgs: { N: String(i) }, image: { repository: `bench/tiny-${builder}`, tags: [String(i)] } });
      const done = await fleet.client.follow(id, {});
      if (done.state.phase !== 'pushed') throw new Error(`${id} ended ${JSON.stringify(done.state)}`);
      times.push(performance.now() - t0);
    }
    return times;
  } finally {
    await worker.stop();
  }
}

/** Every builder's rounds in one fleet; see the file's comment. */
export async function measureBuilders(builders: readonly BuilderName[] = BUILDERS, rounds: number = N, rootComparison = true): Promise<BuildersFigures> {
  fleet = await startLocalFleet({ workers: 0, sharedImageStore: true, buildkitSeed: true, coordinator: { pools: ['buildkit', 'kaniko'] } }, createLogger('bench', { level: 'warn', pretty: false }));
  user = await buildUser();
  scratch = await mkdtemp(join(tmpdir(), 'fleet-bench-builders-'));
  await chmod(scratch, 0o755); // the build user reaches its raw build dirs through it
  host = fleet.registry.host;
  try {
    const cold = await appVersion('cold');
    const warm = await appVersion('warm');
    const again = await appVersion('again');
    const figures: BuilderFigures[] = [];
    for (const builder of builders) {
      const runs = { rawCold: [] as number[], rawWarm: [] as number[], fleetCold: [] as number[], fleetWarm: [] as number[], workerCold: [] as number[], workerWarm: [] as number[], stored: [] as number[], gates: [] as number[], rss: [] as number[] };
      for (let i = 0; i < rounds; i++) {
        // Each round starts cold: new repositories, so nothing is in their registry caches.
        const rc = await raw(builder, cold, 'cold', `r${i}`);
        const rw = await raw(builder, warm, 'warm', `r${i}`);
        const fc = await viaFleet(builder, cold, 'cold', `r${i}`);
        const fw = await viaFleet(builder, warm, 'warm', `r${i}`);
        const fs = await viaFleet(builder, again, 'stored', `r${i}`, true);
        runs.rawCold.push(rc.ms);
        runs.rawWarm.push(rw.ms);
        runs.fleetCold.push(fc.ms);
        runs.fleetWarm.push(fw.ms);
        runs.workerCold.push(fc.workerMs);
        runs.workerWarm.push(fw.workerMs);
        runs.stored.push(fs.ms);
        runs.gates.push(fc.gatesMs, fw.gatesMs);
        runs.rss.push(rc.rssMiB, rw.rssMiB);
      }
      const [fresh = NaN, ...next] = await trivial(builder, Math.max(2, rounds + 1));
      figures.push({
        builder,
        rawCold: median(runs.rawCold),
        fleetCold: median(runs.fleetCold),
        workerCold: median(runs.workerCold),
        rawWarm: median(runs.rawWarm),
        fleetWarm: median(runs.fleetWarm),
        workerWarm: median(runs.workerWarm),
        stored: median(runs.stored),
        gates: median(runs.gates),
        peakRssMiB: Math.max(...runs.rss),
        trivialFresh: fresh,
        trivialWarm: median(next),
      });
    }
    const rootless: number[] = [];
    const rootful: number[] = [];
    let rootError: string | undefined;
    if (rootComparison && builders.includes('buildah')) {
      // an aside: its failure leaves the builders' figures standing
      try {
        for (let i = 0; i < rounds; i++) {
          rootless.push((await raw('buildah', cold, 'cold', `rl${i}`, 'rootless')).ms);
          if (user.switchUser) rootful.push((await raw('buildah', cold, 'cold', `rf${i}`, 'rootful')).ms);
        }
      } catch (e) {
        rootError = e instanceof Error ? e.message : String(e);
      }
    }
    const cacheNotDropped = pageCacheNotDropped();
    return { rounds, builders: figures, rootless, rootful, ...(rootError === undefined ? {} : { rootError }), ...(cacheNotDropped === undefined ? {} : { cacheNotDropped }) };
  } finally {
    // the fleet first: a scratch tree that cannot be removed must not leave its servers running
    await fleet.stop();
    await unmountUnder(scratch);
    await rm(scratch, { recursive: true, force: true });
  }
}

const s = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;

export async function main(): Promise<void> {
  const f = await measureBuilders();
  console.log(`\nmedians of ${f.rounds} rounds`);
  if (f.cacheNotDropped !== undefined) console.log(`the page cache was not dropped before each timed build (${f.cacheNotDropped}): cold figures carry the noise settleMachine describes`);
  console.log('\n| builder | raw cold | fleet cold (worker part) | overhead cold | raw warm | fleet warm (worker part) | overhead warm | warm/cold, fresh worker (raw / fleet) | warm, fresh worker + node store (/cold) | gates + promotion | peak RSS (raw) | tiny app, fresh worker / warm worker |');
  console.log('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |');
  for (const b of f.builders) {
    console.log(
      `| ${b.builder} | ${s(b.rawCold)} | ${s(b.fleetCold)} (${s(b.workerCold)}) | ${(b.fleetCold / b.rawCold).toFixed(2)}x | ${s(b.rawWarm)} | ${s(b.fleetWarm)} (${s(b.workerWarm)}) | ${(b.fleetWarm / b.rawWarm).toFixed(2)}x | ${(b.rawWarm / b.rawCold).toFixed(2)}x / ${(b.fleetWarm / b.fleetCold).toFixed(2)}x | ${s(b.stored)} (${(b.stored / b.fleetCold).toFixed(2)}x) | ${b.gates.toFixed(0)} ms | ${b.peakRssMiB.toFixed(0)} MiB | ${s(b.trivialFresh)} / ${s(b.trivialWarm)} |`,
    );
  }
  if (f.rootError !== undefined) console.log(`\nrootless/rootful comparison stopped: ${f.rootError}`);
  if (f.rootless.length > 0) {
    printTable([
      [`raw buildah, rootless (build user), cold, median of ${f.rounds}`, s(median(f.rootless))],
      [`raw buildah, rootful (root), cold, median of ${f.rounds}`, f.rootful.length > 0 ? s(median(f.rootful)) : f.rootError !== undefined ? 'failed (above)' : 'not run (needs root)'],
      ['rootless / rootful', f.rootful.length === 0 ? '-' : `${(median(f.rootless) / median(f.rootful)).toFixed(2)}x  (target <= 1.1x)`],
    ]);
  }
}
