import { describe, expect, it } from 'vitest';
import { ErrorCode, FleetError, isFleetError } from '../../../protocol/index.ts';
import { BuildSandbox, type BuildLimits } from '../../../worker/builders/sandbox.ts';
import { LogMasker } from '../../../worker/log-masker.ts';

const output = { masker: new LogMasker([]), maxLine: 16_384, line: () => Promise.resolve() };
const stepFailed = new FleetError(ErrorCode.E_BUILD_STEP_FAILED, 'step failed: RUN ./hog', { step: 'RUN ./hog' });

async function explainAfter(lines: string[], limits: BuildLimits = { pids: 64, memoryBytes: 1 << 28, scratchBytes: 1 << 30 }) {
  const sandbox = new BuildSandbox(limits, [], output, new AbortController().signal);
  for (const l of lines) await sandbox.output.line('stderr', l);
  return sandbox.explain(stepFailed);
}

describe('reading a refused rlimit in a build failure', () => {
  it.each([
    ['bash: fork: retry: Resource temporarily unavailable', 'pids'],
    ['timeout: fork system call failed: Resource temporarily unavailable', 'pids'],
    // kaniko's executor (Go) failing to start the step itself
    ['error building image: error building stage: failed to execute command: fork/exec /bin/sh: resource temporarily unavailable', 'pids'],
    ['/bin/sh: 1: Cannot fork', 'pids'],
    ['tail: memory exhausted', 'memory'],
    ['File size limit exceeded (core dumped)', 'scratch'],
  ])('%s → E_RESOURCE_LIMIT naming %s, keeping the step', async (line, limit) => {
    const e = await explainAfter(['step 1', line]);
    expect(isFleetError(e, ErrorCode.E_RESOURCE_LIMIT)).toBe(true);
    expect(String(e)).toContain(`resource limit ${limit}`);
    if (isFleetError(e)) expect(e.details?.step).toBe('RUN ./hog');
  });

  it('leaves an ordinary failure alone, and a sign of a limit the pool does not set', async () => {
    expect(await explainAfter(['make: *** [all] Error 2'])).toBe(stepFailed);
    expect(await explainAfter(['bash: fork: Resource temporarily unavailable'], { memoryBytes: 1 << 28, scratchBytes: 1 << 30 })).toBe(stepFailed);
  });
});
