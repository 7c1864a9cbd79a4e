import { execa } from 'execa';
import { ErrorCode, FleetError, isFleetError } from '../../protocol/index.ts';
import type { BuildOutput, BuildPlan, BuildResult, Builder } from './types.ts';

/**
 * A pool's caps on one build. Absent: unlimited. rlimits are per process (memory, file size) or
 * per user in a user namespace (processes), so they bound what one RUN process may take, not the
 * sum over a build's processes: cgroups (v2, delegated) would bound the sum; this node kind has v1.
 */
export interface BuildLimits {
  /** RLIMIT_DATA of each builder and RUN process (heap and private writable mappings) */
  memoryBytes?: number | undefined;
  /** RLIMIT_NPROC of RUN steps: tasks (threads too) of the step's user in the builder's user namespace */
  pids?: number | undefined;
  /** growth of the worker's state dir (scratch and builder storage) during the build; also RLIMIT_FSIZE */
  scratchBytes?: number | undefined;
  /** bytes of build output (after masking) */
  logBytes?: number | undefined;
}

export type LimitName = 'memory' | 'pids' | 'scratch' | 'log';

/** How often the storage watch measures: often enough to stop a filler within seconds, cheap enough for du. */
const WATCH_MS = 1_000;

/**
 * Threads the builder itself runs as the RUN steps' user in the same user namespace (buildkitd,
 * buildah, kaniko's executor and conmon are Go or C programs with a few dozen threads): added
 * to `pids` so the cap bounds the steps, not the builder.
 */
export const BUILDER_TASKS = 256;

