import { readFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { z } from 'zod';
import { ErrorCode, FleetError } from '../../protocol/index.ts';
import type { BuildkitDaemon } from './buildkitd.ts';
import { throwClassified } from './failure-taxonomy.ts';
import { OutputTap } from './output-tap.ts';
import { runTool, type ToolRun } from './run-tool.ts';
import type { BuildOutput, BuildPlan, BuildResult, Builder } from './types.ts';

/** `# syntax=` frontends the platform allows; anything else would pull a frontend from outside. */
const SYNTAX_ALLOWLIST: readonly string[] = [];
const SYNTAX = /^#\s*syntax\s*=\s*(\S+)/im;
/** `#7 [build 3/4] RUN make` and `#7 ERROR: process "…" did not complete successfully: exit code: 42` */
const VERTEX = /^#(\d+) \[[^\]]*\] (.+)$/;
const VERTEX_ERROR = /^#(\d+) ERROR: .*exit code: (\d+)/;
const REGISTRY_ERROR = /failed to (?:resolve source metadata|do request|authorize)|connection refused|no such host|i\/o timeout/;

const Metadata = z.object({ 'containerimage.digest': z.string() });

/**
 * Rootless BuildKit through `buildctl` and the built-in `dockerfile.v0` frontend, pushing in the
 * same solve; the digest comes from `--metadata-file`.
 */
export class BuildkitBuilder implements Builder {
  readonly name = 'buildkit';

  constructor(
    private readonly daemon: BuildkitDaemon,
    private readonly env: Record<string, string>,
    private readonly insecureRegistries: readonly string[],
  ) {}

  async build(plan: BuildPlan, output: BuildOutput, signal: AbortSignal): Promise<BuildResult> {
    const syntax = SYNTAX.exec((await readFile(plan.dockerfile, 'utf8')).split('\n').slice(0, 5).join('\n'))?.[1];
    if (syntax !== undefined && !SYNTAX_ALLOWLIST.includes(syntax)) {
      throw new FleetError(ErrorCode.E_BUILD_FAILED, `the Dockerfile asks for frontend "${syntax}" (# syntax=); only the built-in dockerfile.v0 frontend${SYNTAX_ALLOWLIST.length > 0 ? ` and ${SYNTAX_ALLOWLIST.join(', ')}` : ''} may be used here`);
    }
    const address = await this.daemon.address((line) => output.line('system', line));
    const metadata = join(plan.workDir, 'buildkit-metadata.json');
    const tracker = new VertexTracker(output);
    const run = await runTool('buildctl', ['--addr', address, ...buildctlArgs(plan, metadata, this.insecureRegistries)], { env: this.env, cwd: plan.workDir, output: tracker, signal });
    await throwClassified('buildkit', run, tracker.recent, plan);
    this.throwIfFailed(run, tracker);
    const digest = Metadata.parse(JSON.parse(await readFile(metadata, 'utf8')))['containerimage.digest'];
    return { digest, references: [...plan.destinations] };
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

/** `buildctl build` argv for a plan (exported so the bench can run the same command by hand). */
export function buildctlArgs(plan: BuildPlan, metadata: string, insecureRegistries: readonly string[]): string[] {
  const insecure = plan.destinations.some((d) => insecureRegistries.some((r) => d.startsWith(`${r}/`)));
  const args = [
    'build', '--progress', 'plain', '--frontend', 'dockerfile.v0',
    '--local', `context=${plan.contextDir}`, '--local', `dockerfile=${dirname(plan.dockerfile)}`,
    '--opt', `filename=${basename(plan.dockerfile)}`,
    '--output', `type=image,"name=${plan.destinations.join(',')}",push=true,oci-mediatypes=true${insecure ? ',registry.insecure=true' : ''}`,
    '--metadata-file', metadata,
  ];
  if (plan.target !== undefined) args.push('--opt', `target=${plan.target}`);
  // Workers are ephemeral: the layer cache lives in the registry, one repository per app.
  if (plan.cacheRepository !== undefined) {
    const ref = `ref=${plan.cacheRepository}:buildkit${insecureRegistries.some((r) => plan.cacheRepository?.startsWith(`${r}/`)) ? ',registry.insecure=true' : ''}`;
    args.push('--import-cache', `type=registry,${ref}`, '--export-cache', `type=registry,${ref},mode=max,oci-mediatypes=true`);
  }
  for (const [k, v] of Object.entries(plan.buildArgs)) args.push('--opt', `build-arg:${k}=${v}`);
  for (const [k, v] of Object.entries(plan.labels)) args.push('--opt', `label:${k}=${v}`);
  for (const [id, file] of Object.entries(plan.secrets)) args.push('--secret', `id=${id},src=${file}`);
  return args;
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
