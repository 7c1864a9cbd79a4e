import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ErrorCode, FleetError } from '../../protocol/index.ts';
import { writeSignaturePolicy, type SignaturePolicyFiles } from '../../node/signature-policy.ts';
import { SIGNED_NAMESPACES } from '../official-bases.ts';
import { throwClassified } from './failure-taxonomy.ts';
import { OutputTap } from './output-tap.ts';
import { pushWithRetries } from './push-retry.ts';
import { workerNetworkRefusal } from './remote-sources.ts';
import { runTool, type ToolRun } from './run-tool.ts';
import { ulimitArgs, type BuildLimits } from './sandbox.ts';
import type { TenantState } from './tenant-state.ts';
import type { BuildOutput, BuildPlan, BuildResult, Builder } from './types.ts';

/** Recognises the step buildah names when a RUN fails. */
const STEP_HEADER = /^(?:\[\d+\/\d+\] )?STEP \d+\/\d+: /;
const STEP_ERROR = /building at STEP "(.*)": .*exit status (\d+)/;
/** containers/image refusing a base under the signature policy (unsigned, or not by the platform key). */
const POLICY_REFUSAL = /(?:docker:\/\/(\S+?):\s.*)?Source image rejected: (.*)$/;
/** `Error: failed pushing cache to {{{"host" "cache/app"} "<hex>"} …}: writing manifest: …: digest invalid` */
const CACHE_PUSH_FAILED = /^Error: failed pushing cache to (?:.*?\}: )?(.*)$/;
/** A pull that failed on the registry, not on the Dockerfile: worth another attempt. */
const REGISTRY_ERROR = /pinging container registry|initializing source docker:|reading manifest .*(?:connection refused|EOF|timeout)|dial tcp .*connect: connection refused/;

/**
 * The buildah command, found on the worker's PATH: the worker puts the bootstrap's cache bin dir
 * first, where `buildah` links the version scripts/versions.env pins (BUILDAH_VERSION, built from
 * its Go module), ahead of Debian's /usr/bin/buildah 1.28. Found the same way as buildctl.
 */
export const BUILDAH = 'buildah';

/**
 * Rootless Buildah. Runs as the worker's unprivileged user with the worker's private
 * containers configuration; RUN steps get their own network namespace (or none).
 * With `signingPublicKeyPath`, every pull from the signed namespaces of the build's registry goes
 * through a containers `policy.json` requiring the platform's sigstore signature
 * (`sigstoreSigned`), beside the worker's own check before the build (worker/official-bases.ts).
 */
export class BuildahBuilder implements Builder {
  readonly name = 'buildah';

  constructor(
    private readonly env: Record<string, string>,
    private readonly network: 'private' | 'none',
    private readonly limits: BuildLimits = {},
    private readonly signingPublicKeyPath?: string,
    /** the worker's per-tenant directories (absent: every build uses the worker's own store) */
    private readonly tenants?: TenantState,
  ) {}

  /**
   * Each tenant's builds get an image store of their own (`--root`, `--runroot`: `--layers` finds
   * its cache there, so never a layer another tenant's build made; the node's shared store of
   * official images stays an additional store of each) and a TMPDIR of their own: buildah keeps
   * RUN --mount=type=cache directories in `$TMPDIR/buildah-cache-<uid>` (/var/tmp by default:
   * shared by every worker of the node's build user), by id or target path.
   */
  private async tenantRun(plan: BuildPlan): Promise<{ env: Record<string, string>; global: string[] }> {
    if (this.tenants === undefined) return { env: this.env, global: [] };
    const { dir } = await this.tenants.dir(plan.cacheScope);
    await mkdir(join(dir, 'tmp'), { recursive: true, mode: 0o700 });
    return { env: { ...this.env, TMPDIR: join(dir, 'tmp') }, global: ['--root', join(dir, 'storage'), '--runroot', join(dir, 'run')] };
  }

