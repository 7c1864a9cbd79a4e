import { access, chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cacheBin } from '../../adapters/environment.ts';
import { startRegistry, type Registry } from '../../deploy/local/registry.ts';
import { publishPlatformImages } from '../../images/official/index.ts';
import { loadGatePolicy } from '../../coordinator/gates/policy.ts';
import { vulnerabilitiesResult } from '../../coordinator/gates/vulnerabilities.ts';
import type { BackendResult } from '../../scanner/backend.ts';
import { GrypeBackend } from '../../scanner/grype.ts';
import { TrivyBackend, TrivyOptions, scanWithTrivy } from '../../scanner/trivy.ts';

const GRYPE = join(cacheBin(), 'grype');
const GRYPE_FIXTURE_DB = join(cacheBin(), 'grype-fixture-db');
const TRIVY = join(cacheBin(), 'trivy');
const TRIVY_FIXTURE_DB = join(cacheBin(), 'trivy-fixture-db');
const HOUR = 3600_000;

/**
 * The same three advisories as test/integration/scanning.test.ts, against packages really in
 * official/base:1 (Debian 12 source packages at their installed versions), written once for each
 * scanner's DB builder: a Critical with a fix (zlib), a High without one (gzip), one already fixed
 * (glibc, whose two binaries libc6 and libc-bin must not give two findings).
 */
const ADVISORIES = [
  { id: 'CVE-2099-0001', severity: 'Critical', pkg: 'zlib', fixedIn: '1:1.2.13.dfsg-1+deb12u1' },
  { id: 'CVE-2099-0002', severity: 'High', pkg: 'gzip', fixedIn: '' },
  { id: 'CVE-2099-0003', severity: 'Critical', pkg: 'glibc', fixedIn: '2.36-9+deb12u10' },
  // not fixed, and in glibc: both binaries carry it, one finding
  { id: 'CVE-2099-0005', severity: 'Medium', pkg: 'glibc', fixedIn: '' },
];

async function grypeDb(dir: string): Promise<string> {
  const adv = join(dir, 'grype-advisories');
  await mkdir(adv, { recursive: true });
  for (const a of ADVISORIES) {
    const record = {
      identifier: `debian:12/${a.id.toLowerCase()}`,
      item: { Vulnerability: { Name: a.id, NamespaceName: 'debian:12', Severity: a.severity, Link: 'x', Description: 'fixture', Metadata: {}, FixedIn: [{ Name: a.pkg, NamespaceName: 'debian:12', VersionFormat: 'dpkg', Version: a.fixedIn }] } },
    };
    await writeFile(join(adv, `${a.id}.json`), JSON.stringify(record));
  }
  await execa(GRYPE_FIXTURE_DB, ['-in', adv, '-out', join(dir, 'grype-build')]);
  const dbDir = join(dir, 'grype-db');
  await execa(GRYPE, ['db', 'import', join(dir, 'grype-build', 'vulnerability.db')], { env: { GRYPE_DB_CACHE_DIR: dbDir, GRYPE_CHECK_FOR_APP_UPDATE: 'false' } });
  return dbDir;
}

/** A trivy cache dir holding a DB built from ADVISORIES, updated `updated` (trivy's own DB age field). */
async function trivyDb(dir: string, name: string, updated = new Date()): Promise<string> {
  const adv = join(dir, `trivy-advisories-${name}`);
  await mkdir(adv, { recursive: true });
  await writeFile(join(adv, 'all.json'), JSON.stringify(ADVISORIES.map((a) => ({ id: a.id, os: 'debian', release: '12', package: a.pkg, fixedVersion: a.fixedIn, severity: a.severity.toUpperCase() }))));
  const cacheDir = join(dir, `trivy-${name}`);
  await execa(TRIVY_FIXTURE_DB, ['-in', adv, '-out', join(cacheDir, 'db'), '-updated', updated.toISOString().replace(/\.\d+Z$/, 'Z')]);
  return cacheDir;
}

/** what the policy looks at: the scanner-specific `source` aside, both scanners must agree on these */
const comparable = (r: BackendResult) => r.findings.map((f) => ({ id: f.id, severity: f.severity, package: f.package, installed: f.installed, fixed: f.fixed, fixState: f.fixState }));

