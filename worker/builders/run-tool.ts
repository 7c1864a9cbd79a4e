import { createInterface } from 'node:readline';
import { execa } from 'execa';
import { KILL_GRACE_MS } from '../../runtime/child-process.ts';
import type { BuildOutput } from './types.ts';

export interface ToolRun {
  exitCode: number | undefined;
  cancelled: boolean;
}

/**
 * Runs a builder tool with an argv array (never a shell string) and a clean environment,
 * streaming each output line as it comes. Cancellation sends SIGTERM, then SIGKILL after a grace.
 */
export async function runTool(
  file: string,
  args: readonly string[],
  opts: { env: Record<string, string>; cwd: string; output: BuildOutput; signal: AbortSignal },
): Promise<ToolRun> {
  const child = execa(file, args, {
    env: opts.env,
    extendEnv: false,
    cwd: opts.cwd,
    stdin: 'ignore',
    buffer: false,
    reject: false,
    cancelSignal: opts.signal,
    forceKillAfterDelay: KILL_GRACE_MS,
  });
  const pump = async (stream: NodeJS.ReadableStream | null, name: 'stdout' | 'stderr'): Promise<void> => {
    if (stream === null) return;
    for await (const line of createInterface({ input: stream, crlfDelay: Infinity })) {
      await opts.output.line(name, line);
    }
  };
  const [result] = await Promise.all([child, pump(child.stdout, 'stdout'), pump(child.stderr, 'stderr')]);
  return { exitCode: result.exitCode, cancelled: result.isCanceled };
}