  async build(plan: BuildPlan, output: BuildOutput, signal: AbortSignal): Promise<BuildResult> {
    // buildah downloads an ADD's URL in its own process, on the worker's network, where the
    // fleet's services (and a cloud's metadata endpoint) are, not in a RUN step's sandbox.
    const refusal = await workerNetworkRefusal(await readFile(plan.dockerfile, 'utf8'), plan.baseTriggers);
    if (refusal !== null) throw refusal;
    // Tagged with the repository's cache tag as it is committed, and pushed by its image id: the
    // cache tag keeps the layer cache (removing an image's last tag removes its intermediate
    // layer images), and a concurrent build of the same repository moving that tag cannot change
    // what this one pushes. No tag or rmi afterwards: two buildah runs less on every build.
    const tag = cacheTag(plan.destinations[0] ?? plan.buildId);
    const iidFile = join(plan.workDir, 'image-id');
    let tracker = new StepTracker(output);
    const host = registryHost(plan.destinations[0]);
    const policy = this.signingPublicKeyPath === undefined || host === null
      ? undefined
      : await writeSignaturePolicy(join(plan.workDir, 'signature-policy'), host, SIGNED_NAMESPACES, this.signingPublicKeyPath);
    const { env, global } = await this.tenantRun(plan);
    let bud = await runTool(BUILDAH, [...global, ...buildahBudArgs(plan, tag, this.network, this.limits, policy, iidFile)], { env, cwd: plan.workDir, output: tracker, signal });
    if (bud.exitCode !== 0 && !bud.cancelled && tracker.cachePushFailure !== null) {
      // buildah ends the whole build when the registry refuses a layer-cache manifest (distribution
      // answers DIGEST_INVALID while a concurrent push rewrites a shared blob's link; an outage of
      // the cache repository does the same). The cache only saves other builds time: build again,
      // every step now a local cache hit, without updating it.
      await output.line('stderr', `the layer cache could not be pushed (${tracker.cachePushFailure}); building again from this worker's layers without updating it`);
      tracker = new StepTracker(output);
      bud = await runTool(BUILDAH, [...global, ...buildahBudArgs(withoutLayerCache(plan), tag, this.network, this.limits, policy, iidFile)], { env, cwd: plan.workDir, output: tracker, signal });
    }
    await throwClassified('buildah', bud, tracker.recent, plan);
    this.throwIfFailed(bud, tracker);
    const imageId = (await readFile(iidFile, 'utf8')).trim().replace(/^sha256:/, '');

    const references: string[] = [];
    let digest: string | null = null;
    for (const [i, destination] of plan.destinations.entries()) {
      const digestFile = join(plan.workDir, `digest-${i}`);
      await pushWithRetries(
        destination,
        () => runTool(BUILDAH, [...global, 'push', '--digestfile', digestFile, '--retry', '3', imageId, `docker://${destination}`], { env, cwd: plan.workDir, output, signal }),
        output,
        signal,
      );
      const pushed = (await readFile(digestFile, 'utf8')).trim();
      if (digest !== null && pushed !== digest) {
        throw new FleetError(ErrorCode.E_PUSH_FAILED, `tag ${destination} got ${pushed}, expected ${digest}`);
      }
      digest = pushed;
      references.push(destination);
    }
    if (digest === null) throw new FleetError(ErrorCode.E_PUSH_FAILED, 'no destination to push to');
    return { digest, references };
  }

  private throwIfFailed(run: ToolRun, tracker: StepTracker): void {
    if (run.cancelled) throw new FleetError(ErrorCode.E_CANCELLED, 'build cancelled');
    if (run.exitCode === 0) return;
    if (tracker.policyRefusal !== null) {
      // Worded as the worker's own check words it (worker/official-bases.ts), naming the policy.
      const { image, reason } = tracker.policyRefusal;
      throw new FleetError(ErrorCode.E_BASE_UNSIGNED, `refusing to use ${image ?? 'a platform base'}: ${reason} (signature policy)`);
    }
    if (tracker.failedStep === null && tracker.registryError !== null) {
      throw new FleetError(ErrorCode.E_REGISTRY_UNAVAILABLE, `pulling a base image failed: ${tracker.registryError}`);
    }
    const step = tracker.failedStep ?? tracker.lastStep;
    if (step !== null) {
      const exitCode = step.exitCode ?? run.exitCode ?? -1;
      throw new FleetError(ErrorCode.E_BUILD_STEP_FAILED, `step failed: ${step.step} (exit ${exitCode})`, { step: step.step, exitCode });
    }
    throw new FleetError(ErrorCode.E_BUILD_FAILED, `buildah bud exited ${String(run.exitCode)} before any step ran`);
  }
}


