import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { access, copyFile, link, mkdir, readFile, rename, rm, symlink, utimes, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { Logger } from '../../adapters/logger.ts';
import { ErrorCode, FleetError } from '../../protocol/index.ts';
import { BackgroundSyncs } from './background-syncs.ts';
import { kanikoCopyFromStages, pinFromLines, type BaseStore } from './base-import.ts';
import { kanikoFinalStageBase, kanikoFirstStageBase } from './kaniko-first-stage.ts';
import { pullKanikoCache, pushKanikoCache } from './layer-cache.ts';
import { pushLayout } from './oci-push.ts';
import { linkBlobs } from './oci-layout.ts';
import { throwClassified } from './failure-taxonomy.ts';
import { OutputTap, quietOutput } from './output-tap.ts';
import { runTool, type ToolRun } from './run-tool.ts';
import { ulimitArgs, type BuildLimits } from './sandbox.ts';
import { runMounts } from '../run-flags.ts';
import type { BuildOutput, BuildPlan, BuildResult, Builder } from './types.ts';

/** logrus text lines: `time="…" level=info msg="RUN make"` */
const LOGRUS = /^time="[^"]*" level=(\w+) msg="((?:[^"\\]|\\.)*)"(.*)$/;
/** the instruction kaniko announces before it runs it */
const INSTRUCTION = /^(RUN|COPY|ADD) /;
const EXIT_STATUS = /failed to execute command: waiting for process to exit: exit status (\d+)/;
/** a registry that could not be reached or failed (worth another attempt); refusals are not */
const REGISTRY_ERROR = /connection refused|no such host|i\/o timeout|unexpected status code 5\d\d|GET https?:\/\/.*: 5\d\d/i;
/**
 * kaniko's announcement of a stage on an image: `Building stage 'IMAGE' [idx: '0', base-idx: '-1']`.
 * The first one names the stage it builds first: index 0, or the final stage's in a
 * `--final-stage-only` run.
 */
const FIRST_STAGE = /^Building stage '([^']*)' \[idx: '\d+', base-idx: '-1'\]$/;

/** Where the worker's files appear inside the kaniko container. */
const IN = { context: '/workspace', dockerfile: '/fleet/dockerfile', out: '/fleet/out', bases: '/fleet/bases', cache: '/fleet/cache' } as const;
/** Where the kaniko image's `/kaniko` is mounted when the container's root is the first stage's base (KanikoRootfs). */
const EXECUTOR_MOUNT = '/kaniko-image/kaniko';
/** The labels the fleet's kaniko image carries for what its executor's patches add (scripts/patches/kaniko-*.patch). */
const EXECUTOR_LABELS = {
  /** `--initial-fs-unpacked` (KanikoRootfs) */
  initialFsUnpacked: 'io.fleet.kaniko.initial-fs-unpacked',
  /** `--snapshot-mode ctime` (KanikoSandbox.ctimeSnapshots) */
  ctimeSnapshots: 'io.fleet.kaniko.snapshot-mode-ctime',
  /** `--skip-final-stage` and `--final-stage-only` (KanikoSandbox.finalRootfs) */
  finalStageSplit: 'io.fleet.kaniko.final-stage-split',
  /** `RUN --mount=type=bind` from the build context, copied in for the step (kaniko-run-mount-bind.patch) */
  runMountBind: 'io.fleet.kaniko.run-mount-bind',
} as const;
/** What a kaniko image's executor takes beyond upstream's flags, by its labels; all false for any other image. */
type KanikoExecutorFeatures = Record<keyof typeof EXECUTOR_LABELS, boolean>;
/** under the plan's workDir: where kaniko writes the digest and the image (an OCI layout, `oci/`) */
const KANIKO_OUT = 'kaniko-out';
/** under the plan's workDir: kaniko's `/kaniko` when its container's root is a base (KanikoRootfs) */
const KANIKO_DIR = 'kaniko-dir';
/**
 * The registry credentials of a kaniko pool. kaniko runs the Dockerfile's RUN steps in its own
 * container, so whatever it can read, a RUN step can read: it gets none. The worker pulls the
 * bases (with the pull-only config when the pool has one) and pushes the result.
 */
export interface KanikoCredentials {
  /** the pool's push credentials (docker config.json); used by the worker's own push, outside kaniko */
  pushAuthFile?: string;
  /** a pull-only docker config for the worker's base pulls */
  pullAuthFile?: string;
}

/** What a kaniko run reads and writes instead of the registry. */
export interface KanikoSandbox {
  /** the Dockerfile with every FROM pinned to a base in `bases` (outside the context) */
  dockerfile: string;
  /** kaniko's `--cache-dir`: this build's bases as tarballs named by digest (links to the worker's), read-only */
  bases: string;
  /** the app's layer cache (an `oci:` cache repository), or a throwaway directory */
  cache: string;
  /** whether layers are cached (the plan has a cache repository) */
  cacheLayers: boolean;
  /** the cache keys the registry held before the build (pushed back: only the new ones) */
  knownKeys?: ReadonlySet<string>;
  network: KanikoNetwork;
  /** `RUN --mount=type=cache` directories (kanikoCacheMounts), mounted at their targets */
  runCaches?: readonly KanikoRunCache[];
  /** `RUN --mount=type=tmpfs` targets (kanikoTmpfsTargets) */
  tmpfs?: readonly string[];
  /** the bases' layer blobs in the worker's base store, hard-linked into kaniko's output layout before the run */
  baseLayers?: readonly string[];
  /** the first stage's base as the container's root filesystem: kaniko does not unpack it */
  rootfs?: KanikoRootfs;
  /**
   * The final stage's base, when kaniko builds other stages first: kaniko deletes a stage's files
   * and unpacks the next base over the same root (8 s of a Java build's 11 s for a final stage that
   * only copies a jar in). With both bases unpacked ahead, the stages before the final one are
   * built in the first stage's container (`--skip-final-stage`), the final one alone in a second
   * container on its own base (`--final-stage-only`); what it copies from earlier stages passes
   * through the build's kaniko dir, mounted in both.
   */
  finalRootfs?: KanikoRootfs;
  /**
   * `--snapshot-mode ctime`: kaniko's default snapshot mode (`full`) reads every file of the
   * stage's root filesystem at each snapshot to hash it, the whole base included (0.7 s for the
   * official base, seconds for a JDK). The fleet's patch adds a mode that decides by metadata with
   * the ctime, which no system call can set, so it sees every change `full` sees (a rewrite that
   * keeps size and mtime too, which kaniko's own `time` and `redo` miss), and reads only files
   * changed within a second of the snapshot.
   */
  ctimeSnapshots?: boolean;
}

/**
 * kaniko builds in its container's `/` and starts by unpacking the first stage's base there with
 * its own per-file extraction (3–6 s for the 60 MB official base on this machine, on every build
 * with a RUN step, whatever is cached). Run instead with that base as the container's image, its
 * files already unpacked by podman's storage once per worker (or by the node's shared store), and
 * kaniko's executor copied out of its own image, `--initial-fs-unpacked` skips the unpack: the
 * option kaniko has for this as a library, made a flag by the fleet's patch. Only for the stage
 * kaniko builds first; it is confirmed from kaniko's output before the image is used.
 */
export interface KanikoRootfs {
  /** the base's podman image id (its config digest, hex) */
  image: string;
  /** the pinned reference the Dockerfile's first-built stage names */
  base: string;
  /** a directory holding the kaniko image's `/kaniko` (the executor, CA certificates), mounted read-only */
  executor: string;
}

/**
 * The network namespace the executor and its RUN steps get: `private` (slirp4netns, outbound only,
 * the host's loopback out of reach; needs /dev/net/tun), `none` (loopback only) or `pod` (podman
 * `--network host`: the namespace the worker itself runs in, acceptable only where that is a
 * Kubernetes pod's own namespace bounded by the pool's NetworkPolicy; a pod has no /dev/net/tun).
 * `pod` is only ever chosen by the pool's configuration (`kanikoNetwork`), never as a fallback.
 */
export type KanikoNetwork = 'private' | 'none' | 'pod';

/** The device slirp4netns needs; a Kubernetes pod does not get it. */
const TUN_DEVICE = '/dev/net/tun';

/**
 * Refuses a sandbox network the node cannot give: without a tun device slirp4netns cannot start
 * (every build would fail at `podman run`), and running RUN steps in the worker's own network
 * instead would silently weaken their isolation, so the pool has to say `pod` itself.
 */
export function checkKanikoNetwork(network: KanikoNetwork, tunPresent: boolean): void {
  if (network === 'private' && !tunPresent) {
    throw new FleetError(
      ErrorCode.E_INTERNAL,
      `kaniko's sandbox network slirp4netns needs ${TUN_DEVICE}, which this node does not have; in a Kubernetes pod set "kanikoNetwork": "pod" (RUN steps then share the pod's network namespace, bounded by its NetworkPolicy)`,
    );
  }
}

/**
 * kaniko (chainguard-dev fork) in its own FROM-scratch image, run by rootless podman: the executor
 * unpacks every base over the container's root filesystem, so it must own that container, never
 * the worker's. Context and Dockerfile are mounted read-only, build secrets as single read-only
 * files (mounts are left out of kaniko's snapshots, so they never reach a layer), and the digest
 * comes back through `--digest-file`. The image is the platform's, verified before it runs.
 */
export class KanikoBuilder implements Builder {
  readonly name = 'kaniko';
  private readonly pulled = new Set<string>();
  /** kaniko image → what its executor takes beyond upstream's flags (its labels say) */
  private readonly features = new Map<string, KanikoExecutorFeatures>();
  /** bases (podman image ids) in this worker's podman storage, to run kaniko in */
  private readonly loaded = new Set<string>();

  constructor(
    private readonly env: Record<string, string>,
    private readonly insecureRegistries: readonly string[],
    /** `host/platform/kaniko@sha256:…` once its platform signature checks out in that registry */
    private readonly resolveImage: (registryHost: string, signal: AbortSignal) => Promise<string>,
    private readonly credentials: KanikoCredentials,
    private readonly bases: BaseStore,
    /** under the worker's state dir: base tarballs (`bases/`) and layer caches per cache repository (`cache/`) */
    private readonly dir: string,
    private readonly network: KanikoNetwork,
    private readonly limits: BuildLimits = {},
    /** where a layer-cache push that runs after the build is reported says it failed; absent: pushed before the build is reported */
    log?: Logger,
  ) {
    // at construction, so a worker configured for a network its node lacks fails to start instead of failing every build
    checkKanikoNetwork(network, existsSync(TUN_DEVICE));
    this.syncs = log === undefined ? null : new BackgroundSyncs(log);
    this.log = log ?? null;
  }

  /** layer-cache pushes still running after their build was reported, per cache directory */
  private readonly syncs: BackgroundSyncs | null;
  private readonly log: Logger | null;

  /** Waits (bounded) for the layer-cache pushes still running. */
  async drain(): Promise<void> {
    await this.syncs?.drain();
  }

  async build(plan: BuildPlan, output: BuildOutput, signal: AbortSignal): Promise<BuildResult> {
    try {
      return await this.buildIn(plan, output, signal);
    } finally {
      await this.removeKanikoDir(plan.workDir, output);
    }
  }

  /**
   * What kaniko kept in its directory for later stages has the owners and modes it had in the
   * build (a 0750 directory of uid 1000 is one of the build user's subordinate ids on the host,
   * which the worker cannot list): removed from inside the build user's namespace when a plain
   * removal is refused, or the worker's scratch dir would stay behind after every such build.
   */
  private async removeKanikoDir(workDir: string, output: BuildOutput): Promise<void> {
    const dir = join(workDir, KANIKO_DIR);
    if (await rm(dir, { recursive: true, force: true }).then(() => true, () => false)) return;
    await runTool('podman', ['unshare', 'rm', '-rf', dir], { env: this.env, cwd: workDir, output: quietOutput(output), signal: AbortSignal.timeout(60_000) });
  }

  private async buildIn(plan: BuildPlan, output: BuildOutput, signal: AbortSignal): Promise<BuildResult> {
    const first = plan.destinations[0];
    if (first === undefined) throw new FleetError(ErrorCode.E_PUSH_FAILED, 'no destination to push to');
    const started = performance.now();
    // Beside the bases, not before them: a fresh worker pulls the kaniko image (about a second)
    // while the bases come in and the first one loads into podman's storage.
    const kaniko = this.image(first.slice(0, first.indexOf('/')), plan.workDir, output, signal);
    // A kaniko image that fails (not there, not signed) stops what runs beside it, and its error,
    // not that stop, is the build's.
    const kanikoFailed = new AbortController();
    kaniko.catch(() => kanikoFailed.abort());
    const name = `fleet-kaniko-${plan.buildId.toLowerCase().replace(/[^a-z0-9_.-]/g, '-').slice(0, 40)}-${randomBytes(3).toString('hex')}`;
    const sandbox = await this.prepare(plan, kaniko, output, AbortSignal.any([signal, kanikoFailed.signal])).catch(async (e: unknown) => {
      await kaniko;
      throw e;
    });
    const image = await kaniko;
    const prepared = performance.now();
    let unpackedAhead = sandbox.rootfs === undefined ? '' : sandbox.finalRootfs === undefined ? ' (first base unpacked ahead)' : ' (first and final bases unpacked ahead)';
    const unconfirmed = await this.runStages(plan, image, name, sandbox, output, signal);
    if (unconfirmed !== undefined) {
      await output.line('system', `kaniko: building again, unpacking every base itself: the run on ${unconfirmed.base}'s files did not confirm that stage was built first`);
      await this.run(plan, image, name, withoutRootfs(sandbox), 'all', output, signal);
      unpackedAhead = '';
      // checked again next time: the image may be what failed (removed from podman's storage meanwhile)
      this.loaded.delete(unconfirmed.image);
    }
    const built = performance.now();
    const layout = join(plan.workDir, KANIKO_OUT, 'oci');
    // What the sandbox's own steps cost, beside the build (like BuildKit's line; the bench reads it).
    const timing = async (digest: string): Promise<string> => {
      const ms = (a: number, b: number): string => `${Math.round(b - a)} ms`;
      await output.line('system', `kaniko: image and bases and cache in ${ms(started, prepared)}, kaniko ${ms(prepared, built)}${unpackedAhead}, push ${ms(built, performance.now())}`);
      return digest;
    };
    try {
      const written = (await readFile(join(plan.workDir, KANIKO_OUT, 'digest'), 'utf8')).trim();
      const copy = { env: this.env, workDir: plan.workDir, insecureRegistries: this.insecureRegistries, authFile: this.credentials.pushAuthFile, output, signal };
      const repository = plan.cacheRepository;
      const known = sandbox.knownKeys;
      if (repository === undefined || known === undefined) return { digest: await timing(await pushLayout(layout, plan.destinations, written, { ...copy, builder: 'kaniko' })), references: [...plan.destinations] };
      if (this.syncs === null || this.log === null) {
        const [digest] = await Promise.all([pushLayout(layout, plan.destinations, written, { ...copy, builder: 'kaniko' }), pushKanikoCache(sandbox.cache, repository, known, copy)]);
        return { digest: await timing(digest), references: [...plan.destinations] };
      }
      const digest = await timing(await pushLayout(layout, plan.destinations, written, { ...copy, builder: 'kaniko' }));
      // The new cache keys go to the registry after the build is reported (a skopeo run each, they
      // were on the critical path); this worker's next build of the app waits for them.
      const log = this.log.child({ cache: repository });
      const sink: BuildOutput = { masker: output.masker, maxLine: output.maxLine, line: (_stream, text) => Promise.resolve(log.warn(text)) };
      this.syncs.run(sandbox.cache, `layer-cache push to ${repository}`, (bg) => pushKanikoCache(sandbox.cache, repository, known, { ...copy, workDir: this.dir, output: sink, signal: bg }));
      return { digest, references: [...plan.destinations] };
    } finally {
      await rm(layout, { recursive: true, force: true });
    }
  }

  /**
   * Brings the bases in for a run that cannot reach the registry: each FROM (and COPY --from) image copied by the
   * worker, written as a tarball into kaniko's base cache (once per digest; touched so kaniko's
   * cache TTL never expires a base in use), and the Dockerfile's FROMs pinned to those digests
   * (kaniko resolves a tag through the registry even when its cache holds the image); a COPY
   * --from image becomes a pinned stage of its own (kaniko pulls those from the registry).
   */
  private async prepare(plan: BuildPlan, kaniko: Promise<string>, output: BuildOutput, signal: AbortSignal): Promise<KanikoSandbox> {
    const cache = plan.cacheRepository === undefined ? join(plan.workDir, KANIKO_OUT, 'cache') : join(this.dir, 'cache', plan.cacheRepository.replace(/[^A-Za-z0-9._-]/g, '_'));
    await mkdir(cache, { recursive: true, mode: 0o700 });
    // Beside the bases (once per worker: 0.6 s of a fresh worker's first build when it waited for them).
    const executor = kaniko.then((image) => this.executorOf(image, plan.workDir, output, signal));
    executor.catch(() => undefined); // awaited below; a failure before that must not go unhandled
    // This worker's own push of the directory, if one still runs, finishes first.
    await this.syncs?.settled(cache);
    // The app's layer cache lives in the registry (a fresh worker builds warm): the worker copies
    // it in (beside the bases: both wait on the registry), kaniko reads and writes the local `oci:`
    // copy, the worker pushes the new keys back.
    const [imported, knownKeys] = await Promise.all([
      this.bases.importBases(plan, output, signal),
      plan.cacheRepository === undefined ? undefined : pullKanikoCache(plan.cacheRepository, cache, { env: this.env, workDir: plan.workDir, insecureRegistries: this.insecureRegistries, output, signal }),
    ]);
    // The worker keeps every base's tarball (any tenant's); kaniko's RUN steps run in its own
    // container, where its cache dir is readable: it gets a directory of this build's bases only.
    const kept = join(this.dir, 'bases');
    const bases = join(plan.workDir, 'kaniko-bases');
    await Promise.all([mkdir(kept, { recursive: true, mode: 0o700 }), mkdir(bases, { recursive: true, mode: 0o700 })]);
    await Promise.all([...new Set(imported.map((b) => b.digest))].map(async (digest) => {
      const tarball = join(kept, digest);
      if (await access(tarball).then(() => true, () => false)) await utimes(tarball, new Date(), new Date());
      else await this.bases.writeTarball(digest, tarball, signal);
      await link(tarball, join(bases, digest)).catch(async (e: unknown) => {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') await copyFile(tarball, join(bases, digest));
      });
    }));
    const dockerfileDir = join(plan.workDir, 'kaniko-dockerfile');
    await mkdir(dockerfileDir, { recursive: true });
    const dockerfile = join(dockerfileDir, basename(plan.dockerfile));
    const original = await readFile(plan.dockerfile, 'utf8');
    const pinned = kanikoCopyFromStages(pinFromLines(original, plan.buildArgs, imported), imported);
    await writeFile(dockerfile, pinned);
    const manifests = await Promise.all(imported.map((b) => this.bases.manifest(b.digest).catch(() => null)));
    const baseLayers = manifests.flatMap((m) => m?.layers.map((l) => l.digest) ?? []);
    const load = (pinnedBase: string | null): Promise<string | undefined> => {
      const at = imported.findIndex((b) => b.pinned === pinnedBase);
      const base = imported[at];
      const config = manifests[at]?.config.digest;
      return base === undefined || config === undefined ? Promise.resolve(undefined) : this.loadBase(base.digest, config, base.pinned, plan.workDir, output, signal);
    };
    // The first stage's base loads while the executor is still on its way: the fleet's kaniko
    // image runs on it (its labels say so once it is in); another image's build leaves the base
    // loaded for nothing, once per worker. Both settle before either's failure is thrown: no
    // podman load outlives its build.
    const firstBase = kanikoFirstStageBase(pinned, plan.target);
    const [executed, firstLoaded] = await Promise.allSettled([executor, load(firstBase)]);
    if (executed.status === 'rejected') throw executed.reason;
    if (firstLoaded.status === 'rejected') throw firstLoaded.reason;
    const { features, dir: executorDir } = executed.value;
    // upstream's executor ignores the mount: the step would run without the files
    const bind = features.runMountBind ? undefined : runMounts(original).find((m) => m.type === 'bind');
    if (bind !== undefined) {
      throw new FleetError(ErrorCode.E_DOCKERFILE_INVALID, `RUN --mount=type=bind at Dockerfile line ${bind.instruction.line} (${bind.instruction.text}): this kaniko image has no bind mounts; build on the buildah or BuildKit pool, or COPY the files in`, { step: bind.instruction.text });
    }
    const rootfsOf = (pinnedBase: string | null, image: string | undefined): KanikoRootfs | undefined =>
      image === undefined || executorDir === undefined || pinnedBase === null ? undefined : { image, base: pinnedBase, executor: executorDir };
    const rootfs = features.initialFsUnpacked ? rootfsOf(firstBase, firstLoaded.value) : undefined;
    const finalBase = kanikoFinalStageBase(pinned, plan.target);
    const finalRootfs = rootfs !== undefined && features.finalStageSplit ? rootfsOf(finalBase, await load(finalBase)) : undefined;
    const runCaches = await this.runCaches(original, plan.cacheScope, plan.workDir, output, signal);
    const sandbox = { dockerfile, bases, cache, network: this.network, baseLayers, runCaches, tmpfs: kanikoTmpfsTargets(original), ctimeSnapshots: features.ctimeSnapshots, ...(rootfs === undefined ? {} : { rootfs }), ...(finalRootfs === undefined ? {} : { finalRootfs }) };
    return knownKeys === undefined ? { ...sandbox, cacheLayers: false } : { ...sandbox, cacheLayers: true, knownKeys };
  }

  /**
   * kaniko on the sandbox: two runs when the final stage's base is unpacked ahead too
   * (KanikoSandbox.finalRootfs), else one. The pre-unpacked base a run did not confirm, if any.
   */
  private async runStages(plan: BuildPlan, image: string, name: string, sandbox: KanikoSandbox, output: BuildOutput, signal: AbortSignal): Promise<KanikoRootfs | undefined> {
    if (sandbox.finalRootfs === undefined) return (await this.run(plan, image, name, sandbox, 'all', output, signal)) ? undefined : sandbox.rootfs;
    if (!(await this.run(plan, image, name, sandbox, 'before-final', output, signal))) return sandbox.rootfs;
    return (await this.run(plan, image, `${name}-final`, sandbox, 'final', output, signal)) ? undefined : sandbox.finalRootfs;
  }

  /**
   * One kaniko run; false when it ran on a pre-unpacked base that kaniko did not confirm as the
   * first stage it built (killed as soon as it names another), or that failed before naming one:
   * its output is not used, the caller runs kaniko again unpacking every base.
   */
  private async run(plan: BuildPlan, image: string, name: string, sandbox: KanikoSandbox, phase: KanikoPhase, output: BuildOutput, signal: AbortSignal): Promise<boolean> {
    const argv = await kanikoRunArgs(plan, image, name, sandbox, this.insecureRegistries, this.limits, phase);
    // kaniko's layout writer skips a blob the layout holds already: the bases' layers, linked from
    // the base store into the fresh output layout, are not written again (BuildKit's cut, 8595314).
    await linkBlobs(this.bases.layout, sandbox.baseLayers ?? [], join(plan.workDir, KANIKO_OUT, 'oci'));
    const expected = (phase === 'final' ? sandbox.finalRootfs : sandbox.rootfs)?.base;
    const wrongBase = new AbortController();
    const tracker = new KanikoOutput(output, (base) => {
      if (expected !== undefined && base !== expected) wrongBase.abort();
    });
    let exited = false;
    try {
      const run = await runTool('podman', argv, { env: this.env, cwd: plan.workDir, output: tracker, signal: AbortSignal.any([signal, wrongBase.signal]) });
      exited = !run.cancelled && run.exitCode !== undefined;
      if (expected !== undefined && !signal.aborted && tracker.firstStage !== expected) return false;
      await throwClassified('kaniko', run, tracker.recent, plan);
      this.throwIfFailed(run, tracker);
      return true;
    } finally {
      // A cancelled or killed `podman run` can leave its container behind (conmon holds it); one
      // that exited was removed by its own --rm (another podman run here cost ~0.1 s a build).
      if (!exited) await runTool('podman', ['rm', '--force', '--time', '0', '--ignore', name], { env: this.env, cwd: plan.workDir, output: quietOutput(output), signal: AbortSignal.timeout(30_000) });
    }
  }

  /**
   * The base as a podman image this worker can run kaniko in (KanikoRootfs.image): in its storage or the
   * node's shared store already, or loaded from the tarball `prepare` wrote (once per worker and
   * base; podman addresses it by its config digest, so it is the verified base or nothing).
   * Undefined, and kaniko unpacks as before, when the load fails.
   */
  private async loadBase(digest: string, config: string, base: string, workDir: string, output: BuildOutput, signal: AbortSignal): Promise<string | undefined> {
    const quiet = { env: this.env, cwd: workDir, output: quietOutput(output), signal };
    const image = config.replace(/^sha256:/, '');
    if (!this.loaded.has(image) && (await runTool('podman', ['image', 'exists', image], quiet)).exitCode !== 0) {
      // podman load takes no path with a colon in it, which the tarball's name (its digest) has
      const link = join(workDir, `kaniko-rootfs-${image.slice(0, 12)}.tar`);
      await rm(link, { force: true });
      await symlink(join(this.dir, 'bases', digest), link);
      const load = await runTool('podman', ['load', '--quiet', '--input', link], quiet);
      await rm(link, { force: true });
      if (load.cancelled) throw new FleetError(ErrorCode.E_CANCELLED, 'build cancelled');
      if (load.exitCode !== 0 || (await runTool('podman', ['image', 'exists', image], quiet)).exitCode !== 0) {
        await output.line('system', `kaniko: could not load ${base} into podman's storage (podman load exited ${String(load.exitCode)}): kaniko unpacks it`);
        return undefined;
      }
    }
    this.loaded.add(image);
    return image;
  }

  /**
   * What the kaniko image's executor takes beyond upstream's flags and, when it can run on a base
   * unpacked ahead, its `/kaniko` copied out (KanikoRootfs.executor).
   */
  private async executorOf(kaniko: string, workDir: string, output: BuildOutput, signal: AbortSignal): Promise<{ features: KanikoExecutorFeatures; dir: string | undefined }> {
    const features = await this.executorFeatures(kaniko, workDir, output, signal);
    if (!features.initialFsUnpacked) return { features, dir: undefined };
    const dir = await this.executorDir(kaniko, { env: this.env, cwd: workDir, output: quietOutput(output), signal });
    if (dir === undefined && !signal.aborted) await output.line('system', `kaniko: could not copy the executor out of ${kaniko}: kaniko unpacks every base`);
    return { features, dir };
  }

  /** What the kaniko image's executor takes beyond upstream's flags: its labels, read once per image. */
  private async executorFeatures(kaniko: string, workDir: string, output: BuildOutput, signal: AbortSignal): Promise<KanikoExecutorFeatures> {
    const known = this.features.get(kaniko);
    if (known !== undefined) return known;
    const keys = Object.keys(EXECUTOR_LABELS) as (keyof typeof EXECUTOR_LABELS)[];
    let labels: string[] = [];
    const inspect = await runTool('podman', ['image', 'inspect', '--format', keys.map((k) => `{{index .Labels "${EXECUTOR_LABELS[k]}"}}`).join(','), kaniko], {
      env: this.env, cwd: workDir, signal,
      output: { ...quietOutput(output), line: (stream, text) => Promise.resolve(void (stream === 'stdout' && (labels = text.split(',')))) },
    });
    const features = Object.fromEntries(keys.map((k, i) => [k, inspect.exitCode === 0 && labels[i] === 'true'])) as KanikoExecutorFeatures;
    if (inspect.exitCode === 0) this.features.set(kaniko, features);
    return features;
  }

  /**
   * The kaniko image's `/kaniko`, copied out once per image into the worker's state dir. Not
   * `--mount type=image`: podman cannot mount an image that lives in the node's read-only shared
   * store ("layer not known"), where a kaniko image usually is.
   */
  private async executorDir(kaniko: string, quiet: { env: Record<string, string>; cwd: string; output: BuildOutput; signal: AbortSignal }): Promise<string | undefined> {
    const dir = join(this.dir, 'executor', kaniko.slice(kaniko.lastIndexOf(':') + 1));
    if (await access(join(dir, 'executor')).then(() => true, () => false)) return dir;
    await mkdir(dirname(dir), { recursive: true, mode: 0o700 });
    const name = `fleet-kaniko-executor-${randomBytes(4).toString('hex')}`;
    const staging = `${dir}.${name}`;
    try {
      if ((await runTool('podman', ['create', '--name', name, kaniko], quiet)).exitCode !== 0) return undefined;
      if ((await runTool('podman', ['cp', `${name}:/kaniko`, staging], quiet)).exitCode !== 0) return undefined;
      // a concurrent build may have put it there first: either copy is the same image's
      await rename(staging, dir).catch(() => undefined);
      return (await access(join(dir, 'executor')).then(() => true, () => false)) ? dir : undefined;
    } finally {
      await runTool('podman', ['rm', '--force', '--ignore', name], { ...quiet, signal: AbortSignal.timeout(30_000) });
      await rm(staging, { recursive: true, force: true });
    }
  }

  /**
   * The build's `RUN --mount=type=cache` directories: one per tenant (the build's cache scope) and
   * cache id (the target unless it names one), as BuildKit keys them, kept in the worker's state
   * dir between builds and mounted at the target for the whole kaniko run. kaniko leaves mount
   * points out of its snapshots, so what a step writes there stays out of the image.
   */
  private async runCaches(dockerfile: string, scope: string | undefined, workDir: string, output: BuildOutput, signal: AbortSignal): Promise<KanikoRunCache[]> {
    const caches: KanikoRunCache[] = [];
    for (const { target, id, owner, mode } of kanikoCacheMounts(dockerfile)) {
      if (caches.some((c) => c.target === target)) continue;
      const dir = join(this.dir, 'run-caches', hashed(scope ?? 'unscoped'), hashed(id));
      if (!(await access(dir).then(() => true, () => false))) {
        // A new cache directory gets the mount's uid, gid and mode, as BuildKit gives it (root,
        // 0755 by default), ids as the container sees them: set inside the build user's namespace.
        const staging = `${dir}.${randomBytes(4).toString('hex')}`;
        await mkdir(staging, { recursive: true, mode: 0o755 });
        const quiet = { env: this.env, cwd: workDir, output: quietOutput(output), signal };
        if (owner !== '0:0') await runTool('podman', ['unshare', 'chown', owner, staging], quiet);
        if (mode !== '0755') await runTool('podman', ['unshare', 'chmod', mode, staging], quiet);
        // another build of the tenant may have made it meanwhile: either is a new, empty cache
        await rename(staging, dir).catch(async () => runTool('podman', ['unshare', 'rm', '-rf', staging], quiet));
      }
      caches.push({ dir, target });
    }
    return caches;
  }

  /** Pulls the verified kaniko image into this worker's storage once per digest. */
  private async image(registryHost: string, workDir: string, output: BuildOutput, signal: AbortSignal): Promise<string> {
    const image = await this.resolveImage(registryHost, signal);
    // In this worker's storage already, or in the node's shared store: no pull.
    if (!this.pulled.has(image) && (await runTool('podman', ['image', 'exists', image], { env: this.env, cwd: workDir, output: quietOutput(output), signal })).exitCode === 0) this.pulled.add(image);
    if (!this.pulled.has(image)) {
      const pull = await runTool('podman', ['pull', '--quiet', image], { env: this.env, cwd: workDir, output: quietOutput(output), signal });
      if (pull.cancelled) throw new FleetError(ErrorCode.E_CANCELLED, 'build cancelled');
      if (pull.exitCode !== 0) throw new FleetError(ErrorCode.E_REGISTRY_UNAVAILABLE, `could not pull the kaniko image ${image}`);
      this.pulled.add(image);
    }
    await output.line('system', `kaniko image ${image}`);
    return image;
  }

  private throwIfFailed(run: ToolRun, tracker: KanikoOutput): void {
    if (run.cancelled) throw new FleetError(ErrorCode.E_CANCELLED, 'build cancelled');
    if (run.exitCode === 0) return;
    if (tracker.stepExit !== null && tracker.lastStep !== null) {
      const step = tracker.lastStep;
      throw new FleetError(ErrorCode.E_BUILD_STEP_FAILED, `step failed: ${step} (exit ${tracker.stepExit})`, { step, exitCode: tracker.stepExit });
    }
    if (tracker.registryError !== null) throw new FleetError(ErrorCode.E_REGISTRY_UNAVAILABLE, `registry: ${tracker.registryError}`);
    throw new FleetError(ErrorCode.E_BUILD_FAILED, `kaniko exited ${String(run.exitCode)}${tracker.lastError === null ? '' : `: ${tracker.lastError}`}`);
  }
}

/** Which of a build's stages one kaniko run builds (KanikoSandbox.finalRootfs). */
export type KanikoPhase = 'all' | 'before-final' | 'final';

/**
 * The whole `podman run` argv for a plan (exported so the bench can run the same command by hand);
 * creates the directory the digest file lands in.
 */
export async function kanikoRunArgs(plan: BuildPlan, image: string, name: string, sandbox: KanikoSandbox, insecureRegistries: readonly string[], limits: BuildLimits = {}, phase: KanikoPhase = 'all'): Promise<string[]> {
  const outDir = join(plan.workDir, KANIKO_OUT);
  await rm(join(outDir, 'oci'), { recursive: true, force: true });
  await rm(join(outDir, 'digest'), { force: true });
  await mkdir(outDir, { recursive: true });
  const rootfs = phase === 'final' ? sandbox.finalRootfs : sandbox.rootfs;
  if (phase !== 'all' && rootfs === undefined) throw new FleetError(ErrorCode.E_INTERNAL, `kaniko's ${phase} run needs that stage's base unpacked ahead`);
  // kaniko's working directory, where it keeps what later stages copy from earlier ones: the
  // final stage's run reads what the run before it left there.
  const kanikoDir = join(plan.workDir, KANIKO_DIR);
  if (phase !== 'final' && rootfs !== undefined) {
    await rm(kanikoDir, { recursive: true, force: true });
    await mkdir(kanikoDir);
  }
  const mounts = [
    `${plan.contextDir}:${IN.context}:ro`, `${outDir}:${IN.out}`, `${dirname(sandbox.dockerfile)}:${IN.dockerfile}:ro`,
    `${sandbox.bases}:${IN.bases}:ro`, `${sandbox.cache}:${IN.cache}`,
  ];
  for (const { dir, target } of sandbox.runCaches ?? []) mounts.push(`${dir}:${target}`);
  for (const { id, target } of secretMounts(await readFile(plan.dockerfile, 'utf8'))) {
    const file = plan.secrets[id];
    if (file !== undefined) mounts.push(`${file}:${target}:ro`);
  }
  const args = [
    'run', '--rm', '--name', name,
    // The executor and its RUN steps get a network namespace of their own: slirp4netns with the
    // host's loopback out of reach (stated, not left to podman's default), or none at all. kaniko
    // needs no registry: bases come from the cache dir, the worker pushes the result. `pod`: the
    // pod's own namespace (KanikoNetwork), whose loopback is the pod's, not the node's.
    '--network', sandbox.network === 'none' ? 'none' : sandbox.network === 'pod' ? 'host' : 'slirp4netns:allow_host_loopback=false',
    // In a pod, a UTS namespace of its own would make runc call sethostname, which the pod's
    // RuntimeDefault seccomp profile allows only with CAP_SYS_ADMIN (refused: "sethostname:
    // operation not permitted"); the executor keeps the pod's hostname, as it keeps its network.
    ...(sandbox.network === 'pod' ? ['--uts', 'host'] : []),
    '--pull', 'never', '--security-opt', 'no-new-privileges',
    // rlimits of the executor and, through it, every RUN step (set inside the container's namespaces)
    ...ulimitArgs(limits),
    ...mounts.flatMap((m) => ['--volume', m]),
    ...(sandbox.tmpfs ?? []).flatMap((t) => ['--tmpfs', t]),
    ...(rootfs === undefined ? [image] : rootfsArgs(rootfs, kanikoDir)),
    '--context', `dir://${IN.context}`,
    '--dockerfile', join(IN.dockerfile, basename(sandbox.dockerfile)),
    // kaniko only builds: the worker pushes the layout, so the container the RUN steps share needs
    // no credentials at all.
    '--no-push', '--oci-layout-path', join(IN.out, 'oci'), '--digest-file', join(IN.out, 'digest'),
    '--log-format', 'text', '--skip-unused-stages',
    // --cache=true is what makes kaniko read bases from --cache-dir; with --no-push it needs a
    // cache repository, here an OCI layout directory (`oci:`) that needs no registry either.
    '--cache=true', '--cache-dir', IN.bases, '--cache-repo', `oci:${join(IN.cache, 'layers')}`, '--skip-push-permission-check',
    ...(sandbox.cacheLayers ? ['--cache-copy-layers'] : ['--cache-run-layers=false']),
    ...plan.destinations.flatMap((d) => ['--destination', d]),
    ...insecureRegistries.flatMap((r) => ['--insecure-registry', r]),
  ];
  if (rootfs !== undefined) args.push('--initial-fs-unpacked');
  if (phase === 'before-final') args.push('--skip-final-stage');
  if (phase === 'final') args.push('--final-stage-only');
  if (sandbox.ctimeSnapshots === true) args.push('--snapshot-mode', 'ctime');
  if (plan.target !== undefined) args.push('--target', plan.target);
  for (const [k, v] of Object.entries({ ...platformArgs(), ...plan.buildArgs })) args.push('--build-arg', `${k}=${v}`);
  for (const [k, v] of Object.entries(plan.labels)) args.push('--label', `${k}=${v}`);
  return args;
}

function withoutRootfs(sandbox: KanikoSandbox): KanikoSandbox {
  const unpacking = { ...sandbox };
  delete unpacking.rootfs;
  delete unpacking.finalRootfs;
  return unpacking;
}

/**
 * `podman run` options and image for a container whose root is the first stage's base
 * (KanikoRootfs) and whose process is still kaniko's executor, as its own image would run it: the
 * base's user, entrypoint, working directory, volumes, health check and environment are not
 * applied (kaniko takes a stage's environment from the image config, never from its own), and
 * `/kaniko`, kaniko's working directory, is an empty directory of the build's, so the base's own
 * `/kaniko`, if it has one, is neither used nor written through.
 */
function rootfsArgs(rootfs: KanikoRootfs, kanikoDir: string): string[] {
  const bin = EXECUTOR_MOUNT;
  return [
    '--user', '0:0', '--workdir', IN.context, '--image-volume', 'ignore', '--no-healthcheck', '--unsetenv-all',
    '--env', 'HOME=/root', '--env', 'USER=root', '--env', `PATH=${bin}`, '--env', `SSL_CERT_DIR=${bin}/ssl/certs`,
    '--volume', `${rootfs.executor}:${bin}:ro`,
    '--volume', `${kanikoDir}:/kaniko`,
    '--entrypoint', `${bin}/executor`,
    rootfs.image,
  ];
}

/** A `RUN --mount=type=cache` directory of the worker's, and where the kaniko container sees it. */
export interface KanikoRunCache {
  dir: string;
  target: string;
}

/**
 * The Dockerfile's `RUN --mount=type=cache` mounts with an absolute target (a relative one is
 * resolved against the stage's WORKDIR, which only kaniko knows: such a mount is left to kaniko,
 * which ignores it). A variable in the target cannot be resolved here either.
 */
export function kanikoCacheMounts(dockerfile: string): { target: string; id: string; owner: string; mode: string }[] {
  return absoluteTargets(dockerfile, 'cache').map((m) => {
    const number = (key: string, fallback: string, valid: RegExp): string => {
      const value = m.options.get(key) ?? '';
      return valid.test(value) ? value : fallback;
    };
    return { target: m.target, id: m.options.get('id') || m.target, owner: `${number('uid', '0', /^\d{1,10}$/)}:${number('gid', '0', /^\d{1,10}$/)}`, mode: number('mode', '0755', /^[0-7]{3,4}$/) };
  });
}

/** The same for `RUN --mount=type=tmpfs`: an empty tmpfs at each target for the whole kaniko run. */
export function kanikoTmpfsTargets(dockerfile: string): string[] {
  return [...new Set(absoluteTargets(dockerfile, 'tmpfs').map((m) => m.target))];
}

function absoluteTargets(dockerfile: string, type: string): { target: string; options: ReadonlyMap<string, string> }[] {
  return runMounts(dockerfile)
    .filter((m) => m.type === type)
    .map((m) => ({ target: m.options.get('target') ?? m.options.get('dst') ?? m.options.get('destination') ?? '', options: m.options }))
    .filter((m) => m.target.startsWith('/') && !m.target.includes('$') && !m.target.split('/').includes('..'))
    .map((m) => ({ ...m, target: m.target.replace(/\/+$/, '') }))
    .filter((m) => m.target !== '');
}

/**
 * BuildKit's and buildah's automatic platform build args, which kaniko does not set: the worker
 * builds for its own platform (linux on the node's architecture), so both platforms are that one.
 */
export function platformArgs(arch: string = process.arch): Record<string, string> {
  const goArch = arch === 'x64' ? 'amd64' : arch === 'ia32' ? '386' : arch;
  const args: Record<string, string> = {};
  for (const side of ['BUILD', 'TARGET'] as const) Object.assign(args, { [`${side}PLATFORM`]: `linux/${goArch}`, [`${side}OS`]: 'linux', [`${side}ARCH`]: goArch, [`${side}VARIANT`]: '' });
  return args;
}

function hashed(value: string): string {
  return createHash('sha256').update(value).digest('hex').slice(0, 32);
}

/** The secret ids a Dockerfile mounts and where, `/run/secrets/<id>` unless it says otherwise. */
export function secretMounts(dockerfile: string): { id: string; target: string }[] {
  const found: { id: string; target: string }[] = [];
  for (const { options } of runMounts(dockerfile).filter((m) => m.type === 'secret')) {
    const id = options.get('id') ?? '';
    const target = options.get('target') ?? options.get('dst') ?? options.get('destination') ?? `/run/secrets/${id}`;
    if (id !== '' && target.startsWith('/') && !found.some((f) => f.target === target)) found.push({ id, target });
  }
  return found;
}

/**
 * Turns kaniko's logrus lines into plain ones (`RUN make`, `error: …`) and remembers the last
 * instruction, a step's exit status and registry trouble, for the typed failure.
 */
export class KanikoOutput extends OutputTap {
  lastStep: string | null = null;
  stepExit: number | null = null;
  registryError: string | null = null;
  lastError: string | null = null;
  /**
   * The base of the stage kaniko built first (index 0), from its own announcement: the first
   * such line only, which kaniko writes before anything of the build runs (a RUN step that
   * prints a look-alike later cannot change it).
   */
  firstStage: string | null = null;

  constructor(inner: BuildOutput, private readonly onFirstStage: (base: string) => void = () => undefined) {
    super(inner);
  }

  protected override rewrite(text: string): string {
    const m = LOGRUS.exec(text);
    if (m === null) return text;
    if (this.firstStage === null && m[1] === 'info') {
      const stage = FIRST_STAGE.exec(m[2] ?? '');
      if (stage?.[1] !== undefined) {
        this.firstStage = stage[1];
        this.onFirstStage(stage[1]);
      }
    }
    // Go quoting: only the quote and the backslash are undone; `\n`, `\t` and `\x..` stay as
    // written so one logrus line stays one log line.
    const message = (m[2] ?? '').replace(/\\(["\\])/g, '$1') + (m[3] ?? '');
    // Masked again as the user will read it: the splitter masked the quoted form, where a
    // secret holding `"` or `\` does not appear as itself.
    return this.masker.maskText(m[1] === 'info' ? message : `${m[1] ?? ''}: ${message}`);
  }

  protected observe(text: string): void {
    if (INSTRUCTION.test(text)) this.lastStep = text;
    const exit = EXIT_STATUS.exec(text);
    if (exit?.[1] !== undefined) this.stepExit = Number(exit[1]);
    if (/^(?:error|fatal)\b/i.test(text)) {
      this.lastError = text;
      if (REGISTRY_ERROR.test(text)) this.registryError ??= text;
    }
  }
}
