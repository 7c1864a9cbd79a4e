import type { LogLine } from '../../protocol/index.ts';

/** Everything a builder needs for one build; nothing builder-specific leaks out of this folder. */
export interface BuildPlan {
  buildId: string;
  contextDir: string;
  /** relative to contextDir */
  dockerfile: string;
  target?: string;
  buildArgs: Readonly<Record<string, string>>;
  labels: Readonly<Record<string, string>>;
  /** full references, e.g. 127.0.0.1:5000/app/x:1; the first is pushed first */
  destinations: readonly string[];
  /** per-build scratch space owned by the worker */
  workDir: string;
}

export interface BuildOutput {
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
}
