import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rm } from 'node:fs/promises';
import { basename, dirname, join, relative } from 'node:path';
import { z } from 'zod';
import { ErrorCode, FleetError } from '../../protocol/index.ts';
import { throwClassified } from './failure-taxonomy.ts';
import { OutputTap, quietOutput } from './output-tap.ts';
import { runTool, type ToolRun } from './run-tool.ts';
import { ulimitArgs, type BuildLimits } from './sandbox.ts';
import type { BuildOutput, BuildPlan, BuildResult, Builder } from './types.ts';

/** logrus text lines: `time="…" level=info msg="RUN make"` */
const LOGRUS = /^time="[^"]*" level=(\w+) msg="((?:[^"\\]|\\.)*)"(.*)$/;
/** the instruction kaniko announces before it runs it */
const INSTRUCTION = /^(RUN|COPY|ADD) /;
const EXIT_STATUS = /failed to execute command: waiting for process to exit: exit status (\d+)/;
/** a registry that could not be reached or failed (worth another attempt); refusals are not */
const REGISTRY_ERROR = /connection refused|no such host|i\/o timeout|unexpected status code 5\d\d|GET https?:\/\/.*: 5\d\d/i;
/** `RUN --mount=type=secret,id=x[,target=/p]`: kaniko ignores --mount, so the worker mounts the secret there itself */
const SECRET_MOUNT = /--mount=(?=[^\s]*type=secret)(\S+)/g;

/** Where the worker's files appear inside the kaniko container. */
const IN = { context: '/workspace', dockerfile: '/fleet/dockerfile', out: '/fleet/out' } as const;
/** under the plan's workDir: where kaniko writes the digest and the image (an OCI layout, `oci/`) */
const KANIKO_OUT = 'kaniko-out';
/** where kaniko finds the docker config it is given (its image sets DOCKER_CONFIG there) */
const KANIKO_DOCKER_CONFIG = '/kaniko/.docker/config.json';

const OciIndex = z.object({ manifests: z.array(z.object({ digest: z.string() })).length(1) });

/**
 * Which registry credentials the kaniko container gets. kaniko runs the Dockerfile's RUN steps in
 * its own container, so whatever it can read, a RUN step can read: never the pool's push
 * credentials when it can be helped.
 */
export interface KanikoCredentials {
  /** the pool's push credentials (docker config.json); used by the worker's own push, outside kaniko */
  pushAuthFile?: string;
  /** a pull-only docker config for base and cache reads; when set, kaniko gets this and nothing else */
  pullAuthFile?: string;
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
  /** registry host → whether it refuses anonymous reads (asked once per worker) */
  private readonly readsNeedAuth = new Map<string, boolean>();

  constructor(
    private readonly env: Record<string, string>,
    private readonly insecureRegistries: readonly string[],
    /** `host/platform/kaniko@sha256:…` once its platform signature checks out in that registry */
    private readonly resolveImage: (registryHost: string, signal: AbortSignal) => Promise<string>,
    private readonly credentials: KanikoCredentials = {},
    private readonly limits: BuildLimits = {},
  ) {}

  async build(plan: BuildPlan, output: BuildOutput, signal: AbortSignal): Promise<BuildResult> {
    const first = plan.destinations[0];
    if (first === undefined) throw new FleetError(ErrorCode.E_PUSH_FAILED, 'no destination to push to');
    const image = await this.image(first.slice(0, first.indexOf('/')), plan.workDir, output, signal);
    const name = `fleet-kaniko-${plan.buildId.toLowerCase().replace(/[^a-z0-9_.-]/g, '-').slice(0, 40)}-${randomBytes(3).toString('hex')}`;
    const readAuth = await this.readCredentials(first.slice(0, first.indexOf('/')), output, signal);
    const argv = await kanikoRunArgs(plan, image, name, this.insecureRegistries, readAuth, this.limits);
    const tracker = new KanikoOutput(output);
    try {
      const run = await runTool('podman', argv, { env: this.env, cwd: plan.workDir, output: tracker, signal });
      await throwClassified('kaniko', run, tracker.recent, plan);
      this.throwIfFailed(run, tracker);
    } finally {
      // A cancelled or killed `podman run` can leave its container behind (conmon holds it).
      await runTool('podman', ['rm', '--force', '--time', '0', '--ignore', name], { env: this.env, cwd: plan.workDir, output: quietOutput(output), signal: AbortSignal.timeout(30_000) });
    }
    const layout = join(plan.workDir, KANIKO_OUT, 'oci');
    try {
      return await this.push(plan, layout, output, signal);
    } finally {
      await rm(layout, { recursive: true, force: true });
    }
  }

  /**
   * The docker config the kaniko container may read: the pool's pull-only one if it has one;
   * none when the registry serves anonymous reads; the push credentials (read-only) only when
   * the registry refuses anonymous reads and no pull-only config exists: then a RUN step can read
   * them, which the build log says.
   */
  private async readCredentials(host: string, output: BuildOutput, signal: AbortSignal): Promise<string | undefined> {
    if (this.credentials.pullAuthFile !== undefined) return this.credentials.pullAuthFile;
    if (this.credentials.pushAuthFile === undefined) return undefined;
    let needed = this.readsNeedAuth.get(host);
    if (needed === undefined) {
      const scheme = this.insecureRegistries.includes(host) ? 'http' : 'https';
      const res = await fetch(`${scheme}://${host}/v2/`, { signal: AbortSignal.any([signal, AbortSignal.timeout(10_000)]) }).catch(() => null);
      // Unknown (unreachable): assume reads need credentials, so the pull fails on its own merits.
      needed = res === null || res.status === 401 || res.status === 403;
      await res?.body?.cancel();
      this.readsNeedAuth.set(host, needed);
    }
    if (!needed) return undefined;
    await output.line('system', `warning: ${host} refuses anonymous reads and this pool has no pull-only credentials (registryPullAuthFile): kaniko, and so this build's RUN steps, can read the pool's push credentials`);
    return this.credentials.pushAuthFile;
  }

  /**
   * Pushes kaniko's OCI layout to every destination with the pool's credentials, outside the
   * container the RUN steps ran in; each push must land the layout's own manifest digest.
   */
  private async push(plan: BuildPlan, layout: string, output: BuildOutput, signal: AbortSignal): Promise<BuildResult> {
    const index = OciIndex.safeParse(JSON.parse(await readFile(join(layout, 'index.json'), 'utf8').catch(() => '{}')));
    if (!index.success) throw new FleetError(ErrorCode.E_BUILD_FAILED, 'kaniko wrote no single-image OCI layout');
    const digest = index.data.manifests[0]?.digest ?? '';
    const written = (await readFile(join(plan.workDir, KANIKO_OUT, 'digest'), 'utf8')).trim();
    if (written !== digest) throw new FleetError(ErrorCode.E_DIGEST_MISMATCH, `kaniko reported ${written}, its layout holds ${digest}`);
    for (const [i, destination] of plan.destinations.entries()) {
      const digestFile = join(plan.workDir, KANIKO_OUT, `pushed-${i}`);
      const run = await runTool('skopeo', skopeoCopyArgs(layout, destination, digestFile, this.insecureRegistries, this.credentials.pushAuthFile), { env: this.env, cwd: plan.workDir, output, signal });
      if (run.cancelled) throw new FleetError(ErrorCode.E_CANCELLED, 'build cancelled during push');
      if (run.exitCode !== 0) throw new FleetError(ErrorCode.E_PUSH_FAILED, `push to ${destination} failed (exit ${String(run.exitCode)})`);
      const pushed = (await readFile(digestFile, 'utf8')).trim();
      if (pushed !== digest) throw new FleetError(ErrorCode.E_DIGEST_MISMATCH, `${destination} got ${pushed}, kaniko built ${digest}`);
    }
    return { digest, references: [...plan.destinations] };
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

/**
 * The whole `podman run` argv for a plan (exported so the bench can run the same command by hand);
 * creates the directory the digest file lands in.
 */
export async function kanikoRunArgs(plan: BuildPlan, image: string, name: string, insecureRegistries: readonly string[], readAuthFile?: string, limits: BuildLimits = {}): Promise<string[]> {
  const outDir = join(plan.workDir, KANIKO_OUT);
  await rm(join(outDir, 'oci'), { recursive: true, force: true });
  await mkdir(outDir, { recursive: true });
  const inContext = !relative(plan.contextDir, plan.dockerfile).startsWith('..');
  const mounts = [`${plan.contextDir}:${IN.context}:ro`, `${outDir}:${IN.out}`];
  if (!inContext) mounts.push(`${dirname(plan.dockerfile)}:${IN.dockerfile}:ro`);
  if (readAuthFile !== undefined) mounts.push(`${readAuthFile}:${KANIKO_DOCKER_CONFIG}:ro`);
  for (const { id, target } of secretMounts(await readFile(plan.dockerfile, 'utf8'))) {
    const file = plan.secrets[id];
    if (file !== undefined) mounts.push(`${file}:${target}:ro`);
  }
  const args = [
    'run', '--rm', '--name', name,
    // Host network: this machine's registry listens on loopback only, and rootless podman's
    // private networks (slirp4netns) cannot reach the host's loopback under its own address.
    '--network', 'host', '--pull', 'never', '--security-opt', 'no-new-privileges',
    // rlimits of the executor and, through it, every RUN step (set inside the container's namespaces)
    ...ulimitArgs(limits),
    ...mounts.flatMap((m) => ['--volume', m]),
    image,
    '--context', `dir://${IN.context}`,
    '--dockerfile', inContext ? join(IN.context, relative(plan.contextDir, plan.dockerfile)) : join(IN.dockerfile, basename(plan.dockerfile)),
    // kaniko only builds: the worker pushes the layout (push), so the container the RUN steps
    // share needs no push credentials.
    '--no-push', '--oci-layout-path', join(IN.out, 'oci'), '--digest-file', join(IN.out, 'digest'),
    '--log-format', 'text', '--skip-unused-stages',
    ...plan.destinations.flatMap((d) => ['--destination', d]),
    ...insecureRegistries.flatMap((r) => ['--insecure-registry', r]),
  ];
  if (plan.target !== undefined) args.push('--target', plan.target);
  // Workers are ephemeral: the layer cache lives in the registry, one repository per app.
  // Cache layers are pushed by kaniko itself, with whatever it was given: anonymous registries and
  // pull credentials that may also write cache repositories keep the cache filled; otherwise the
  // upload fails with a warning only. The push-permission check would fail such builds outright.
  if (plan.cacheRepository !== undefined) args.push('--cache=true', '--cache-copy-layers', '--cache-repo', plan.cacheRepository, '--skip-push-permission-check');
  for (const [k, v] of Object.entries(plan.buildArgs)) args.push('--build-arg', `${k}=${v}`);
  for (const [k, v] of Object.entries(plan.labels)) args.push('--label', `${k}=${v}`);
  return args;
}

/** `skopeo copy` of a single-image OCI layout to one destination, keeping its digest. */
export function skopeoCopyArgs(layout: string, destination: string, digestFile: string, insecureRegistries: readonly string[], authFile?: string): string[] {
  const host = destination.slice(0, destination.indexOf('/'));
  return [
    'copy', '--quiet', '--preserve-digests', '--retry-times', '3', '--digestfile', digestFile,
    ...(authFile === undefined ? [] : ['--dest-authfile', authFile]),
    ...(insecureRegistries.includes(host) ? ['--dest-tls-verify=false'] : []),
    `oci:${layout}`, `docker://${destination}`,
  ];
}

/** The secret ids a Dockerfile mounts and where, `/run/secrets/<id>` unless it says otherwise. */
export function secretMounts(dockerfile: string): { id: string; target: string }[] {
  const found: { id: string; target: string }[] = [];
  for (const match of dockerfile.matchAll(SECRET_MOUNT)) {
    const fields = new Map((match[1] ?? '').split(',').map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)] as const));
    const id = fields.get('id') ?? '';
    const target = fields.get('target') ?? fields.get('dst') ?? fields.get('destination') ?? `/run/secrets/${id}`;
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

  protected override rewrite(text: string): string {
    const m = LOGRUS.exec(text);
    if (m === null) return text;
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
