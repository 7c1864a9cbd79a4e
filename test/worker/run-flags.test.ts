import { describe, expect, it } from 'vitest';
import { ErrorCode } from '../../protocol/index.ts';
import { refusedRunFlag, runFlagRefusal } from '../../worker/run-flags.ts';

const refusedLine = (instruction: string): number | null => refusedRunFlag(`FROM r/x:1\n${instruction}\n`)?.instruction.line ?? null;

describe('RUN flags that leave the sandbox', () => {
  it.each([
    ['the worker network', 'RUN --network=host curl http://127.0.0.1:4222'],
    ['the worker network after another flag', 'RUN --mount=type=cache,target=/c --network=host true'],
    ['the worker network, quoted and shouting', 'run --NETWORK="HOST" true'],
    ['a network from a variable', 'RUN --network=$NET true'],
    ['a privileged step', 'RUN --security=insecure true'],
    ['a bind source above the context', 'RUN --mount=type=bind,source=../../../../etc,target=/x cat /x/hostname'],
    ['a src that climbs after descending', 'RUN --mount=type=bind,src=a/../../b,target=/x true'],
    ['a mount source from a variable', 'RUN --mount=type=bind,source=${DIR},target=/x true'],
    ['a flag on a heredoc RUN', 'RUN --network=host <<EOF\ntrue\nEOF'],
  ])('refuses %s', (_what, instruction) => {
    expect(refusedLine(instruction)).toBe(2);
  });

  it.each([
    ['no network', 'RUN --network=none true'],
    ['the default network', 'RUN --network=default true'],
    ['the default security', 'RUN --security=sandbox true'],
    ['a flag-like word in the command', 'RUN echo --network=host --security=insecure'],
    ['a source that stays inside', 'RUN --mount=type=bind,source=a/../b,target=/x true'],
    ['secret and cache mounts', 'RUN --mount=type=secret,id=npm --mount=type=cache,target=/root/.npm npm ci'],
  ])('allows %s', (_what, instruction) => {
    expect(refusedLine(instruction)).toBeNull();
  });

  it('names the line and the flag in an E_DOCKERFILE_INVALID', () => {
    const err = runFlagRefusal('FROM r/x:1\nRUN true\nRUN --network=host true\n');
    expect(err?.code).toBe(ErrorCode.E_DOCKERFILE_INVALID);
    expect(err?.message).toContain('at Dockerfile line 3 (RUN --network=host true): --network=host');
    expect(err?.details?.step).toBe('RUN --network=host true');
  });
});
