import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cacheBin } from '../../adapters/environment.ts';
import { createLogger } from '../../adapters/logger.ts';
import { FleetError } from '../../protocol/index.ts';
import type { ScanBackend } from '../../scanner/backend.ts';
import { ScanCache, scanWithGrype } from '../../scanner/grype.ts';
import { GrypeDbUpdateOptions, MirroredGrypeBackend } from '../../scanner/grype-db.ts';
import { ScannerOptions } from '../../scanner/scanner.ts';
import { eventually } from '../helpers/eventually.ts';
import { advisory } from '../helpers/advisories.ts';
import { startDbMirror } from './scan-db-mirror-server.ts';

const GRYPE = join(cacheBin(), 'grype');
const HOUR = 3600_000;

const CRITICAL = advisory('CVE-2099-0001', 'Critical', 'zlib', '1:1.2.13.dfsg-1+deb12u1');
const LATER_HIGH = advisory('CVE-2099-0004', 'High', 'zlib', '');

/**
 * A Debian 12 root with one package, as `dir:` grype catalogs it (os-release + dpkg status): the
 * DB, not the image, is what these tests are about, so no registry is needed.
 */
async function writeRootfs(root: string): Promise<void> {
  await mkdir(join(root, 'etc'), { recursive: true });
  await mkdir(join(root, 'var/lib/dpkg'), { recursive: true });
  await writeFile(join(root, 'etc/os-release'), 'NAME="Debian GNU/Linux"\nID=debian\nVERSION_ID="12"\nVERSION_CODENAME=bookworm\n');
  await writeFile(
    join(root, 'var/lib/dpkg/status'),
    'Package: zlib1g\nStatus: install ok installed\nArchitecture: amd64\nSource: zlib\nVersion: 1:1.2.13.dfsg-1\nDescription: compression library - runtime\n\n',
  );
}

