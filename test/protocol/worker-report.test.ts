import { describe, expect, it } from 'vitest';
import { ErrorCode, WorkerReport, decodeWith, isFleetError } from '../../protocol/index.ts';

const DIGEST = `sha256:${'a'.repeat(64)}`;
const resolved = { type: 'resolved', buildId: 'b-1', at: '2026-11-30T20:00:00.000Z', attempt: 1, workerId: 'w1', base: { name: '127.0.0.1:5000/official/jre17:1', digest: DIGEST } };

function refusal(value: unknown): unknown {
  try {
    decodeWith(WorkerReport, JSON.stringify(value), 'worker report', ErrorCode.E_INVALID_JOB);
  } catch (e) {
    return e;
  }
  throw new Error('expected a refusal');
}

describe('worker report', () => {
  it('a resolved report names the image’s base by digest', () => {
    expect(decodeWith(WorkerReport, JSON.stringify(resolved), 'worker report')).toEqual(resolved);
  });

  it('a resolved report without a base, or with a base not pinned by a sha256 digest, is refused naming the field', () => {
    const noBase = refusal({ ...resolved, base: undefined });
    expect(isFleetError(noBase, ErrorCode.E_INVALID_JOB)).toBe(true);
    expect(JSON.stringify((noBase as { details?: unknown }).details)).toContain('base');
    const unpinned = refusal({ ...resolved, base: { name: resolved.base.name, digest: 'latest' } });
    expect(JSON.stringify((unpinned as { details?: unknown }).details)).toContain('base.digest');
  });
});