describe('trivy as the scan backend (real trivy, real registry, fixture DB)', () => {
  let dir: string;
  let registry: Registry;
  let image: { registry: string; insecure: boolean; repository: string; digest: string };

  beforeAll(async () => {
    await Promise.all([GRYPE, GRYPE_FIXTURE_DB, TRIVY, TRIVY_FIXTURE_DB].map((b) => access(b)));
    dir = await mkdtemp(join(tmpdir(), 'fleet-scan-trivy-'));
    registry = await startRegistry(join(dir, 'registry'));
    const digests = await publishPlatformImages({ host: registry.host, insecure: true }, { sign: false, only: ['official/base:1'] });
    image = { registry: registry.host, insecure: true, repository: 'official/base', digest: digests['official/base:1'] ?? '' };
  }, 300_000);
  afterAll(async () => {
    await registry?.stop();
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  it('finds what grype finds on official/base, in the same shape, and the policy gives the same verdict', async () => {
    const signal = AbortSignal.timeout(300_000);
    const trivy = new TrivyBackend({ ...TrivyOptions.parse({ cacheDir: await trivyDb(dir, 'fresh') }), trivyBin: TRIVY });
    const started = Date.now();
    const t = await trivy.scan(image, signal);
    const tookMs = Date.now() - started;
    const g = await new GrypeBackend(GRYPE, await grypeDb(dir)).scan(image, signal);
    console.log(`trivy scan of official/base:1: ${tookMs} ms cold; grype's findings ${JSON.stringify(comparable(g))}`);

    expect(t.scanner).toMatchObject({ name: 'trivy', version: 'v0.74.0' });
    expect(comparable(t).map((f) => [f.id, f.package, f.severity, f.fixState])).toEqual([
      ['CVE-2099-0001', 'zlib', 'Critical', 'fixed'],
      ['CVE-2099-0002', 'gzip', 'High', 'not-fixed'],
      ['CVE-2099-0005', 'glibc', 'Medium', 'not-fixed'],
    ]);
    expect(comparable(t)).toEqual(comparable(g));

    const policy = await loadGatePolicy();
    const verdict = (r: BackendResult) => {
      const res = vulnerabilitiesResult({ ok: true, scanId: 's', digest: image.digest, scanner: r.scanner, findings: r.findings, durationMs: 1, at: new Date().toISOString() }, policy, 'custom', 'app/x');
      return { outcome: res.outcome, code: res.code, blocking: res.scan?.blocking.map((f) => f.id) };
    };
    expect(verdict(t)).toEqual(verdict(g));
    expect(verdict(t)).toMatchObject({ code: 'VULNERABILITIES_FOUND', blocking: ['CVE-2099-0001'] });

    // the same digest and DB again: from the cache
    expect(await trivy.scan(image, signal)).toMatchObject({ cached: true, findings: t.findings });
  }, 600_000);

  it('fails closed: no DB, a DB older than the configured age, output that is not a report', async () => {
    const signal = AbortSignal.timeout(120_000);
    const none = new TrivyBackend({ ...TrivyOptions.parse({ cacheDir: join(dir, 'trivy-none') }), trivyBin: TRIVY });
    await expect(none.scan(image, signal)).rejects.toMatchObject({ code: 'E_SCAN_UNAVAILABLE', message: expect.stringMatching(/no trivy vulnerability DB/) });

    // trivy itself would scan with it: the age is the adapter's check, and it is configurable
    const oldCache = await trivyDb(dir, 'old', new Date(Date.now() - 10 * HOUR));
    const strict = new TrivyBackend({ ...TrivyOptions.parse({ cacheDir: oldCache, maxDbAgeHours: 6 }), trivyBin: TRIVY });
    await expect(strict.scan(image, signal)).rejects.toMatchObject({ code: 'E_SCAN_UNAVAILABLE', message: expect.stringMatching(/updated 10\.\d h ago \(max allowed age is 6 h\)/) });
    const lenient = new TrivyBackend({ ...TrivyOptions.parse({ cacheDir: oldCache }), trivyBin: TRIVY });
    expect((await lenient.scan(image, signal)).findings.map((f) => f.id)).toContain('CVE-2099-0001');

    // a trivy that answers its version but prints no report (a broken or foreign binary)
    const fake = join(dir, 'fake-trivy');
    await writeFile(fake, `#!/bin/sh\nif [ "$1" = version ]; then exec ${TRIVY} "$@"; fi\necho '{"SchemaVersion": 1}'\n`);
    await chmod(fake, 0o755);
    await expect(scanWithTrivy({ ...TrivyOptions.parse({ cacheDir: oldCache }), trivyBin: fake }, { kind: 'image', target: `${image.registry}/${image.repository}@${image.digest}`, insecure: true }, signal)).rejects.toMatchObject({
      code: 'E_SCAN_UNAVAILABLE',
      message: expect.stringMatching(/printed no usable report/),
    });
    // an image the registry does not have: trivy's exit, not an empty report
    await expect(lenient.scan({ ...image, digest: `sha256:${'1'.repeat(64)}` }, signal)).rejects.toMatchObject({ code: 'E_SCAN_UNAVAILABLE', message: expect.stringMatching(/trivy on .* exited 1/) });
  }, 300_000);
});
