import { access, chmod, mkdir, mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LocalFleet } from '../../deploy/local/fleet.ts';
import { RegistryClient, fetchManifestDigest } from '../../adapters/registry-client.ts';
import { cacheBin } from '../../adapters/environment.ts';
import { DEFAULT_POLICY_PATH } from '../../coordinator/gates/policy.ts';
import { ScanReport, consumers, streams, subjects, type BuildEvent, type BuildView, type Verdict } from '../../protocol/index.ts';
import { storedEvents } from '../../client/index.ts';
import { FLEET_BIN, adminFetch, cliEnv, fixture, startTestFleet } from '../helpers/fleet.ts';
import { ScanCache, scanWithGrype } from '../../scanner/grype.ts';
import { NotificationDelivery, type CloudEvent } from '../../protocol/index.ts';
import { DB_UPDATED_PROPERTY, REPORT_MIME } from '../../scanner/harbor.ts';
import { eventually, eventuallyValue } from '../helpers/eventually.ts';
import { advisory } from '../helpers/advisories.ts';
import { startWebhookReceiver, type WebhookReceiver } from '../helpers/webhook-receiver.ts';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SIGNATURE_HEADER, TIMESTAMP_HEADER, verifyNotification } from '../../coordinator/notifications/index.ts';
import { jetstreamManager } from '@nats-io/jetstream';
import { startScanner } from '../../scanner/scanner.ts';
import { createLogger } from '../../adapters/logger.ts';

const GRYPE = join(cacheBin(), 'grype');
const FIXTURE_DB = join(cacheBin(), 'grype-fixture-db');

/**
 * Advisories against packages really installed in official/base:1 (Debian 12; names are Debian
 * source packages, versions as its /var/lib/dpkg/status has them): zlib 1:1.2.13.dfsg-1,
 * gzip 1.12-1, glibc 2.36-9+deb12u14.
 */
const ADVISORIES = [
  // Critical, fixed in a version newer than the installed one: a finding that blocks
  advisory('CVE-2099-0001', 'Critical', 'zlib', '1:1.2.13.dfsg-1+deb12u1'),
  // High with no fix yet (empty version): a finding the default policy lets through
  advisory('CVE-2099-0002', 'High', 'gzip', ''),
  // fixed in a version older than the installed one: no finding at all
  advisory('CVE-2099-0003', 'Critical', 'glibc', '2.36-9+deb12u10'),
];

/** A fresh grype DB (grype refuses one older than 120 h), imported into a grype cache dir (`name` under `dir`). */
async function buildFixtureDb(dir: string, advisoryList = ADVISORIES, name = 'v1'): Promise<string> {
  const advisories = join(dir, `advisories-${name}`);
  await mkdir(advisories, { recursive: true });
  for (const a of advisoryList) await writeFile(join(advisories, `${a.identifier.replace(/[:/]/g, '_')}.json`), JSON.stringify(a));
  await execa(FIXTURE_DB, ['-in', advisories, '-out', join(dir, `build-${name}`)]);
  const dbDir = join(dir, 'grype-db');
  await execa(GRYPE, ['db', 'import', join(dir, `build-${name}`, 'vulnerability.db')], { env: { GRYPE_DB_CACHE_DIR: dbDir, GRYPE_CHECK_FOR_APP_UPDATE: 'false' } });
  return dbDir;
}

const HOOK_SECRET = 'whsec-test-0123456789';

/** The gate policy of these tests: block Critical with a fix; CVE-2099-0001 allowlisted for scan/allowed, expired for scan/expired. */
async function writeScanPolicy(dir: string): Promise<string> {
  const policy = JSON.parse(await readFile(DEFAULT_POLICY_PATH, 'utf8')) as Record<string, unknown>;
  const future = new Date(Date.now() + 30 * 24 * 3600_000).toISOString();
  const past = new Date(Date.now() - 24 * 3600_000).toISOString();
  policy.vulnerabilities = {
    blockAtOrAbove: 'Critical',
    countNotFixed: false,
    unknownAs: 'High',
    allowlist: [
      { cve: 'CVE-2099-0001', package: 'zlib', repositories: ['scan/allowed'], reason: 'zlib inflate is never reached in this service (SEC-1)', expires: future, addedBy: 'sec-team' },
      { cve: 'CVE-2099-0001', repositories: ['scan/expired'], reason: 'accepted until the base was rebuilt (SEC-2)', expires: past, addedBy: 'sec-team' },
    ],
  };
  const policyPath = join(dir, 'gate-policy.json');
  await writeFile(policyPath, JSON.stringify(policy));
  return policyPath;
}

