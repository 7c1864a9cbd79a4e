import { describe, expect, it } from 'vitest';
import type { Image } from '../../../coordinator/gates/image-reader.ts';
import { checkNonRoot } from '../../../coordinator/gates/non-root.ts';
import { checkOfficialBase, type OfficialImage } from '../../../coordinator/gates/official-base.ts';
import { failureOutcome, GatePolicy } from '../../../coordinator/gates/policy.ts';

const id = (c: string): string => `sha256:${c.repeat(64)}`;
const image = (diffIds: string[], user?: string): Image => ({
  repository: 'quarantine/app/x',
  digest: id('f'),
  layers: [],
  config: { config: user === undefined ? {} : { User: user }, rootfs: { diff_ids: diffIds }, history: [] },
});
const officials: OfficialImage[] = [
  { name: 'official/base:1', repository: 'official/base', digest: id('1'), diffIds: [id('a')] },
  { name: 'official/jre17:1', repository: 'official/jre17', digest: id('2'), diffIds: [id('a'), id('b')] },
];

describe('official-base gate', () => {
  it('picks the longest official image whose diff_ids lead the image', () => {
    const r = checkOfficialBase(image([id('a'), id('b'), id('c')]), officials);
    expect(r).toMatchObject({ ok: true, base: { name: 'official/jre17:1' } });
  });

  it('names the first diverging layer against the closest official image', () => {
    // [a, d] derives from official/base; against official/jre17 alone it diverges at layer 2.
    expect(checkOfficialBase(image([id('a'), id('d')]), officials)).toMatchObject({ ok: true, base: { name: 'official/base:1' } });
    const r = checkOfficialBase(image([id('a'), id('d')]), officials.slice(1));
    expect(r.ok).toBe(false);
    expect(r.reason).toBe(`does not derive from an official base: layer 2 is ${id('d').slice(0, 19)}…, closest official official/jre17:1 has ${id('b').slice(0, 19)}… there`);
    expect(checkOfficialBase(image([id('e')]), officials).reason).toContain('layer 1 is');
  });
});

describe('non-root gate', () => {
  const passwd = 'root:x:0:0:root:/root:/bin/bash\napp:x:10001:10001::/app:/usr/sbin/nologin\ntoor:x:0:0::/:/bin/sh\n';
  it('resolves names through /etc/passwd, including a second uid-0 account', () => {
    expect(checkNonRoot(image([], 'app'), passwd)).toMatchObject({ ok: true, code: 'NON_ROOT_OK' });
    expect(checkNonRoot(image([], 'toor'), passwd)).toMatchObject({ ok: false, code: 'USER_IS_ROOT' });
    expect(checkNonRoot(image([], 'ghost'), passwd)).toMatchObject({ ok: false, code: 'USER_UNKNOWN' });
  });
  it('takes uids as they are and refuses an unset or zero user', () => {
    expect(checkNonRoot(image([], '10001:10001'), null)).toMatchObject({ ok: true });
    expect(checkNonRoot(image([], '0:0'), null)).toMatchObject({ ok: false, code: 'USER_IS_ROOT' });
    expect(checkNonRoot(image([]), passwd)).toMatchObject({ ok: false, code: 'USER_UNSET' });
  });
});

describe('gate policy', () => {
  const policy = GatePolicy.parse({
    officialBases: ['official/base:1'],
    gates: { 'non-root': { standard: 'block', 'custom-base': 'report', custom: 'block' } },
    exceptions: [{ repository: 'app/legacy', gate: 'non-root', reason: 'vendor image, fixed in Q3 migration', expires: '2030-01-01T00:00:00Z' }],
  });
  it('blocks or reports per kind, and blocks a gate the policy forgot', () => {
    expect(failureOutcome(policy, 'non-root', 'custom', 'app/x').outcome).toBe('block');
    expect(failureOutcome(policy, 'non-root', 'custom-base', 'bases/x').outcome).toBe('warn');
    expect(failureOutcome(policy, 'no-secrets', 'custom', 'app/x').outcome).toBe('block');
  });
  it('applies an exception with its reason until it expires', () => {
    expect(failureOutcome(policy, 'non-root', 'custom', 'app/legacy', new Date('2029-01-01'))).toEqual({
      outcome: 'excepted',
      note: 'exception until 2030-01-01T00:00:00Z: vendor image, fixed in Q3 migration',
    });
    expect(failureOutcome(policy, 'non-root', 'custom', 'app/legacy', new Date('2031-01-01')).outcome).toBe('block');
  });
  it('refuses an exception without a reason or expiry', () => {
    const bad = GatePolicy.safeParse({ officialBases: ['official/base:1'], gates: {}, exceptions: [{ repository: 'a', gate: 'non-root', reason: 'x' }] });
    expect(bad.success).toBe(false);
  });
});