describe('grype DB from a mirror', () => {
  let dir: string;
  let rootfs: string;
  let mirror: Awaited<ReturnType<typeof startDbMirror>>;
  const log = createLogger('scan-db-mirror-test', { level: 'warn' });
  const stop = new AbortController();

  /** the scanner's backend as scanner.ts builds it, scanning the `dir:` root instead of a registry image */
  const backend = (dbDir: string, maxDbAgeHours: number, update: Partial<GrypeDbUpdateOptions> = {}) => {
    const cache = new ScanCache();
    const inner: ScanBackend = {
      kind: 'grype',
      scan: (_image, signal) => scanWithGrype({ grypeBin: GRYPE, dbDir, source: `dir:${rootfs}`, insecureRegistry: false, signal, cache, maxDbAgeHours }),
    };
    return new MirroredGrypeBackend(inner, GRYPE, dbDir, GrypeDbUpdateOptions.parse({ url: mirror.url, ...update }), maxDbAgeHours, log);
  };
  const IMAGE = { registry: 'unused', insecure: true, repository: 'unused', digest: `sha256:${'0'.repeat(64)}` };

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fleet-scan-db-mirror-'));
    rootfs = join(dir, 'rootfs');
    await writeRootfs(rootfs);
    mirror = await startDbMirror(dir);
  });
  afterAll(async () => {
    stop.abort();
    await new Promise((r) => mirror?.server.close(r));
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('installs the mirror DB before the first scan, and picks up a newer one on its schedule', async () => {
    const v1 = new Date(Math.floor((Date.now() - 2 * HOUR) / 1000) * 1000);
    const v2 = new Date(v1.getTime() + HOUR);
    await mirror.publish('v1', [CRITICAL], v1);
    const b = backend(join(dir, 'db-fresh'), 120, { everyMs: 1000 });

    expect(await b.updateNow(stop.signal)).toMatchObject({ ok: true, updated: true, built: v1.toISOString() });
    expect(mirror.requests).toContain('GET /v6/latest.json');
    const first = await b.scan(IMAGE, stop.signal);
    expect(first.scanner.dbBuilt).toBe(v1.toISOString());
    expect(first.findings.map((f) => f.id)).toEqual(['CVE-2099-0001']);

    // nothing newer on the mirror: asked, nothing installed
    expect(await b.updateNow(stop.signal)).toMatchObject({ ok: true, updated: false, built: v1.toISOString() });

    await mirror.publish('v2', [CRITICAL, LATER_HIGH], v2);
    const schedule = b.runSchedule(stop.signal);
    await eventually(() => b.lastUpdate?.ok === true && b.lastUpdate.built === v2.toISOString(), 60_000, 'the scheduled update installs the newer DB');
    const second = await b.scan(IMAGE, stop.signal);
    // a new DB build time: the (digest, DB) cache misses, and the coordinator's rescan keys on it
    expect(second.cached).toBe(false);
    expect(second.scanner.dbBuilt).toBe(v2.toISOString());
    expect(second.findings.map((f) => f.id)).toEqual(['CVE-2099-0001', 'CVE-2099-0004']);
    stop.abort();
    await schedule;
  });

  it('refuses a DB older than the configured age, fetched or left over, naming the update that failed', async () => {
    const signal = new AbortController().signal;
    // fresh by grype's 120 h default, too old for a 1 h policy: the configured age is the one applied
    await mirror.publish('old', [CRITICAL], new Date(Date.now() - 3 * HOUR));
    const b = backend(join(dir, 'db-strict'), 1);
    const outcome = await b.updateNow(signal);
    expect(outcome.ok).toBe(false);
    expect(outcome.ok ? '' : outcome.error).toMatch(/built 3 hours ago \(max allowed age is 1 hour\)/);
    const refused = await b.scan(IMAGE, signal).then(
      () => null,
      (e: unknown) => e,
    );
    expect(refused).toBeInstanceOf(FleetError);
    expect((refused as FleetError).code).toBe('E_SCAN_UNAVAILABLE');
    expect((refused as FleetError).message).toMatch(/max allowed age is 1 hour.*last DB update/);

    // the same DB under the default age scans
    const lenient = backend(join(dir, 'db-strict'), 120);
    expect(await lenient.updateNow(signal)).toMatchObject({ ok: true });
    expect((await lenient.scan(IMAGE, signal)).findings.map((f) => f.id)).toEqual(['CVE-2099-0001']);
  });

  it('an unreachable mirror and no DB: every scan fails closed', async () => {
    const signal = new AbortController().signal;
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((r) => closed.close(r));
    const cache = new ScanCache();
    const dbDir = join(dir, 'db-none');
    const inner: ScanBackend = { kind: 'grype', scan: (_i, s) => scanWithGrype({ grypeBin: GRYPE, dbDir, source: `dir:${rootfs}`, insecureRegistry: false, signal: s, cache }) };
    const b = new MirroredGrypeBackend(inner, GRYPE, dbDir, GrypeDbUpdateOptions.parse({ url: `http://127.0.0.1:${port}` }), 120, log);
    const outcome = await b.updateNow(signal);
    expect(outcome.ok ? '' : outcome.error).toMatch(/update from http:\/\/127\.0\.0\.1:\d+ failed/);
    await expect(b.scan(IMAGE, signal)).rejects.toMatchObject({ code: 'E_SCAN_UNAVAILABLE', message: expect.stringMatching(/no vulnerability DB|unusable/) });
  });

  it('scanner options: one backend; dbUpdate needs a grype dbDir; the age defaults to grype’s 120 h', () => {
    const base = { natsUrl: 'nats://x', natsCredentials: { user: 'scanner', seedFile: '/run/secrets/scanner.nk' } };
    expect(ScannerOptions.safeParse({ ...base, harbor: { url: 'http://a' }, dbUpdate: { url: 'http://m' } }).success).toBe(false);
    // one backend per scanner
    expect(ScannerOptions.safeParse({ ...base, dbDir: '/var/lib/grype', trivy: { cacheDir: '/var/lib/trivy' } }).success).toBe(false);
    expect(ScannerOptions.safeParse({ ...base, trivy: { cacheDir: '/var/lib/trivy' } }).success).toBe(true);
    const ok = ScannerOptions.parse({ ...base, dbDir: '/var/lib/grype', dbUpdate: { url: 'https://mirror.internal/databases' } });
    expect(ok.dbMaxAgeHours).toBe(120);
    expect(ok.dbUpdate?.everyMs).toBe(3600_000);
  });
});