/** What a step prints (or its shell says for it) when an rlimit refused it something. */
const SIGNS: readonly { limit: LimitName; re: RegExp }[] = [
  // shells (`bash: fork: retry: …`, `timeout: fork system call failed: …`), Go (`fork/exec /bin/sh: resource
  // temporarily unavailable`: kaniko's executor starting a step), C runtimes and threads
  { limit: 'pids', re: /fork(?: system call failed|\/exec [^:]*)?: (?:retry: )?Resource temporarily unavailable|Cannot fork|can't fork|fork failed|pthread_create failed|newosproc|failed to create new OS thread|clone(?:3)?(?: failed)?: Resource temporarily unavailable/i },
  { limit: 'scratch', re: /File size limit exceeded|File too large|exit (?:status|code):? 153\b/i },
  { limit: 'memory', re: /memory exhausted|Cannot allocate memory|out of memory|bad_alloc|MemoryError|fatal error: runtime: cannot allocate/i },
];

/** `--ulimit` values for an OCI runtime (podman run, buildah bud): soft = hard, so a step cannot raise them. */
export function ulimitArgs(limits: BuildLimits): string[] {
  const args: string[] = [];
  if (limits.pids !== undefined) args.push('--ulimit', `nproc=${limits.pids + BUILDER_TASKS}:${limits.pids + BUILDER_TASKS}`);
  if (limits.memoryBytes !== undefined) args.push('--ulimit', `data=${limits.memoryBytes}:${limits.memoryBytes}`);
  if (limits.scratchBytes !== undefined) args.push('--ulimit', `fsize=${limits.scratchBytes}:${limits.scratchBytes}`);
  return args;
}

/**
 * `prlimit … --` for a command that runs inside a user namespace already (buildkitd under
 * rootlesskit): RLIMIT_NPROC set there counts that namespace's tasks only; set before the
 * namespace exists it would also become the namespace's cap on the build user's tasks across the
 * whole node (every worker of the node shares that uid).
 */
export function prlimitPrefix(limits: BuildLimits): string[] {
  const opts: string[] = [];
  if (limits.pids !== undefined) opts.push(`--nproc=${limits.pids + BUILDER_TASKS}`);
  if (limits.memoryBytes !== undefined) opts.push(`--data=${limits.memoryBytes}`);
  if (limits.scratchBytes !== undefined) opts.push(`--fsize=${limits.scratchBytes}`);
  return opts.length === 0 ? [] : ['prlimit', ...opts, '--'];
}

/** Bytes under `dirs` (files the worker's user cannot read are not counted). */
async function usage(dirs: readonly string[], signal: AbortSignal): Promise<number> {
  const du = await execa('du', ['-s', '-x', '-B1', ...dirs], { reject: false, cancelSignal: signal, stdin: 'ignore' });
  return du.stdout.split('\n').reduce((sum, line) => sum + (Number.parseInt(line, 10) || 0), 0);
}

/**
 * One build under the pool's caps: watches storage growth and output size (aborting the build when
 * over), reads the output for an rlimit's refusal, and turns either into E_RESOURCE_LIMIT naming
 * the cap.
 */
export class BuildSandbox {
  private readonly abort = new AbortController();
  private exceeded: { limit: LimitName; message: string } | null = null;
  private sign: LimitName | null = null;
  private logged = 0;
  private timer: NodeJS.Timeout | null = null;
  readonly signal: AbortSignal;
  readonly output: BuildOutput;

  constructor(
    private readonly limits: BuildLimits,
    private readonly storage: readonly string[],
    output: BuildOutput,
    signal: AbortSignal,
  ) {
    this.signal = AbortSignal.any([signal, this.abort.signal]);
    this.output = {
      masker: output.masker,
      maxLine: output.maxLine,
      line: async (stream, text) => {
        if (stream !== 'system') this.observe(text);
        if (this.exceeded === null) await output.line(stream, text);
      },
    };
  }

  private observe(text: string): void {
    for (const { limit, re } of SIGNS) if (this.configured(limit) && re.test(text)) this.sign ??= limit;
    this.logged += Buffer.byteLength(text) + 1;
    if (this.limits.logBytes !== undefined && this.logged > this.limits.logBytes) this.trip('log', `the build printed more than ${this.limits.logBytes} bytes`);
  }

  private configured(limit: LimitName): boolean {
    return { memory: this.limits.memoryBytes, pids: this.limits.pids, scratch: this.limits.scratchBytes, log: this.limits.logBytes }[limit] !== undefined;
  }

  private trip(limit: LimitName, message: string): void {
    if (this.exceeded !== null) return;
    this.exceeded = { limit, message };
    this.abort.abort();
  }

  /** Starts the storage watch (a no-op without a scratch cap). */
  async start(): Promise<void> {
    const cap = this.limits.scratchBytes;
    if (cap === undefined || this.storage.length === 0) return;
    const baseline = await usage(this.storage, this.signal);
    const tick = async (): Promise<void> => {
      if (this.signal.aborted) return;
      const grown = (await usage(this.storage, this.signal).catch(() => baseline)) - baseline;
      if (grown > cap) this.trip('scratch', `the build wrote ${grown} bytes of storage, over ${cap}`);
      else if (!this.signal.aborted) this.timer = setTimeout(() => void tick(), WATCH_MS);
    };
    this.timer = setTimeout(() => void tick(), WATCH_MS);
  }

  stop(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }

  /** The build's failure as the user should read it: a cap that was hit wins over what it caused. */
  explain(e: unknown): unknown {
    if (this.exceeded !== null) return limitError(this.exceeded.limit, this.exceeded.message);
    if (this.sign !== null && isFleetError(e) && (e.code === ErrorCode.E_BUILD_STEP_FAILED || e.code === ErrorCode.E_BUILD_FAILED)) {
      return limitError(this.sign, `${e.message}: a ${this.sign} limit refused the build (${describe(this.limits, this.sign)})`, e);
    }
    return e;
  }
}

function describe(limits: BuildLimits, limit: LimitName): string {
  switch (limit) {
    case 'memory':
      return `memoryBytes ${String(limits.memoryBytes)} per process`;
    case 'pids':
      return `pids ${String(limits.pids)}`;
    case 'scratch':
      return `scratchBytes ${String(limits.scratchBytes)}`;
    case 'log':
      return `logBytes ${String(limits.logBytes)}`;
  }
}

function limitError(limit: LimitName, message: string, cause?: FleetError): FleetError {
  return new FleetError(ErrorCode.E_RESOURCE_LIMIT, `resource limit ${limit}: ${message}`, cause?.details?.step === undefined ? undefined : { step: cause.details.step }, cause === undefined ? undefined : { cause });
}

/** Any builder under the pool's caps; the builder applies the rlimits itself (its `limits`). */
export class SandboxedBuilder implements Builder {
  readonly name: string;

  constructor(
    private readonly inner: Builder,
    private readonly limits: BuildLimits,
    /** the worker's storage the build writes into: scratch dirs and the builder's own storage */
    private readonly storage: readonly string[],
  ) {
    this.name = inner.name;
  }

  async build(plan: BuildPlan, output: BuildOutput, signal: AbortSignal): Promise<BuildResult> {
    const sandbox = new BuildSandbox(this.limits, this.storage, output, signal);
    try {
      await sandbox.start();
      return await this.inner.build(plan, sandbox.output, sandbox.signal);
    } catch (e) {
      throw sandbox.explain(e);
    } finally {
      sandbox.stop();
    }
  }

  stop(): Promise<void> {
    return this.inner.stop?.() ?? Promise.resolve();
  }
}