/**
 * `buildah bud` argv for a plan (exported so the bench can run the same command by hand). With a
 * signature policy: `--registries-conf-dir` (a global flag; it sets the registries.d directory,
 * where use-sigstore-attachments is turned on) and `--signature-policy`.
 */
export function buildahBudArgs(plan: BuildPlan, tag: string, network: 'private' | 'none', limits: BuildLimits = {}, policy?: SignaturePolicyFiles, iidFile?: string): string[] {
  // --ulimit: set by the OCI runtime inside the step's namespaces, so RLIMIT_NPROC counts the
  // step's own tasks, not every task of the node's build user.
  const global = policy === undefined ? [] : ['--registries-conf-dir', policy.registriesDir];
  const signed = policy === undefined ? [] : ['--signature-policy', policy.policyPath];
  // --pull=newer: what 1.28's --pull=true meant (1.43 reads true as always): a base already in
  // the store (the node's shared store) is used when the registry has nothing newer. The
  // signature policy then sees only real pulls; an image kept locally has the digest the
  // worker's own check verified in the registry, or came through the policy before.
  const args = [...global, 'bud', ...signed, '--layers', '--pull=newer', '--network', network, ...ulimitArgs(limits), '--file', plan.dockerfile, '--tag', tag];
  if (iidFile !== undefined) args.push('--iidfile', iidFile);
  if (plan.target !== undefined) args.push('--target', plan.target);
  // Workers are ephemeral: the layer cache lives in the registry, one repository per app.
  if (plan.cacheRepository !== undefined) args.push('--cache-from', plan.cacheRepository, '--cache-to', plan.cacheRepository);
  for (const [k, v] of Object.entries(plan.buildArgs)) args.push('--build-arg', `${k}=${v}`);
  for (const [k, v] of Object.entries(plan.labels)) args.push('--label', `${k}=${v}`);
  for (const [id, file] of Object.entries(plan.secrets)) args.push('--secret', `id=${id},src=${file}`);
  args.push(plan.contextDir);
  return args;
}

/** The plan without its registry layer cache (`--cache-from`/`--cache-to`). */
function withoutLayerCache(plan: BuildPlan): BuildPlan {
  const copy = { ...plan };
  delete copy.cacheRepository;
  return copy;
}

/** Remembers which step ran last, which one buildah blamed, whether a pull hit the registry and whether the cache push failed. */
class StepTracker extends OutputTap {
  lastStep: { step: string; exitCode?: number } | null = null;
  failedStep: { step: string; exitCode: number } | null = null;
  registryError: string | null = null;
  policyRefusal: { image: string | undefined; reason: string } | null = null;
  /** the registry's answer when buildah could not push a layer-cache manifest (it then ends the build) */
  cachePushFailure: string | null = null;

  protected observe(text: string): void {
    if (STEP_HEADER.test(text)) this.lastStep = { step: text };
    const cache = CACHE_PUSH_FAILED.exec(text);
    if (cache?.[1] !== undefined) this.cachePushFailure ??= cache[1];
    const refused = POLICY_REFUSAL.exec(text);
    if (refused?.[2] !== undefined) this.policyRefusal ??= { image: refused[1], reason: refused[2] };
    if (REGISTRY_ERROR.test(text)) this.registryError ??= text;
    const failed = STEP_ERROR.exec(text);
    if (failed !== null && this.lastStep !== null) {
      this.failedStep = { step: this.lastStep.step, exitCode: Number(failed[2]) };
    }
  }
}

/** `host:port/repo:tag` → `host:port` (null for a reference without a registry host). */
function registryHost(destination: string | undefined): string | null {
  const first = destination?.split('/')[0];
  return first !== undefined && destination !== first && /[.:]|^localhost$/.test(first) ? first : null;
}

/** `registry/quarantine/app/x:build-1` → `localhost/fleet-cache/quarantine/app/x:latest`, one per repository. */
function cacheTag(destination: string): string {
  const withoutTag = destination.replace(/[:@][^/]*$/, '');
  const path = withoutTag.slice(withoutTag.indexOf('/') + 1).toLowerCase();
  return `localhost/fleet-cache/${path}:latest`;
}