/** The tiny fixture built into `repository`:1; its final state and its verdict. */
async function buildTiny(fleet: LocalFleet, id: string, repository: string): Promise<{ done: BuildView; verdict: Verdict | undefined }> {
  const { digest } = await fleet.client.uploadContext(fixture('tiny'));
  await fleet.client.submit({ id, context: { digest }, buildArgs: { N: id }, image: { repository, tags: ['1'] } });
  const done = await fleet.client.follow(id, {});
  const events = await storedEvents(fleet.client.nc, id);
  const verdict = events.find((e): e is Extract<BuildEvent, { type: 'verdict' }> => e.type === 'verdict')?.verdict;
  return { done, verdict };
}
const vulnerabilityGate = (v: Verdict | undefined) => v?.gates.find((g) => g.gate === 'vulnerabilities');
/** grype's gate results by build id, for the Harbor adapter's to be compared with */
const grypeGates = new Map<string, ReturnType<typeof vulnerabilityGate>>();

/** Vulnerability scanning as a gate: real grype, real registry, a fixture DB built in this run. */
describe('scanning', () => {
  let fleet: LocalFleet;
  let registry: RegistryClient;
  let dir: string;
  let dbDir: string;
  let receiver: WebhookReceiver;
  const reports = new Map<string, ScanReport>();
  /** the first validly signed notification of `type` about `subject` the receiver got */
  const notification = (type: string, subject: string): Promise<CloudEvent> =>
    receiver.signed(HOOK_SECRET, (e) => e.type === type && e.subject === subject, `a signed ${type} notification about ${subject}`);

  beforeAll(async () => {
    await access(GRYPE);
    await access(FIXTURE_DB);
    dir = await mkdtemp(join(tmpdir(), 'fleet-scanning-'));
    dbDir = await buildFixtureDb(dir);
    const policyPath = await writeScanPolicy(dir);
    receiver = await startWebhookReceiver({ refuseFirst: true });
    const secretFile = join(dir, 'hook-secret');
    await writeFile(secretFile, `${HOOK_SECRET}\n`, { mode: 0o600 });
    fleet = await startTestFleet({ scanners: 1, scan: { dbDir, timeoutMs: 90_000, rescanPerMinute: 600 }, gatePolicyPath: policyPath, platform: { notifications: { url: receiver.url, secretFile } } });
    registry = new RegistryClient({ host: fleet.registry.host, insecure: true });
    // The admin sees every scan report: the findings themselves, not only the verdict's summary.
    const sub = fleet.client.nc.subscribe(subjects.scanResultWildcard);
    void (async () => {
      for await (const m of sub) {
        const r = ScanReport.parse(JSON.parse(new TextDecoder().decode(m.data)));
        reports.set(r.digest, r);
      }
    })();
  }, 600_000);
  afterAll(async () => {
    await fleet?.stop();
    await receiver?.close();
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  const build = (id: string, repository: string) => buildTiny(fleet, id, repository);
  const gate = vulnerabilityGate;

  it('blocks a Critical with a fix before promotion, naming it; a High without a fix and an advisory already fixed do not block', async () => {
    const { done, verdict } = await build('scan-blocked', 'scan/blocked');
    expect(done.state).toMatchObject({ phase: 'failed', error: { code: 'E_GATE_BLOCKED' } });
    expect(await fetchManifestDigest(registry.endpoint, 'scan/blocked', '1')).toBeNull();
    expect(await fetchManifestDigest(registry.endpoint, 'quarantine/scan/blocked', 'scan-blocked')).toMatch(/^sha256:/);
    expect(verdict?.promoted).toBe(false);
    const g = gate(verdict);
    expect(g).toMatchObject({ outcome: 'block', code: 'VULNERABILITIES_FOUND' });
    expect(g?.reason).toContain('CVE-2099-0001 Critical in zlib 1:1.2.13.dfsg-1 (fixed in 1:1.2.13.dfsg-1+deb12u1)');
    expect(g?.scan?.blocking.map((f) => f.id)).toEqual(['CVE-2099-0001']);
    expect(g?.scan?.scanner).toMatchObject({ name: 'grype', version: 'v0.121.2' });
    grypeGates.set('scan/blocked', g);
    // The scan's findings: gzip's High (no fix) is there but does not block; glibc's is fixed already.
    const report = reports.get(verdict?.digest ?? '');
    expect(report?.ok).toBe(true);
    if (report?.ok === true) {
      expect(report.findings.map((f) => [f.id, f.package, f.fixState])).toEqual([
        ['CVE-2099-0001', 'zlib', 'fixed'],
        ['CVE-2099-0002', 'gzip', 'not-fixed'],
      ]);
      console.log(`scan of ${report.digest.slice(0, 19)}… (official/base + one layer) took ${report.durationMs} ms`);
    }
  }, 300_000);

  it('tells the tenant\'s webhook about the blocked build: CloudEvent, valid signature, retried after a failure, every attempt listed', async () => {
    const event = await notification('dev.fleet.build.blocked', 'scan-blocked');
    expect(event).toMatchObject({ specversion: '1.0', source: '/fleet/coordinator', fleettenant: 'platform', data: { buildId: 'scan-blocked', repository: 'scan/blocked' } });
    expect(JSON.stringify(event.data)).toContain('CVE-2099-0001');
    // a body altered in transit, or an old timestamp, does not verify
    const raw = receiver.received.find((r) => r.body.includes('"subject":"scan-blocked"'));
    const sig = { signature: raw?.headers[SIGNATURE_HEADER] as string, timestamp: raw?.headers[TIMESTAMP_HEADER] as string };
    expect(verifyNotification(HOOK_SECRET, raw?.body.replace('scan/blocked', 'scan/blocked2') ?? '', sig)).toBe(false);
    expect(verifyNotification(HOOK_SECRET, raw?.body ?? '', sig, { now: new Date(Date.now() + 3600_000) })).toBe(false);
    expect(verifyNotification('another-secret', raw?.body ?? '', sig)).toBe(false);
    // the receiver refused the first attempt: the second delivered it, both recorded
    const listed = await eventuallyValue(async () => {
      const r = await execa(process.execPath, [FLEET_BIN, 'notifications', '--json'], { reject: false, env: cliEnv(fleet) });
      const all = (JSON.parse(r.stdout) as unknown[]).map((d) => NotificationDelivery.parse(d)).filter((d) => d.id === event.id);
      return all.some((d) => d.outcome === 'delivered') ? all : undefined;
    }, 30_000, 'the delivered attempt in fleet notifications');
    expect(listed.map((d) => [d.attempt, d.outcome, d.httpStatus])).toEqual([[1, 'failed', 503], [2, 'delivered', 204]]);
    expect(listed[0]?.url).toBe(receiver.url);
    // over HTTP: the platform admin sees them; another tenant's reader sees none of them
    const asAdmin = (await (await adminFetch(fleet, `${fleet.coordinator.httpUrl}/v1/notifications`)).json()) as { deliveries: Array<{ id: string }> };
    expect(asAdmin.deliveries.filter((d) => d.id === event.id)).toHaveLength(2);
    const token = (await fleet.client.tokens({ op: 'create', tenant: 'payments', role: 'reader', name: 'notifications test' })).token ?? '';
    const asTenant = await fetch(`${fleet.coordinator.httpUrl}/v1/notifications`, { headers: { authorization: `Bearer ${token}` } });
    expect(asTenant.status).toBe(200);
    expect(((await asTenant.json()) as { deliveries: unknown[] }).deliveries).toEqual([]);
    const snooping = await fetch(`${fleet.coordinator.httpUrl}/v1/notifications?tenant=platform`, { headers: { authorization: `Bearer ${token}` } });
    expect(snooping.status).toBe(403);
  });

  it('promotes an image whose Critical is allowlisted for its repository, naming the entry', async () => {
    const { done, verdict } = await build('scan-allowed', 'scan/allowed/app');
    expect(done.state).toMatchObject({ phase: 'pushed' });
    expect(await fetchManifestDigest(registry.endpoint, 'scan/allowed/app', '1')).toMatch(/^sha256:/);
    const g = gate(verdict);
    expect(g).toMatchObject({ outcome: 'pass', code: 'VULNERABILITIES_OK' });
    expect(g?.reason).toMatch(/CVE-2099-0001 in zlib allowlisted until .* by sec-team: zlib inflate is never reached/);
    expect(g?.scan?.allowlisted).toMatchObject([{ cve: 'CVE-2099-0001', package: 'zlib', addedBy: 'sec-team', expired: false }]);
    grypeGates.set('scan/allowed/app', g);
  });

  it('gates a Java standard build the same way (scan time printed)', async () => {
    const { digest } = await fleet.client.uploadContext(fixture('java-plain'), null);
    await fleet.client.submit({ id: 'scan-java', kind: 'standard', standard: { runtime: 'java17', environment: 'prod' }, context: { digest }, image: { repository: 'scan/allowed/java', tags: ['1'] } });
    const done = await fleet.client.follow('scan-java', {});
    expect(done.state).toMatchObject({ phase: 'pushed' });
    if (done.state.phase !== 'pushed') return;
    const report = reports.get(done.state.digest);
    expect(report?.ok).toBe(true);
    if (report?.ok === true) console.log(`scan of the Java standard image ${report.digest.slice(0, 19)}…: ${report.durationMs} ms, ${report.findings.length} findings`);
  }, 600_000);

  it('an expired allowlist entry no longer applies: blocked, and the verdict says it expired', async () => {
    const { done, verdict } = await build('scan-expired', 'scan/expired');
    expect(done.state).toMatchObject({ phase: 'failed', error: { code: 'E_GATE_BLOCKED' } });
    expect(await fetchManifestDigest(registry.endpoint, 'scan/expired', '1')).toBeNull();
    const g = gate(verdict);
    expect(g).toMatchObject({ outcome: 'block' });
    expect(g?.reason).toMatch(/allowlist entry for CVE-2099-0001 in zlib expired/);
    expect(g?.scan?.allowlisted).toMatchObject([{ expired: true }]);
  });

  it('`fleet scan ID` shows what blocked and which allowlist entries applied or expired', async () => {
    const blocked = await execa(process.execPath, [FLEET_BIN, 'scan', 'scan-blocked'], { reject: false, env: cliEnv(fleet) });
    expect(blocked.exitCode).toBe(0);
    expect(blocked.stdout).toMatch(/^block VULNERABILITIES_FOUND/);
    expect(blocked.stdout).toMatch(/scanner grype v0\.121\.2, DB built \S+, 2 findings/);
    expect(blocked.stdout).toMatch(/BLOCKS {2}CVE-2099-0001 {2}Critical {2}zlib 1:1\.2\.13\.dfsg-1 {2}fixed in 1:1\.2\.13\.dfsg-1\+deb12u1/);
    const expired = await execa(process.execPath, [FLEET_BIN, 'scan', 'scan-expired'], { reject: false, env: cliEnv(fleet) });
    expect(expired.stdout).toMatch(/EXPIRED CVE-2099-0001 {2}zlib {2}until \S+ {2}by sec-team/);
    const allowed = await execa(process.execPath, [FLEET_BIN, 'scan', 'scan-allowed', '--json'], { reject: false, env: cliEnv(fleet) });
    expect(JSON.parse(allowed.stdout)).toMatchObject({ outcome: 'pass', scan: { allowlisted: [{ cve: 'CVE-2099-0001', expired: false }] } });
  });

  it('the DB updated with a new Critical against a released image: a vulnerable event and a notification, the release tag untouched', async () => {
    const released = await fetchManifestDigest(registry.endpoint, 'scan/allowed/app', '1');
    expect(released).toMatch(/^sha256:/);
    // the images released in this file (scan-java only when its test ran): each is rescanned once
    const releasedIds: string[] = [];
    for (const id of ['scan-allowed', 'scan-java']) if ((await fleet.client.status(id).catch(() => null))?.state.phase === 'pushed') releasedIds.push(id);
    // a newer DB: the same advisories, and a new Critical with a fix in gzip, which every image has
    await buildFixtureDb(dir, [...ADVISORIES, advisory('CVE-2099-0004', 'Critical', 'gzip', '1.12-1+deb12u1')], 'v2');
    const started = Date.now();
    const cli = await execa(process.execPath, [FLEET_BIN, 'scan', '--rescan-released'], { reject: false, env: cliEnv(fleet) });
    expect(cli.exitCode).toBe(0);
    const rescansDone = async () => {
      const text = await (await fetch(`${fleet.coordinator.httpUrl}/metrics`)).text();
      return [...text.matchAll(/^fleet_rescans_total\{[^}]*\} (\d+)/gm)].reduce((n, m) => n + Number(m[1]), 0);
    };
    const vulnerable = await eventuallyValue(
      async () => (await storedEvents(fleet.client.nc, 'scan-allowed')).find((e): e is Extract<BuildEvent, { type: 'vulnerable' }> => e.type === 'vulnerable'),
      180_000,
      'a vulnerable event for the released scan/allowed/app:1',
    );
    expect(vulnerable.findings.map((f) => [f.id, f.package, f.severity])).toEqual([['CVE-2099-0004', 'gzip', 'Critical']]);
    expect(vulnerable.references).toEqual([`${fleet.registry.host}/scan/allowed/app:1`]);
    expect(vulnerable.digest).toBe(released);
    const told = await notification('dev.fleet.image.vulnerable', `scan/allowed/app@${released ?? ''}`);
    expect(told.data).toMatchObject({ buildId: 'scan-allowed', findings: [{ id: 'CVE-2099-0004' }] });
    // nothing untagged
    expect(await fetchManifestDigest(registry.endpoint, 'scan/allowed/app', '1')).toBe(released);
    // never released (blocked): not rescanned, no vulnerable event
    expect((await storedEvents(fleet.client.nc, 'scan-blocked')).some((e) => e.type === 'vulnerable')).toBe(false);
    await eventually(async () => (await rescansDone()) >= releasedIds.length, 180_000, 'every released image rescanned');
    const seconds = (Date.now() - started) / 1000;
    console.log(`rescan of ${releasedIds.length} released image(s) (${releasedIds.join(', ')}): ${seconds.toFixed(1)} s, ${((releasedIds.length / seconds) * 60).toFixed(1)} images/minute`);
    // the DB build time is a metric
    const metrics = await (await fetch(`${fleet.coordinator.httpUrl}/metrics`)).text();
    const built = Number(/^fleet_scanner_db_built_timestamp_seconds (\S+)/m.exec(metrics)?.[1]);
    expect(Math.abs(built * 1000 - Date.now())).toBeLessThan(3600_000);
  }, 400_000);

  it('fails closed: with the DB missing the build fails with E_SCAN_UNAVAILABLE, nothing is promoted, the tenant is told', async () => {
    await rename(dbDir, `${dbDir}.away`);
    try {
      const { done } = await build('scan-no-db', 'scan/allowed/no-db');
      expect(done.state).toMatchObject({ phase: 'failed', error: { code: 'E_SCAN_UNAVAILABLE' } });
      expect(await fetchManifestDigest(registry.endpoint, 'scan/allowed/no-db', '1')).toBeNull();
      expect(await fetchManifestDigest(registry.endpoint, 'quarantine/scan/allowed/no-db', 'scan-no-db')).toMatch(/^sha256:/);
    } finally {
      await rename(`${dbDir}.away`, dbDir);
    }
    // the author hears why nothing was promoted: signed, like every notification, retried past the receiver's first 503
    const told = await notification('dev.fleet.build.scan-unavailable', 'scan-no-db');
    expect(told).toMatchObject({ source: '/fleet/coordinator', fleettenant: 'platform', data: { buildId: 'scan-no-db', repository: 'scan/allowed/no-db', tags: ['1'], code: 'E_SCAN_UNAVAILABLE' } });
    expect(String(told.data.reason)).toMatch(/no vulnerability DB at/);
    expect(String(told.data.retry)).toContain('fleet dlq retry scan-no-db');
  });

  it('fails closed on a corrupt DB too: E_SCAN_UNAVAILABLE, nothing promoted', async () => {
    await rename(dbDir, `${dbDir}.good`);
    try {
      await mkdir(join(dbDir, '6'), { recursive: true });
      await writeFile(join(dbDir, '6', 'vulnerability.db'), 'not a sqlite database');
      const { done } = await build('scan-corrupt-db', 'scan/allowed/corrupt-db');
      expect(done.state).toMatchObject({ phase: 'failed', error: { code: 'E_SCAN_UNAVAILABLE' } });
      expect(await fetchManifestDigest(registry.endpoint, 'scan/allowed/corrupt-db', '1')).toBeNull();
    } finally {
      await rm(dbDir, { recursive: true, force: true });
      await rename(`${dbDir}.good`, dbDir);
    }
  });

  it('scans the Java runtime images in reasonable time (measured, printed)', async () => {
    for (const ref of ['official/jre17:1', 'official/jdk17:1']) {
      const digest = fleet.officialImages[`${fleet.registry.host}/${ref}`] ?? fleet.officialImages[ref];
      const source = digest === undefined ? `registry:${fleet.registry.host}/${ref}` : `registry:${fleet.registry.host}/${ref.split(':')[0]}@${digest}`;
      const cache = new ScanCache();
      const started = Date.now();
      const { findings } = await scanWithGrype({ grypeBin: GRYPE, dbDir, source, insecureRegistry: true, signal: AbortSignal.timeout(300_000), cache });
      const cold = Date.now() - started;
      // the same digest against the same DB: answered from the cache (only the DB's status is read)
      const again = await scanWithGrype({ grypeBin: GRYPE, dbDir, source, insecureRegistry: true, signal: AbortSignal.timeout(300_000), cache });
      console.log(`grype scan of ${ref}: ${cold} ms cold, ${Date.now() - started - cold} ms cached, ${findings.length} findings`);
      expect(findings.map((f) => f.id)).toContain('CVE-2099-0001');
      expect(again).toMatchObject({ cached: true, findings });
    }
  }, 600_000);
});

/**
 * A Harbor scanner adapter as a site runs one (Trivy's, Clair's), here a small real HTTP server
 * speaking the Pluggable Scanner API v1.1 and serving a fixed report with the findings grype
 * makes of the tiny image under the fixture DB (zlib's Critical twice, as two binaries report it).
 */
async function startHarborAdapter() {
  const state = {
    scans: [] as Array<{ registry: { url: string }; artifact: { repository: string; digest: string } }>,
    pending: 0,
    /** when the adapter says its DB was updated (move it to make the fleet rescan) */
    dbUpdated: new Date(Date.now() - 3600_000).toISOString(),
    /** findings reported besides the fixed ones (a DB update's new advisories) */
    extra: [] as Array<{ id: string; package: string; version: string; fix_version: string; severity: string }>,
  };
  const polled = new Set<string>();
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      const json = (status: number, value: unknown, headers: Record<string, string> = {}) => res.writeHead(status, { 'content-type': 'application/json', ...headers }).end(JSON.stringify(value));
      const report = /^\/api\/v1\/scan\/([^/]+)\/report$/.exec(req.url ?? '');
      if (req.method === 'GET' && req.url === '/api/v1/metadata') {
        return json(200, {
          scanner: { name: 'Fixture Adapter', vendor: 'fleet tests', version: '1.1.0' },
          capabilities: [{ consumes_mime_types: ['application/vnd.oci.image.manifest.v1+json', 'application/vnd.docker.distribution.manifest.v2+json'], produces_mime_types: [REPORT_MIME] }],
          properties: { [DB_UPDATED_PROPERTY]: state.dbUpdated },
        });
      }
      if (req.method === 'POST' && req.url === '/api/v1/scan') {
        if (!(req.headers['content-type'] ?? '').startsWith('application/vnd.scanner.adapter.scan.request+json')) return json(415, { error: { message: 'unsupported content type' } });
        const scan = JSON.parse(body) as { registry: { url: string }; artifact: { repository: string; digest: string } };
        state.scans.push(scan);
        return json(202, { id: `scan-${state.scans.length}` });
      }
      if (req.method === 'GET' && report !== null) {
        if (req.headers.accept !== REPORT_MIME) return json(400, { error: { message: `unsupported report mime type ${req.headers.accept ?? ''}` } });
        const id = report[1] ?? '';
        const index = Number(id.replace('scan-', '')) - 1;
        const scan = state.scans[index];
        if (scan === undefined) return json(404, { error: { message: 'no such scan' } });
        // The first poll of each scan: not ready yet (the spec's 302 + Refresh-After).
        if (!polled.has(id)) {
          polled.add(id);
          state.pending++;
          return res.writeHead(302, { 'refresh-after': '1', location: req.url ?? '' }).end();
        }
        return json(200, {
          generated_at: new Date().toISOString(),
          artifact: { repository: scan.artifact.repository, digest: scan.artifact.digest, mime_type: 'application/vnd.oci.image.manifest.v1+json' },
          scanner: { name: 'Fixture Adapter', vendor: 'fleet tests', version: '1.1.0' },
          severity: 'Critical',
          vulnerabilities: [
            { id: 'CVE-2099-0002', package: 'gzip', version: '1.12-1', fix_version: '', severity: 'High', description: 'fixture', links: [] },
            { id: 'CVE-2099-0001', package: 'zlib', version: '1:1.2.13.dfsg-1', fix_version: '1:1.2.13.dfsg-1+deb12u1', severity: 'Critical', description: 'fixture', links: [] },
            { id: 'CVE-2099-0001', package: 'zlib', version: '1:1.2.13.dfsg-1', fix_version: '1:1.2.13.dfsg-1+deb12u1', severity: 'Critical', description: 'fixture (second binary)', links: [] },
            ...state.extra,
          ],
        });
      }
      json(404, { error: { message: 'no route' } });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return Object.assign(state, { server, url });
}

describe('scanning through a Harbor scanner adapter (Pluggable Scanner API v1.1)', () => {
  let fleet: LocalFleet;
  let adapter: Awaited<ReturnType<typeof startHarborAdapter>>;
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fleet-harbor-'));
    adapter = await startHarborAdapter();
    fleet = await startTestFleet({ scanners: 1, scan: { harbor: { url: adapter.url }, timeoutMs: 90_000 }, gatePolicyPath: await writeScanPolicy(dir) });
  }, 600_000);
  afterAll(async () => {
    await fleet?.stop();
    adapter?.server.close();
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  it('gives the same verdicts as grype for the same findings: blocked, and allowlisted', async () => {
    const blocked = await buildTiny(fleet, 'harbor-blocked', 'scan/blocked');
    expect(blocked.done.state).toMatchObject({ phase: 'failed', error: { code: 'E_GATE_BLOCKED' } });
    const g = vulnerabilityGate(blocked.verdict);
    expect(g).toMatchObject({ outcome: 'block', code: 'VULNERABILITIES_FOUND' });
    expect(g?.reason).toContain('CVE-2099-0001 Critical in zlib 1:1.2.13.dfsg-1 (fixed in 1:1.2.13.dfsg-1+deb12u1)');
    expect(g?.scan).toMatchObject({ scanner: { name: 'Fixture Adapter', version: '1.1.0' }, total: 2 });
    expect(g?.scan?.blocking.map((f) => f.id)).toEqual(['CVE-2099-0001']);
    const allowed = await buildTiny(fleet, 'harbor-allowed', 'scan/allowed/app');
    expect(allowed.done.state).toMatchObject({ phase: 'pushed' });
    const a = vulnerabilityGate(allowed.verdict);
    expect(a).toMatchObject({ outcome: 'pass', code: 'VULNERABILITIES_OK' });
    expect(a?.scan?.allowlisted).toMatchObject([{ cve: 'CVE-2099-0001', package: 'zlib', addedBy: 'sec-team', expired: false }]);
    // the same outcome, code, blocking findings and allowlist entries as grype's (when grype's tests ran in this file)
    const same = (x: ReturnType<typeof vulnerabilityGate>) => ({ outcome: x?.outcome, code: x?.code, blocking: x?.scan?.blocking.map((f) => [f.id, f.package, f.installed, f.fixed, f.severity, f.fixState]), allowlisted: x?.scan?.allowlisted.map((e) => [e.cve, e.package, e.expired]) });
    for (const [repo, mine] of [['scan/blocked', g], ['scan/allowed/app', a]] as const) {
      const theirs = grypeGates.get(repo);
      if (theirs !== undefined) expect(same(mine)).toEqual(same(theirs));
    }
    // the adapter was asked for the quarantined digest in the fleet's registry, and was polled past a 302
    expect(adapter.scans[0]).toMatchObject({ registry: { url: `http://${fleet.registry.host}` }, artifact: { repository: 'quarantine/scan/blocked', digest: blocked.verdict?.digest } });
    expect(adapter.pending).toBeGreaterThanOrEqual(2);
  }, 300_000);

  it('a gate scan reporting a newer DB starts a rescan by itself: the released image gets a vulnerable event, its tag stays', async () => {
    const released = await fetchManifestDigest(new RegistryClient({ host: fleet.registry.host, insecure: true }).endpoint, 'scan/allowed/app', '1');
    expect(released).toMatch(/^sha256:/);
    // the adapter's DB moves on and knows a new Critical (with a fix) in gzip
    adapter.dbUpdated = new Date().toISOString();
    adapter.extra = [{ id: 'CVE-2099-0005', package: 'gzip', version: '1.12-1', fix_version: '1.12-1+deb12u1', severity: 'Critical' }];
    // any build's gate scan now reports the newer DB (this one is blocked by the new Critical; zlib's is allowlisted here)
    const trigger = await buildTiny(fleet, 'harbor-trigger', 'scan/allowed/trigger');
    expect(vulnerabilityGate(trigger.verdict)?.scan?.blocking.map((f) => f.id)).toEqual(['CVE-2099-0005']);
    const vulnerable = await eventuallyValue(
      async () => (await storedEvents(fleet.client.nc, 'harbor-allowed')).find((e): e is Extract<BuildEvent, { type: 'vulnerable' }> => e.type === 'vulnerable'),
      120_000,
      'a vulnerable event for the released scan/allowed/app:1',
    );
    expect(vulnerable.findings.map((f) => f.id)).toEqual(['CVE-2099-0005']);
    expect(vulnerable.scanner.dbBuilt).toBe(adapter.dbUpdated);
    expect(await fetchManifestDigest(new RegistryClient({ host: fleet.registry.host, insecure: true }).endpoint, 'scan/allowed/app', '1')).toBe(released);
  }, 300_000);
});

/**
 * A scanner process killed (SIGKILL: no goodbye, its grype dies with it) while it scans: the job
 * is not acked, JetStream hands it to another scanner after the ack wait, and the build gets its
 * verdict. The second scanner's own scan outlasts the (short) ack wait, so it must keep telling
 * JetStream it is working, or the job would be delivered a third time.
 */
describe('a scanner killed mid-scan', () => {
  let fleet: LocalFleet;
  let dir: string;
  let dbDir: string;
  let killVictim: (() => void) | undefined;
  let rescuer: Awaited<ReturnType<typeof startScanner>> | undefined;
  const ACK_WAIT_MS = 4_000;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fleet-scan-kill-'));
    await chmod(dir, 0o755);
    dbDir = await buildFixtureDb(dir);
    fleet = await startTestFleet({ scanners: 0, scan: { dbDir, timeoutMs: 180_000, ackWaitMs: ACK_WAIT_MS } });
  }, 600_000);
  afterAll(async () => {
    killVictim?.();
    await rescuer?.stop();
    await fleet?.stop();
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  it('another scanner finishes the scan (JetStream redelivery), and a long scan is not delivered twice', async () => {
    const credentials = fleet.natsCredentials.scanner;
    if (credentials === undefined) throw new Error('no scanner NATS user');
    const options = { natsUrl: fleet.nats.url, natsCredentials: credentials, dbDir, workingEveryMs: 1_000 };
    const config = join(dir, 'victim.json');
    await writeFile(config, JSON.stringify({ ...options, scannerId: 'victim' }));
    let out = '';
    const victim = execa(process.execPath, ['--import', 'tsx', new URL('../../scanner/main.ts', import.meta.url).pathname, '--config', config], { reject: false, all: true, env: { FLEET_LOG_LEVEL: 'info' } });
    killVictim = () => victim.kill('SIGKILL');
    victim.all.on('data', (c: Buffer) => (out += c.toString()));
    await eventually(() => out.includes('scanner ready'), 60_000, 'the victim scanner ready');
    const { digest } = await fleet.client.uploadContext(fixture('tiny'));
    await fleet.client.submit({ id: 'scan-killed', context: { digest }, image: { repository: 'scan/killed', tags: ['1'] } });
    // the victim holds the job (delivered, not acked): kill it there
    const jsm = await jetstreamManager(fleet.client.nc);
    await eventually(async () => (await jsm.consumers.info(streams.scanJobs, consumers.scanner)).num_ack_pending === 1, 300_000, 'the victim scanning');
    victim.kill('SIGKILL');
    await victim;
    expect(out).not.toMatch(/"msg":"scanned"/);
    rescuer = await startScanner({ ...options, scannerId: 'rescuer' }, createLogger('rescuer', { pretty: false, level: 'warn' }));
    const done = await fleet.client.follow('scan-killed', {});
    expect(done.state).toMatchObject({ phase: 'failed', error: { code: 'E_GATE_BLOCKED' } });
    const events = await storedEvents(fleet.client.nc, 'scan-killed');
    const verdict = events.find((e): e is Extract<BuildEvent, { type: 'verdict' }> => e.type === 'verdict')?.verdict;
    expect(vulnerabilityGate(verdict)?.scan?.blocking.map((f) => f.id)).toEqual(['CVE-2099-0001']);
    const info = await jsm.consumers.info(streams.scanJobs, consumers.scanner);
    // two deliveries: the victim's and the rescuer's; a third would mean the rescuer's long scan was not kept alive
    expect(info.delivered.consumer_seq).toBe(2);
    expect(info.num_ack_pending).toBe(0);
  }, 600_000);
});

describe('scanning without a scanner answering', () => {
  let fleet: LocalFleet;
  beforeAll(async () => {
    fleet = await startTestFleet({ scanners: 0, scan: { dbDir: '/nonexistent', timeoutMs: 3_000 } });
  });
  afterAll(async () => {
    await fleet?.stop();
  });

  it('fails closed: no report within the timeout is E_SCAN_UNAVAILABLE, nothing promoted', async () => {
    const { digest } = await fleet.client.uploadContext(fixture('tiny'));
    await fleet.client.submit({ id: 'scan-timeout', context: { digest }, image: { repository: 'scan/timeout', tags: ['1'] } });
    const done = await fleet.client.follow('scan-timeout', {});
    expect(done.state).toMatchObject({ phase: 'failed', error: { code: 'E_SCAN_UNAVAILABLE', message: expect.stringMatching(/no vulnerability scan report within 3 s/) } });
    const registry = new RegistryClient({ host: fleet.registry.host, insecure: true });
    expect(await fetchManifestDigest(registry.endpoint, 'scan/timeout', '1')).toBeNull();
  });
});
