import { describe, expect, it } from 'vitest';
import { isFleetError, ErrorCode } from '../../../protocol/index.ts';
import { pushWithRetries } from '../../../worker/builders/push-retry.ts';
import type { ToolRun } from '../../../worker/builders/run-tool.ts';
import { LogMasker } from '../../../worker/log-masker.ts';
import type { BuildOutput } from '../../../worker/builders/types.ts';

const output = (): BuildOutput & { lines: string[] } => {
  const lines: string[] = [];
  return { masker: new LogMasker([]), maxLine: 4096, lines, line: (_s, text) => Promise.resolve(void lines.push(text)) };
};
const runs = (...exits: (number | 'cancelled')[]): (() => Promise<ToolRun>) & { calls: number } => {
  const next = Object.assign(() => {
    const exit = exits[next.calls++] ?? 0;
    return Promise.resolve(exit === 'cancelled' ? { exitCode: undefined, cancelled: true } : { exitCode: exit, cancelled: false });
  }, { calls: 0 });
  return next;
};

describe('a push tried again in place', () => {
  it("lands on a later try after a registry's passing error, and says so in the build log", async () => {
    const out = output();
    const attempt = runs(1, 0);
    await pushWithRetries('r/app:1', attempt, out, new AbortController().signal, 1);
    expect(attempt.calls).toBe(2);
    expect(out.lines).toEqual(['push to r/app:1 failed (exit 1); trying again in 1 s']);
  });

  it('fails with E_PUSH_FAILED after three tries', async () => {
    const attempt = runs(1, 1, 1, 0);
    const err: unknown = await pushWithRetries('r/app:1', attempt, output(), new AbortController().signal, 1).catch((e: unknown) => e);
    expect(isFleetError(err, ErrorCode.E_PUSH_FAILED)).toBe(true);
    expect(attempt.calls).toBe(3);
  });

  it('stops at a cancelled run or a cancelled wait with E_CANCELLED', async () => {
    const cancelledRun: unknown = await pushWithRetries('r/app:1', runs('cancelled'), output(), new AbortController().signal, 1).catch((e: unknown) => e);
    expect(isFleetError(cancelledRun, ErrorCode.E_CANCELLED)).toBe(true);
    const stop = new AbortController();
    const attempt = runs(1, 0);
    const waiting = pushWithRetries('r/app:1', attempt, { ...output(), line: () => Promise.resolve(stop.abort()) }, stop.signal, 60_000).catch((e: unknown) => e);
    expect(isFleetError(await waiting, ErrorCode.E_CANCELLED)).toBe(true);
    expect(attempt.calls).toBe(1);
  });
});
