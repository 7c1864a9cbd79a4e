import { setTimeout as delay } from 'node:timers/promises';
import { ErrorCode, FleetError } from '../../protocol/index.ts';
import type { ToolRun } from './run-tool.ts';
import type { BuildOutput } from './types.ts';

/** tool runs per destination before the push fails (1 s, then 2 s between them) */
const PUSH_ATTEMPTS = 3;

/**
 * Runs one destination's push (`attempt`: a skopeo or buildah run) until it succeeds, up to
 * PUSH_ATTEMPTS times. A push is content-addressed, so pushing again is safe; tried again here,
 * the build is not redone for a registry's passing error (distribution answers 500 while another
 * push rewrites a shared layer's link), which the tools' own retry options do not cover. Every
 * builder pushes through this.
 */
export async function pushWithRetries(destination: string, attempt: () => Promise<ToolRun>, output: BuildOutput, signal: AbortSignal, backoffMs = 1_000): Promise<void> {
  for (let n = 1; ; n++) {
    const run = await attempt();
    if (run.cancelled) throw new FleetError(ErrorCode.E_CANCELLED, 'build cancelled during push');
    if (run.exitCode === 0) return;
    if (n >= PUSH_ATTEMPTS) throw new FleetError(ErrorCode.E_PUSH_FAILED, `push to ${destination} failed (exit ${String(run.exitCode)}, ${n} tries)`);
    await output.line('stderr', `push to ${destination} failed (exit ${String(run.exitCode)}); trying again in ${n} s`);
    await delay(n * backoffMs, undefined, { signal }).catch(() => undefined);
    if (signal.aborted) throw new FleetError(ErrorCode.E_CANCELLED, 'build cancelled during push');
  }
}
