import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LocalFleet } from '../../deploy/local/fleet.ts';
import type { BuildEvent, BuildView } from '../../protocol/index.ts';
import { RegistryClient, fetchManifestDigest } from '../../adapters/registry-client.ts';
import { generateSigstoreKeyPair, openSigstorePrivateKey } from '../../signing/sigstore-key.ts';
import { signImage } from '../../signing/sigstore.ts';
import { FLEET_BIN, archivedLog, cliEnv, fixture, startTestFleet, adminFetch } from '../helpers/fleet.ts';
import { storedEvents } from '../../client/index.ts';
import { readFile } from 'node:fs/promises';
import { platformPublicKeyPath } from '../../adapters/environment.ts';
import { GateCache, loadGatePolicy, runGates } from '../../coordinator/gates/index.ts';

/** Compliance gates on real images: each blocked image stays in quarantine and is never promoted. */
describe('gates', () => {
  let fleet: LocalFleet;
  let registry: RegistryClient;
  beforeAll(async () => {
    fleet = await startTestFleet({ workers: 2 });
    registry = new RegistryClient({ host: fleet.registry.host, insecure: true });
  });
  afterAll(async () => {
    await fleet?.stop();
  });

  async function blocked(app: string, id: string, extra: { kind?: 'custom' | 'custom-base'; repository?: string; buildArgs?: Record<string, string> } = {}) {
    const { digest } = await fleet.client.uploadContext(fixture(app));
    const repository = extra.repository ?? `app/${app}`;
    await fleet.client.submit({
      id,
      ...(extra.kind === undefined ? {} : { kind: extra.kind }),
      context: { digest },
      ...(extra.buildArgs === undefined ? {} : { buildArgs: extra.buildArgs }),
      image: { repository, tags: ['1'] },
    });
    const done: BuildView = await fleet.client.follow(id, {});
    expect(done.state).toMatchObject({ phase: 'failed', error: { code: 'E_GATE_BLOCKED' } });
    // Never promoted: the release tag does not exist; the image is in quarantine only.
    expect(await fetchManifestDigest(registry.endpoint, repository, '1')).toBeNull();
    expect(await fetchManifestDigest(registry.endpoint, `quarantine/${repository}`, id)).toMatch(/^sha256:/);
    const events = await storedEvents(fleet.client.nc, id);
    const verdict = events.find((e): e is Extract<BuildEvent, { type: 'verdict' }> => e.type === 'verdict');
    expect(verdict?.verdict.promoted).toBe(false);
    return { done, verdict: verdict?.verdict, events };
  }

  it('gate blocks a custom base that does not derive from an official base, naming the first diverging layer', async () => {
    const { done, verdict } = await blocked('custom-base-foreign', 'foreign-base', { kind: 'custom-base', repository: 'bases/foreign' });
    const gate = verdict?.gates.find((g) => g.gate === 'official-base');
    expect(gate).toMatchObject({ outcome: 'block', code: 'OFFICIAL_BASE_DIVERGES' });
    expect(gate?.reason).toMatch(/layer 1 is sha256:[0-9a-f]{12}…, closest official official\/base:1 has sha256:[0-9a-f]{12}…/);
    if (done.state.phase === 'failed') expect(done.state.error.details?.gates?.map((g) => g.code)).toContain('OFFICIAL_BASE_DIVERGES');
  });

  it('gate blocks an image whose USER resolves to uid 0 through its /etc/passwd, and `fleet status` says why', async () => {
    const { verdict } = await blocked('runs-as-root', 'as-root');
    expect(verdict?.gates.find((g) => g.gate === 'non-root')).toMatchObject({ outcome: 'block', code: 'USER_IS_ROOT', reason: expect.stringContaining('"root" is uid 0') });
    // Mode 3: the official-base gate only reports, and it passes here anyway.
    expect(verdict?.gates.find((g) => g.gate === 'official-base')).toMatchObject({ outcome: 'pass' });
    const status = await execa(process.execPath, [FLEET_BIN, 'status', 'as-root'], { reject: false, env: cliEnv(fleet) });
    expect(status.exitCode).toBe(1);
    expect(status.stdout + status.stderr).toMatch(/E_GATE_BLOCKED[\s\S]*USER_IS_ROOT/);
    const http = await adminFetch(fleet, `${fleet.coordinator.httpUrl}/v1/builds/as-root`);
    expect(await http.json()).toMatchObject({ build: { state: { phase: 'failed', error: { code: 'E_GATE_BLOCKED', details: { gates: [{ code: 'USER_IS_ROOT' }] } } } } });
  });

  it('gate blocks a token in ENV and never echoes its value', async () => {
    const { done, verdict, events } = await blocked('secret-env', 'secret-env');
    expect(verdict?.gates.find((g) => g.gate === 'no-secrets')).toMatchObject({ outcome: 'block', code: 'SECRET_IN_ENV', reason: expect.stringContaining('ENV API_TOKEN') });
    const value = 'tok-live-7f3a9c2e55b14d0e';
    expect(JSON.stringify(events)).not.toContain(value);
    expect(JSON.stringify(done)).not.toContain(value);
  });

  it('gate blocks a secret build arg that leaks into the image history, without echoing it', async () => {
    const value = 'hunter2-correct-horse';
    const { done, verdict, events } = await blocked('secret-arg', 'secret-arg', { buildArgs: { DB_PASSWORD: value } });
    expect(verdict?.gates.find((g) => g.gate === 'no-secrets')).toMatchObject({ outcome: 'block', code: 'SECRET_IN_HISTORY', reason: expect.stringContaining('build arg DB_PASSWORD') });
    expect(JSON.stringify(events)).not.toContain(value);
    expect(JSON.stringify(done.state)).not.toContain(value);
    expect(await archivedLog(fleet, 'secret-arg')).not.toContain(value);
  });

  it('gate blocks a private key file copied into a layer', async () => {
    const { verdict } = await blocked('private-key-file', 'key-file');
    const gate = verdict?.gates.find((g) => g.gate === 'no-secrets');
    expect(gate).toMatchObject({ outcome: 'block', code: 'SECRET_IN_FILE' });
    expect(gate?.reason).toMatch(/\/home\/app\/\.ssh\/id_ed25519 is a SSH private key \(layer \d+\)/);
  });

  it('refuses to build on an unsigned or wrongly signed official base with E_BASE_UNSIGNED', async () => {
    // Variants of official images: one unsigned (same layers, an annotation makes it a new
    // digest), one signed with a key that is not the platform's.
    const base = await registry.manifest('official/base', '1');
    if (base === null) throw new Error('official/base:1 missing');
    const unsigned = { ...(JSON.parse(Buffer.from(base.bytes).toString('utf8')) as object), annotations: { 'io.fleet.test': 'unsigned copy' } };
    await registry.putManifest('official/base', 'unsigned', { mediaType: base.mediaType, bytes: Buffer.from(JSON.stringify(unsigned)) });
    const foreign = await registry.manifest('official/jre17', '1');
    if (foreign === null) throw new Error('official/jre17:1 missing');
    const impostor = 'official/impostor';
    const parsed = JSON.parse(Buffer.from(foreign.bytes).toString('utf8')) as { config: { digest: string }; layers: { digest: string }[] };
    for (const d of [parsed.config.digest, ...parsed.layers.map((l) => l.digest)]) await registry.mountBlob(impostor, d, 'official/jre17');
    await registry.putManifest(impostor, '1', foreign);
    const other = generateSigstoreKeyPair('not-the-platform');
    await signImage(registry, impostor, foreign.digest, `${fleet.registry.host}/${impostor}:1`, openSigstorePrivateKey(other.privateKeyPem, 'not-the-platform'));

    const { digest } = await fleet.client.uploadContext(fixture('unsigned-base'));
    for (const [id, baseRef] of [['unsigned-base', 'official/base:unsigned'], ['wrong-key-base', `${impostor}:1`]] as const) {
      await fleet.client.submit({ id, context: { digest }, buildArgs: { BASE: baseRef }, image: { repository: 'app/unsigned', tags: [id] } });
      const done = await fleet.client.follow(id, {});
      expect(done.state).toMatchObject({ phase: 'failed', attempt: 1, error: { code: 'E_BASE_UNSIGNED' } });
      if (done.state.phase === 'failed') expect(done.state.error.message).toContain(baseRef);
      const events = await storedEvents(fleet.client.nc, id);
      expect(events.map((e) => e.type)).toEqual(['queued', 'started', 'failed']);
      expect(await archivedLog(fleet, id)).not.toContain('should never run on an unsigned base');
    }
  });

  it('reaches the same verdict whatever the gates remember: cold, then from remembered layers and base /etc/passwd', async () => {
    const policy = await loadGatePolicy();
    const signingPublicKey = await readFile(platformPublicKeyPath(), 'utf8');
    // A secret file (found in an app layer, named with its layer number) and a user resolved
    // through the official base's /etc/passwd (the app's layers have none).
    for (const [app, id] of [['private-key-file', 'key-file-cache'], ['runs-as-root', 'as-root-cache']] as const) {
      const { verdict } = await blocked(app, id);
      const digest = verdict?.digest ?? '';
      const cache = new GateCache();
      const run = () => runGates({ registry, policy, signingPublicKey, kind: 'custom', quarantineRepository: `quarantine/app/${app}`, digest, repository: `app/${app}`, cache });
      const cold = await run();
      const warm = await run();
      expect(cold.gates).toEqual(verdict?.gates.filter((g) => g.gate !== 'vulnerabilities'));
      expect(warm).toEqual(cold);
      expect(cold.promoted).toBe(false);
    }
  });
});
