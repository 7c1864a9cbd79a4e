import { mkdir, readFile, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { z } from 'zod';
import { ErrorCode, FleetError } from '../../protocol/index.ts';
import type { Logger } from '../../adapters/logger.ts';
import type { RegistryClient } from '../../adapters/registry-client.ts';
import type { BaseStore, ImportedBase } from './base-import.ts';
import { BackgroundSyncs } from './background-syncs.ts';
import type { BuildkitDaemon } from './buildkitd.ts';
import { pullLayerCache, pushLayerCache, registryCacheDigest } from './layer-cache.ts';
import { keepReachable, linkBlobs, taggedDigest } from './oci-layout.ts';
import { pushLayout } from './oci-push.ts';
import { throwClassified } from './failure-taxonomy.ts';
import { OutputTap } from './output-tap.ts';
import { runTool, type ToolRun } from './run-tool.ts';
import type { BuildOutput, BuildPlan, BuildResult, Builder } from './types.ts';
import { buildkitChecks } from '../dockerfile-directives.ts';

/** `#7 [build 3/4] RUN make` and `#7 ERROR: process "…" did not complete successfully: exit code: 42` */
const VERTEX = /^#(\d+) \[[^\]]*\] (.+)$/;
const VERTEX_ERROR = /^#(\d+) ERROR: .*exit code: (\d+)/;
const REGISTRY_ERROR = /failed to (?:resolve source metadata|do request|authorize)|connection refused|no such host|i\/o timeout/;

const Metadata = z.object({ 'containerimage.digest': z.string() });

/**
 * Rootless BuildKit through `buildctl` and the built-in `dockerfile.v0` frontend. The daemon's
 * network namespace reaches neither the host's loopback nor (so) the fleet's registry: the
 * worker brings the FROM images in as an OCI layout handed over as named contexts, the image
 * comes back as an OCI layout the worker pushes (digest checked), and the layer cache is a local
 * directory per cache repository that the worker fills from the registry and pushes back.
 *
 * What that costs per build is kept small: the output layout is one directory per worker that
 * keeps the last image's blobs (the exporter skips blobs it holds: the base layers are not
 * written again), the cache is copied in only when the registry's differs from the local one
 * (one HEAD), and pushed back only when the build changed it, after the build is reported.
 */
export class BuildkitBuilder implements Builder {
  readonly name = 'buildkit';
  /** layer-cache pushes still running after their build was reported, per cache directory */
  private readonly syncs: BackgroundSyncs;

  constructor(
    private readonly daemon: BuildkitDaemon,
    private readonly env: Record<string, string>,
    private readonly insecureRegistries: readonly string[],
    private readonly bases: BaseStore,
    /** where the per-cache-repository layer caches live */
    private readonly cacheDir: string,
    private readonly network: 'private' | 'none',
    /** the worker's output layout (kept between builds) */
    private readonly outDir: string,
    private readonly log: Logger,
    /** the worker's registry access, for the cache's one HEAD; absent: the cache is always copied in */
    private readonly registry?: (host: string) => RegistryClient,
  ) {
    this.syncs = new BackgroundSyncs(log);
  }

  async build(plan: BuildPlan, output: BuildOutput, signal: AbortSignal): Promise<BuildResult> {
    try {
      return await this.buildOnDaemon(plan, output, signal);
    } finally {
      this.daemon.afterBuild();
    }
  }

  private async buildOnDaemon(plan: BuildPlan, output: BuildOutput, signal: AbortSignal): Promise<BuildResult> {
    const metadata = join(plan.workDir, 'buildkit-metadata.json');
    const layout = this.outDir;
    // The last image's blobs stay (the exporter skips them); its index goes, so the layout names
    // this build's image only, and a half-written upload of an interrupted export goes too.
    await mkdir(layout, { recursive: true, mode: 0o700 });
    await Promise.all([rm(join(layout, 'index.json'), { force: true }), rm(join(layout, 'ingest'), { recursive: true, force: true })]);
    const copy = { env: this.env, workDir: plan.workDir, insecureRegistries: this.insecureRegistries, output, signal };
    const cacheRef = plan.cacheRepository === undefined ? undefined : `${plan.cacheRepository}:buildkit`;
    const basesIn = this.bases.importBases(plan, output, signal);
    // The bases' layers are in the base store already: linked into the directories the exports
    // write, the exporter skips them; linked into the layer cache before its pull, skopeo skips
    // them (a cache exported with every layer holds the bases': 360 MB for the Java ones).
    const baseLayers = basesIn.then(async (bases) => (await Promise.all(bases.map(async (b) => (await this.bases.manifest(b.digest).catch(() => ({ layers: [] }))).layers.map((l) => l.digest)))).flat());
    const pullCache = async (): Promise<SyncedCache | undefined> => {
      if (plan.cacheRepository === undefined || cacheRef === undefined) return undefined;
      const dir = join(this.cacheDir, cacheDirName(plan.cacheRepository));
      await mkdir(this.cacheDir, { recursive: true, mode: 0o700 });
      // This worker's own push of the directory, if one still runs, finishes first.
      await this.syncs.settled(dir);
      const remote = this.registry === undefined ? undefined : await registryCacheDigest(cacheRef, this.registry, signal);
      // The registry has none: a cold build (as when the copy fails), no skopeo run.
      if (remote === null) {
        await rm(dir, { recursive: true, force: true });
        return { dir, ref: cacheRef, filled: false, remote };
      }
      // The local cache is the registry's (this worker pulled or pushed it last): nothing to copy.
      if (remote !== undefined && (await taggedDigest(dir, 'latest')) === remote) {
        await output.line('system', `layer cache ${cacheRef}: the local copy is the registry's (${remote})`);
        return { dir, ref: cacheRef, filled: true, remote };
      }
      await linkBlobs(this.bases.layout, await baseLayers, dir);
      return { dir, ref: cacheRef, filled: await pullLayerCache(cacheRef, dir, copy), remote };
    };
    // The registry work the daemon no longer does, side by side: it is all waiting on the registry.
    const started = performance.now();
    const [bases, layers, cache, address] = await Promise.all([
      basesIn,
      baseLayers,
      pullCache(),
      this.daemon.address(plan.cacheScope, (line) => output.line('system', line)),
    ]);
    await Promise.all([linkBlobs(this.bases.layout, layers, layout), cache === undefined ? undefined : linkBlobs(this.bases.layout, layers, cache.dir)]);
    const checks = buildkitChecks(await readFile(plan.dockerfile, 'utf8'));
    const sandbox: BuildkitSandbox = { layout, baseLayout: this.bases.layout, bases, network: this.network, checks, ...(cache === undefined ? {} : { cache: { dir: cache.dir, filled: cache.filled } }) };
    const tracker = new VertexTracker(output);
    const prepared = performance.now();
    const run = await runTool('buildctl', ['--addr', address, ...buildctlArgs(plan, metadata, sandbox)], { env: this.env, cwd: plan.workDir, output: tracker, signal });
    const built = performance.now();
    await throwClassified('buildkit', run, tracker.recent, plan);
    this.throwIfFailed(run, tracker);
    try {
      const reported = Metadata.parse(JSON.parse(await readFile(metadata, 'utf8')))['containerimage.digest'];
      const auth = { ...copy, authFile: this.env.REGISTRY_AUTH_FILE };
      const digest = await pushLayout(layout, plan.destinations, reported, { ...auth, builder: 'buildkit' });
      if (cache !== undefined) await this.pushCacheLater(cache, auth);
      // What the sandbox's own steps cost, beside the build (the bench reads it).
      const ms = (a: number, b: number): string => `${Math.round(b - a)} ms`;
      await output.line('system', `buildkit: bases and cache in ${ms(started, prepared)}, buildctl ${ms(prepared, built)}, push ${ms(built, performance.now())}`);
      return { digest, references: [...plan.destinations] };
    } finally {
      // Bounded by one image: what the next export can skip stays, the rest goes.
      if (!(await keepReachable(layout).catch(() => false))) await rm(layout, { recursive: true, force: true });
    }
  }

  /**
   * Pushes the layer cache the build exported back to the registry, after the build is reported:
   * a fresh worker builds warm once it landed; this worker's next build of the app waits for it
   * (it writes the same directory). Nothing to push when the export is the registry's cache
   * (a fully cached build re-exports the same manifest).
   */
  private async pushCacheLater(cache: SyncedCache, auth: { env: Record<string, string>; insecureRegistries: readonly string[]; authFile?: string | undefined; output: BuildOutput }): Promise<void> {
    const exported = await taggedDigest(cache.dir, 'latest');
    if (exported === null || exported === cache.remote) return;
    const log = this.log.child({ cache: cache.ref });
    const sink: BuildOutput = { masker: auth.output.masker, maxLine: auth.output.maxLine, line: (_stream, text) => Promise.resolve(log.warn(text)) };
    this.syncs.run(cache.dir, `layer-cache push to ${cache.ref}`, (signal) => pushLayerCache(cache.dir, cache.ref, { ...auth, workDir: this.cacheDir, output: sink, signal }));
  }

  /** Waits (bounded) for the layer-cache pushes still running. */
  async drain(): Promise<void> {
    await this.syncs.drain();
  }

  private throwIfFailed(run: ToolRun, tracker: VertexTracker): void {
    if (run.cancelled) throw new FleetError(ErrorCode.E_CANCELLED, 'build cancelled');
    if (run.exitCode === 0) return;
    if (tracker.failed !== null) {
      const { step, exitCode } = tracker.failed;
      throw new FleetError(ErrorCode.E_BUILD_STEP_FAILED, `step failed: ${step} (exit ${exitCode})`, { step, exitCode });
    }
    if (tracker.registryError !== null) throw new FleetError(ErrorCode.E_REGISTRY_UNAVAILABLE, `registry: ${tracker.registryError}`);
    throw new FleetError(ErrorCode.E_BUILD_FAILED, `buildctl exited ${String(run.exitCode)}`);
  }
}

/** What a sandboxed `buildctl build` reads and writes instead of the registry. */
export interface BuildkitSandbox {
  /** the image is written here (an OCI layout directory) */
  layout: string;
  /** the worker's OCI layout of bases, and the FROM images in it */
  baseLayout: string;
  bases: readonly ImportedBase[];
  network: 'private' | 'none';
  /** the app's layer cache (a local OCI layout the worker syncs with the registry); `filled` when one came in */
  cache?: { dir: string; filled: boolean };
  /** BuildKit's check options for this Dockerfile (buildkitChecks) */
  checks: string;
}

/** A layer cache as the build found it: `remote` the registry's digest (null: none; undefined: not asked). */
interface SyncedCache {
  dir: string;
  ref: string;
  filled: boolean;
  remote: string | null | undefined;
}

/** The OCI store name buildctl gives the bases layout (`--oci-layout NAME=DIR`). */
const BASES = 'fleetbases';

/** `buildctl build` argv for a plan (exported so the bench can run the same command by hand). */
export function buildctlArgs(plan: BuildPlan, metadata: string, sandbox: BuildkitSandbox): string[] {
  const args = [
    'build', '--progress', 'plain', '--frontend', 'dockerfile.v0',
    '--local', `context=${plan.contextDir}`, '--local', `dockerfile=${dirname(plan.dockerfile)}`,
    '--opt', `filename=${basename(plan.dockerfile)}`,
    // Set, the built-in frontend builds the Dockerfile itself: it never hands the build to the
    // frontend image a `# syntax=` line (in any of its forms: `#`, `//`, JSON) or BUILDKIT_SYNTAX
    // names, which it would pull and run in the daemon. The worker refuses any frontend but
    // Docker's Dockerfile one beforehand, on every builder (dockerfile-directives.ts).
    '--opt', 'cmdline=dockerfile.v0',
    '--output', `type=oci,dest=${sandbox.layout},tar=false,oci-mediatypes=true`,
    '--metadata-file', metadata,
  ];
  if (plan.target !== undefined) args.push('--opt', `target=${plan.target}`);
  // Each FROM image resolves to the worker's copy (a named context), so the daemon asks no registry.
  if (sandbox.bases.length > 0) args.push('--oci-layout', `${BASES}=${sandbox.baseLayout}`);
  for (const base of sandbox.bases) args.push('--opt', `context:${contextName(base.image)}=oci-layout://${BASES}@${base.digest}`);
  // `none`: RUN steps get a network namespace of their own with loopback only.
  if (sandbox.network === 'none') args.push('--opt', 'force-network-mode=none');
  // The app's layer cache, as a local directory (the daemon cannot reach the registry): the
  // worker copies it from and back to the registry (layer-cache.ts), so a fresh worker builds
  // warm. image-manifest=true: a plain OCI image manifest, which skopeo copies as it is.
  if (sandbox.cache !== undefined) {
    if (sandbox.cache.filled) args.push('--import-cache', `type=local,src=${sandbox.cache.dir}`);
    args.push('--export-cache', `type=local,dest=${sandbox.cache.dir},mode=max,image-manifest=true,oci-mediatypes=true`);
  }
  // BUILDKIT_* build args are the daemon's own options (intake refuses them; a job from before
  // that is not trusted with them either).
  for (const [k, v] of Object.entries(plan.buildArgs)) if (!k.startsWith('BUILDKIT_')) args.push('--opt', `build-arg:${k}=${v}`);
  args.push('--opt', `build-arg:BUILDKIT_DOCKERFILE_CHECK=${sandbox.checks}`);
  // The daemon keeps RUN --mount=type=cache directories between builds by id (the target path
  // unless the Dockerfile names one): prefixed with the build's scope, one tenant's build never
  // mounts another's.
  if (plan.cacheScope !== undefined) args.push('--opt', `build-arg:BUILDKIT_CACHE_MOUNT_NS=${plan.cacheScope}`);
  for (const [k, v] of Object.entries(plan.labels)) args.push('--opt', `label:${k}=${v}`);
  for (const [id, file] of Object.entries(plan.secrets)) args.push('--secret', `id=${id},src=${file}`);
  return args;
}

/**
 * The name the dockerfile frontend looks a FROM image up by (`context:NAME`): its familiar form
 * (Docker Hub's `docker.io/library/` dropped) without a `:latest` tag.
 */
export function contextName(image: string): string {
  const familiar = image.replace(/^(?:docker\.io|index\.docker\.io)\/(?:library\/(?=[^/]+$))?/, '');
  return image.includes('@') ? familiar : familiar.replace(/:latest$/, '');
}

/** `host/cache/app/x` → a directory name of its own */
function cacheDirName(repository: string): string {
  return repository.replace(/[^A-Za-z0-9._-]/g, '_');
}

/** Remembers BuildKit's vertices by number so an ERROR line can name its step. */
class VertexTracker extends OutputTap {
  private readonly steps = new Map<string, string>();
  failed: { step: string; exitCode: number } | null = null;
  registryError: string | null = null;

  protected observe(text: string): void {
    const vertex = VERTEX.exec(text);
    if (vertex?.[1] !== undefined && vertex[2] !== undefined && !this.steps.has(vertex[1])) this.steps.set(vertex[1], vertex[2]);
    const error = VERTEX_ERROR.exec(text);
    if (error?.[1] !== undefined && this.failed === null) this.failed = { step: this.steps.get(error[1]) ?? `#${error[1]}`, exitCode: Number(error[2]) };
    if (REGISTRY_ERROR.test(text)) this.registryError ??= text;
  }
}
