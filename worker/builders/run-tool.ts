import { execa } from 'execa';
import { KILL_GRACE_MS } from '../../adapters/child-process.ts';
import { LineSplitter } from '../line-splitter.ts';
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
  // setpriv --pdeathsig: if the worker dies (even kill -9), the tool gets SIGTERM and stops
  // its build, instead of living on (a silent step never hits SIGPIPE) and pushing a second
  // image behind the next attempt's back.
  const child = execa('setpriv', ['--pdeathsig', 'TERM', '--', file, ...args], {
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
    const lines = new LineSplitter(opts.output.masker, opts.output.maxLine, (text) => opts.output.line(name, text));
    for await (const chunk of stream as AsyncIterable<Buffer>) await lines.push(chunk);
    await lines.end();
  };
  const [result] = await Promise.all([child, pump(child.stdout, 'stdout'), pump(child.stderr, 'stderr')]);
  return { exitCode: result.exitCode, cancelled: result.isCanceled };
}
