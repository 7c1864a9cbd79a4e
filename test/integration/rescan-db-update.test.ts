import { access, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LocalFleet } from '../../deploy/local/fleet.ts';
import { RegistryClient, fetchManifestDigest } from '../../adapters/registry-client.ts';
import { cacheBin } from '../../adapters/environment.ts';
import { DEFAULT_POLICY_PATH } from '../../coordinator/gates/policy.ts';
import { PermissionViolationError, type NatsConnection } from '@nats-io/nats-core';
import { ScannerDbUpdated, encode, subjects, type BuildEvent } from '../../protocol/index.ts';
import { connectNats } from '../../adapters/nats.ts';
import { createLogger } from '../../adapters/logger.ts';
import { storedEvents } from '../../client/index.ts';
import { fixture, startTestFleet } from '../helpers/fleet.ts';
import { eventually, eventuallyValue } from '../helpers/eventually.ts';
import { advisory } from '../helpers/advisories.ts';
import { startWebhookReceiver, type WebhookReceiver } from '../helpers/webhook-receiver.ts';
import { startDbMirror, type DbMirror } from './scan-db-mirror-server.ts';

const HOUR = 3600_000;
const HOOK_SECRET = 'whsec-rescan-0123456789';

/** Against packages installed in official/base:1. Not fixed: a finding the policy lets through */
const HIGH_NOT_FIXED = advisory('CVE-2099-0101', 'High', 'gzip', '');
/** published later: blocks, and the released image has it */
const NEW_CRITICAL = advisory('CVE-2099-0102', 'Critical', 'zlib', '1:1.2.13.dfsg-1+deb12u1');

/** whole seconds: grype-fixture-db stamps the DB at a second */
const hoursAgo = (h: number): Date => new Date(Math.floor((Date.now() - h * HOUR) / 1000) * 1000);

/**
 * Rescans started by the scanner's own DB update: a real fleet whose scanner keeps its grype DB
 * current from a mirror (dbUpdate); a newer DB on the mirror reaches the released images without
 * any build (the scanner announces it on fleet.v1.scanner.db-updated).
 */
