import { describe, expect, it } from 'vitest';
import { GatePolicy } from '../../../coordinator/gates/policy.ts';
import { evaluateFindings, vulnerabilitiesResult, withVulnerabilityScan } from '../../../coordinator/gates/vulnerabilities.ts';
import type { ScanClient, ScanSuccess } from '../../../coordinator/scan-client.ts';
import { ErrorCode, FleetError, type Finding, type Verdict } from '../../../protocol/index.ts';

const NOW = new Date('2026-11-29T12:00:00Z');
const DIGEST = `sha256:${'a'.repeat(64)}`;

const finding = (over: Partial<Finding> = {}): Finding => ({
  id: 'CVE-2099-0001',
  severity: 'Critical',
  package: 'zlib',
  installed: '1:1.2.13.dfsg-1',
  fixed: '1:1.2.13.dfsg-1+deb12u1',
  fixState: 'fixed',
  source: 'debian:distro:debian:12',
  ...over,
});

const policy = (vulnerabilities: unknown = {}): GatePolicy =>
  GatePolicy.parse({ officialBases: ['official/base:1'], gates: { vulnerabilities: { standard: 'block', custom: 'report' } }, vulnerabilities });

const entry = (over: Record<string, unknown> = {}) => ({
  cve: 'CVE-2099-0001',
  reason: 'no exploit path in this image, tracked in SEC-42',
  expires: '2027-01-01T00:00:00Z',
  addedBy: 'alice',
  ...over,
});

const report = (findings: Finding[]): ScanSuccess => ({
  ok: true,
  scanId: 'b-1-x',
  digest: DIGEST,
  scanner: { name: 'grype', version: 'v0.121.2', dbBuilt: '2026-11-29T10:00:00Z' },
  findings,
  durationMs: 10,
  at: NOW.toISOString(),
});

describe('vulnerability policy', () => {
  it('defaults: blocks a Critical with a fix, lets a High and a Critical without a fix through', () => {
    const p = policy().vulnerabilities;
    expect(p).toMatchObject({ blockAtOrAbove: 'Critical', unknownAs: 'High', countNotFixed: false, allowlist: [] });
    const high = finding({ id: 'CVE-2099-0002', severity: 'High', package: 'gzip' });
    const unfixed = finding({ id: 'CVE-2099-0003', fixed: undefined, fixState: 'not-fixed' });
    expect(evaluateFindings([finding(), high, unfixed], p, 'app/x', NOW).blocking.map((f) => f.id)).toEqual(['CVE-2099-0001']);
  });

  it('countNotFixed counts findings without a fix; unknownAs rates unrated ones', () => {
    const p = policy({ countNotFixed: true, blockAtOrAbove: 'High', unknownAs: 'High' }).vulnerabilities;
    const unfixed = finding({ id: 'CVE-2099-0003', fixed: undefined, fixState: 'not-fixed' });
    const unknown = finding({ id: 'CVE-2099-0004', severity: 'Unknown' });
    const medium = finding({ id: 'CVE-2099-0005', severity: 'Medium' });
    expect(evaluateFindings([unfixed, unknown, medium], p, 'app/x', NOW).blocking.map((f) => f.id)).toEqual(['CVE-2099-0003', 'CVE-2099-0004']);
    const lenient = policy({ unknownAs: 'Low' }).vulnerabilities;
    expect(evaluateFindings([unknown], lenient, 'app/x', NOW).blocking).toEqual([]);
  });

  it('a live allowlist entry lets its finding through and is named; one for another repository or package does not apply', () => {
    const p = policy({ allowlist: [entry({ repositories: ['apps/allowed'] }), entry({ package: 'openssl' })] }).vulnerabilities;
    const allowed = evaluateFindings([finding()], p, 'apps/allowed/svc', NOW);
    expect(allowed.blocking).toEqual([]);
    expect(allowed.allowlisted).toEqual([{ cve: 'CVE-2099-0001', package: 'zlib', reason: expect.stringContaining('SEC-42'), expires: '2027-01-01T00:00:00Z', addedBy: 'alice', expired: false }]);
    const other = evaluateFindings([finding()], p, 'apps/other', NOW);
    expect(other.blocking).toHaveLength(1);
    expect(other.allowlisted).toEqual([]);
  });

  it('an expired entry no longer applies, and the result says it expired', () => {
    const p = policy({ allowlist: [entry({ expires: '2026-11-01T00:00:00Z' })] });
    const result = vulnerabilitiesResult(report([finding()]), p, 'standard', 'app/x', NOW);
    expect(result).toMatchObject({ gate: 'vulnerabilities', outcome: 'block', code: 'VULNERABILITIES_FOUND' });
    expect(result.reason).toMatch(/CVE-2099-0001 Critical in zlib 1:1\.2\.13\.dfsg-1 \(fixed in 1:1\.2\.13\.dfsg-1\+deb12u1\)/);
    expect(result.reason).toMatch(/allowlist entry for CVE-2099-0001 in zlib expired 2026-11-01T00:00:00Z/);
    expect(result.scan?.allowlisted).toMatchObject([{ expired: true }]);
  });

  it('the policy decides what a failure means per kind of build', () => {
    expect(vulnerabilitiesResult(report([finding()]), policy(), 'custom', 'app/x', NOW).outcome).toBe('warn');
    expect(vulnerabilitiesResult(report([]), policy(), 'standard', 'app/x', NOW)).toMatchObject({ outcome: 'pass', code: 'VULNERABILITIES_OK' });
  });
});

describe('the vulnerabilities gate', () => {
  const verdict: Verdict = { digest: DIGEST, promoted: true, gates: [] };
  const input = (scan: ScanClient | undefined) => ({
    scan,
    policy: policy(),
    kind: 'standard' as const,
    repository: 'app/x',
    target: { buildId: 'b', attempt: 1, registry: 'localhost:5000', insecure: true, repository: 'quarantine/app/x', digest: DIGEST },
  });
  const client = (scan: ScanClient['scan']): ScanClient => ({ scan }) as unknown as ScanClient;

  it('is skipped when the fleet has no scanner pool, and not reached when other gates blocked', async () => {
    expect(await withVulnerabilityScan(verdict, input(undefined))).toMatchObject({ promoted: true, gates: [{ outcome: 'skipped', code: 'VULNERABILITIES_NOT_SCANNED' }] });
    const never = client(() => Promise.reject(new Error('must not scan')));
    expect(await withVulnerabilityScan({ ...verdict, promoted: false }, input(never))).toMatchObject({ promoted: false, gates: [{ code: 'VULNERABILITIES_NOT_REACHED' }] });
  });

  it('fails closed: a scan that is unavailable is the build failure, never a pass', async () => {
    const down = client(() => Promise.reject(new FleetError(ErrorCode.E_SCAN_UNAVAILABLE, 'no report')));
    const out = await withVulnerabilityScan(verdict, input(down));
    expect(out).toBeInstanceOf(FleetError);
    expect((out as FleetError).code).toBe('E_SCAN_UNAVAILABLE');
  });

  it('blocks promotion on a counted finding', async () => {
    const out = await withVulnerabilityScan(verdict, input(client(() => Promise.resolve(report([finding()])))));
    expect(out).toMatchObject({ promoted: false, gates: [{ gate: 'vulnerabilities', outcome: 'block' }] });
  });
});
