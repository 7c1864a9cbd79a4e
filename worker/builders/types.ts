import type { LogLine } from '../../protocol/index.ts';
import type { LogMasker } from '../log-masker.ts';

/** Everything a builder needs for one build; nothing builder-specific leaks out of this folder. */
export interface BuildPlan {
  buildId: string;
  contextDir: string;
  /** absolute path; inside contextDir, or the platform's rendering outside it */
  dockerfile: string;
  target?: string;
  buildArgs: Readonly<Record<string, string>>;
  /** build secrets: id → file holding the value; mounted for RUN --mount=type=secret, never in args, env or layers */
  secrets: Readonly<Record<string, string>>;
  labels: Readonly<Record<string, string>>;
  /** full references, e.g. 127.0.0.1:5000/app/x:1; the first is pushed first */
  destinations: readonly string[];
  /** per-build scratch space owned by the worker */
  workDir: string;
  /** registry repository (full, `host/cache/app/x`) holding this app's layer cache; per app, never shared across apps */
  cacheRepository?: string;
  /**
   * who may share what the builder keeps between builds for RUN steps (`--mount=type=cache`
   * directories): the build's tenant. Absent (tests, benches): one scope for every build.
   */
  cacheScope?: string;
  /**
   * the ONBUILD triggers of the FROM images, read from their configs on first call (a builder
   * that runs them outside a RUN sandbox checks them; the others never pay the read)
   */
  baseTriggers?: () => Promise<string[]>;
  /** each FROM image (as written, build args expanded) and the manifest digest the worker resolved it to before the build */
  resolvedBases?: ReadonlyArray<{ name: string; digest: string }>;
}

/** Where builder output goes: already split into lines and masked by the time `line` sees it. */
export interface BuildOutput {
  readonly masker: LogMasker;
  readonly maxLine: number;
  line(stream: LogLine['stream'], text: string): Promise<void>;
}

export interface BuildResult {
  digest: string;
  references: string[];
}

/** Throws FleetError with E_BUILD_STEP_FAILED / E_BUILD_FAILED / E_PUSH_FAILED. */
export interface Builder {
  readonly name: string;
  build(plan: BuildPlan, output: BuildOutput, signal: AbortSignal): Promise<BuildResult>;
  /** stops what the builder keeps running between builds (a daemon), if anything */
  stop?(): Promise<void>;
}