describe('rescan when the scanner DB moves', () => {
  let fleet: LocalFleet;
  let dir: string;
  let mirror: DbMirror;
  let receiver: WebhookReceiver;
  const metric = async (re: RegExp): Promise<number> => {
    const text = await (await fetch(`${fleet.coordinator.httpUrl}/metrics`)).text();
    return [...text.matchAll(re)].reduce((n, m) => n + Number(m[1]), 0);
  };
  const rescans = (outcome?: string) => metric(outcome === undefined ? /^fleet_rescans_total\{[^}]*\} (\S+)/gm : new RegExp(`^fleet_rescans_total\\{outcome="${outcome}"\\} (\\S+)`, 'gm'));
  const vulnerableEvents = async (id: string) => (await storedEvents(fleet.client.nc, id)).filter((e): e is Extract<BuildEvent, { type: 'vulnerable' }> => e.type === 'vulnerable');

  beforeAll(async () => {
    await access(join(cacheBin(), 'grype'));
    await access(join(cacheBin(), 'grype-fixture-db'));
    dir = await mkdtemp(join(tmpdir(), 'fleet-rescan-db-'));
    mirror = await startDbMirror(join(dir, 'mirror'));
    await mirror.publish('v1', [HIGH_NOT_FIXED], hoursAgo(3));
    const policy = JSON.parse(await readFile(DEFAULT_POLICY_PATH, 'utf8')) as Record<string, unknown>;
    policy.vulnerabilities = { blockAtOrAbove: 'Critical', countNotFixed: false, unknownAs: 'High', allowlist: [] };
    const policyPath = join(dir, 'gate-policy.json');
    await writeFile(policyPath, JSON.stringify(policy));
    receiver = await startWebhookReceiver();
    const secretFile = join(dir, 'hook-secret');
    await writeFile(secretFile, `${HOOK_SECRET}\n`, { mode: 0o600 });
    fleet = await startTestFleet({
      scanners: 1,
      // an empty DB dir: the scanner fills it from the mirror at start, then asks every 2 s
      scan: { dbDir: join(dir, 'grype-db'), dbUpdate: { url: mirror.url, everyMs: 2_000 }, timeoutMs: 90_000, rescanPerMinute: 600 },
      gatePolicyPath: policyPath,
      platform: { notifications: { url: receiver.url, secretFile } },
    });
  }, 600_000);
  afterAll(async () => {
    await fleet?.stop();
    await receiver?.close();
    await new Promise((r) => mirror?.server.close(r));
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  it('a newer DB with a new Critical reaches the released image on the scanner\'s schedule: a vulnerable event and a notification, no build, the tag untouched', async () => {
    const { digest: context } = await fleet.client.uploadContext(fixture('tiny'));
    await fleet.client.submit({ id: 'rescan-db', context: { digest: context }, buildArgs: { N: 'rescan-db' }, image: { repository: 'rescan/app', tags: ['1'] } });
    const done = await fleet.client.follow('rescan-db', {});
    expect(done.state.phase).toBe('pushed');
    const released = await fetchManifestDigest(new RegistryClient({ host: fleet.registry.host, insecure: true }).endpoint, 'rescan/app', '1');
    expect(released).toMatch(/^sha256:/);
    expect(await vulnerableEvents('rescan-db')).toEqual([]);

    const v2 = hoursAgo(2);
    await mirror.publish('v2', [HIGH_NOT_FIXED, NEW_CRITICAL], v2);
    const published = Date.now();
    const [vulnerable] = await eventuallyValue(async () => {
      const found = await vulnerableEvents('rescan-db');
      return found.length > 0 ? found : undefined;
    }, 180_000, 'a vulnerable event for the released rescan/app:1');
    const latency = (Date.now() - published) / 1000;
    expect(vulnerable?.findings.map((f) => [f.id, f.package, f.severity])).toEqual([['CVE-2099-0102', 'zlib', 'Critical']]);
    expect(vulnerable?.scanner.dbBuilt).toBe(v2.toISOString());
    expect(vulnerable?.references).toEqual([`${fleet.registry.host}/rescan/app:1`]);
    expect(vulnerable?.digest).toBe(released);

    const told = await receiver.signed(HOOK_SECRET, (e) => e.type === 'dev.fleet.image.vulnerable', 'a signed dev.fleet.image.vulnerable notification');
    expect(told.subject).toBe(`rescan/app@${released ?? ''}`);
    expect(told.data).toMatchObject({ buildId: 'rescan-db', findings: [{ id: 'CVE-2099-0102' }] });
    // nothing untagged, and the only build is the first one (no build carried the new DB in)
    expect(await fetchManifestDigest(new RegistryClient({ host: fleet.registry.host, insecure: true }).endpoint, 'rescan/app', '1')).toBe(released);
    expect((await storedEvents(fleet.client.nc, 'rescan-db')).filter((e) => e.type === 'verdict')).toHaveLength(1);
    expect(await rescans()).toBe(1);
    console.log(`DB published on the mirror → vulnerable event: ${latency.toFixed(1)} s (scanner asks every 2 s)`);
  }, 400_000);

  it('an announcement is only a DB build time: the same DB again scans nothing, one from the future is ignored, the next real DB rescans once', async () => {
    const before = await rescans();
    const announce = (dbBuilt: string) => {
      const a: ScannerDbUpdated = { scannerId: 'test-admin', dbBuilt, at: new Date().toISOString() };
      fleet.client.nc.publish(subjects.scannerDbUpdated, encode(a));
    };
    // the DB the fleet knows (every image already rescanned at it), and one "built" tomorrow that would mask every real update
    const known = await metric(/^fleet_scanner_db_built_timestamp_seconds (\S+)/gm);
    announce(new Date(known * 1000).toISOString());
    announce(new Date(Date.now() + 24 * HOUR).toISOString());
    await fleet.client.nc.flush();
    // a real newer DB with the same findings: rescanned once more, nothing new to tell
    const v3 = hoursAgo(1);
    await mirror.publish('v3', [HIGH_NOT_FIXED, NEW_CRITICAL], v3);
    await eventually(async () => (await rescans('unchanged')) >= 1, 180_000, 'the image rescanned at the v3 DB');
    expect(await metric(/^fleet_scanner_db_built_timestamp_seconds (\S+)/gm)).toBe(v3.getTime() / 1000);
    expect(await rescans()).toBe(before + 1);
    expect(await vulnerableEvents('rescan-db')).toHaveLength(1);
  }, 300_000);

  it('only the scanner role may announce: the server refuses a worker\'s announcement, the scanner user\'s goes through', async () => {
    const seen: string[] = [];
    const watch = fleet.client.nc.subscribe(subjects.scannerDbUpdated);
    void (async () => {
      for await (const m of watch) seen.push(ScannerDbUpdated.parse(JSON.parse(new TextDecoder().decode(m.data))).scannerId);
    })();
    await fleet.client.nc.flush();
    const opened: NatsConnection[] = [];
    try {
      const connectAs = async (user: string) => {
        const credentials = fleet.natsCredentials[user];
        if (credentials === undefined) throw new Error(`no NATS user ${user}`);
        const nc = await connectNats(fleet.nats.url, `rescan-test-${user}`, credentials, createLogger('rescan-test', { level: 'silent' }));
        opened.push(nc);
        const violations: string[] = [];
        void (async () => {
          for await (const st of nc.status()) if (st.type === 'error' && st.error instanceof PermissionViolationError) violations.push(`${st.error.operation} ${st.error.subject}`);
        })();
        return { nc, violations };
      };
      const known = new Date((await metric(/^fleet_scanner_db_built_timestamp_seconds (\S+)/gm)) * 1000).toISOString();
      const announcement = (scannerId: string): Uint8Array => encode({ scannerId, dbBuilt: known, at: new Date().toISOString() } satisfies ScannerDbUpdated);
      const worker = await connectAs('worker-default');
      worker.nc.publish(subjects.scannerDbUpdated, announcement('forged-by-a-worker'));
      await worker.nc.flush();
      const scanner = await connectAs('scanner');
      scanner.nc.publish(subjects.scannerDbUpdated, announcement('the-scanner-user'));
      await scanner.nc.flush();
      await eventually(() => seen.includes('the-scanner-user'), 10_000, 'the scanner user\'s announcement delivered');
      await eventually(() => worker.violations.includes(`publish ${subjects.scannerDbUpdated}`), 10_000, 'the server to refuse the worker\'s announcement');
      expect(seen).toEqual(['the-scanner-user']);
      expect(scanner.violations).toEqual([]);
    } finally {
      watch.unsubscribe();
      await Promise.all(opened.map((nc) => nc.close()));
    }
  }, 60_000);
});
