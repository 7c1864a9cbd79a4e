import { generateKeyPairSync } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LocalFleet } from '../../deploy/local/fleet.ts';
import { platformPublicKeyPath } from '../../adapters/environment.ts';
import { RegistryClient, sha256 } from '../../adapters/registry-client.ts';
import { CYCLONEDX_JSON } from '../../coordinator/provenance/sbom.ts';
import { BUILDER_KINDS, DSSE_ENVELOPE_MEDIA_TYPE, IN_TOTO_PAYLOAD_TYPE, SLSA_PROVENANCE_V1, type BuilderKind, type BuildView } from '../../protocol/index.ts';
import { BASE_DIGEST_ANNOTATION, BASE_NAME_ANNOTATION } from '../../worker/builders/base-annotations.ts';
import { attachmentTagOf, prepareAttachment, putPrepared, readAttachment } from '../../signing/attachments.ts';
import { DsseEnvelope, signDsse } from '../../signing/dsse.ts';
import { verifyProvenance } from '../../signing/provenance-check.ts';
import { FLEET_BIN, cliEnv, fixture, startTestFleet } from '../helpers/fleet.ts';

let fleet: LocalFleet;
let registry: RegistryClient;
let publicKeyPem: string;
/** the promoted build of each builder's pool; the provenance tests read buildah's */
const builds = new Map<BuilderKind, BuildView & { state: { phase: 'pushed' } }>();
let built: BuildView & { state: { phase: 'pushed' } };

beforeAll(async () => {
  fleet = await startTestFleet({ workers: 1, coordinator: { pools: ['buildkit', 'kaniko'] } });
  for (const builder of ['buildkit', 'kaniko'] as const) await fleet.addWorker({ pool: builder, builder });
  registry = new RegistryClient({ host: fleet.registry.host, insecure: true });
  publicKeyPem = await readFile(platformPublicKeyPath(), 'utf8');
  const { digest } = await fleet.client.uploadContext(fixture('tiny'));
  // One build per builder, at once. A build arg's value may be a secret: provenance records its name only.
  for (const builder of BUILDER_KINDS) {
    await fleet.client.submit({ id: `prov-${builder}`, context: { digest }, pool: builder === 'buildah' ? 'default' : builder, image: { repository: 'prov/tiny', tags: [builder] }, buildArgs: { N: 'value-never-in-provenance' } });
  }
  for (const builder of BUILDER_KINDS) {
    const done = await fleet.client.follow(`prov-${builder}`, {});
    if (done.state.phase !== 'pushed') throw new Error(`prov-${builder} ended ${JSON.stringify(done.state)}`);
    builds.set(builder, done as typeof built);
  }
  built = builds.get('buildah') ?? (undefined as never);
  // three real builds at once on a shared 2-core machine
}, 600_000);
afterAll(async () => {
  await fleet?.stop();
});

/** The standalone verifier a consumer without the fleet runs (plain Node, the public key only). */
function standalone(digest: string) {
  const script = new URL('../../scripts/verify-provenance.mjs', import.meta.url).pathname;
  return execa('node', [script, '--key', platformPublicKeyPath(), '--insecure', `${fleet.registry.host}/prov/tiny@${digest}`], { reject: false });
}

/** `fleet provenance …` as a user runs it. */
function cli(...args: string[]) {
  return execa('node', [FLEET_BIN, 'provenance', ...args], { env: cliEnv(fleet), reject: false });
}

describe('provenance', () => {
  it('the build record names every base by digest and summarises the signed attestation', async () => {
    const base = fleet.officialImages['official/base:1'];
    expect(built.state.bases).toEqual([{ name: `${fleet.registry.host}/official/base:1`, digest: base }]);
    expect(built.state.provenance).toMatchObject({ predicateType: SLSA_PROVENANCE_V1, attestation: { storedAs: 'tag' } });
    // distribution 2.8 has no referrers API: the attestation is under the cosign tag scheme.
    expect(await registry.referrers('prov/tiny', built.state.digest)).toBeNull();
    const tagged = await registry.manifest('prov/tiny', attachmentTagOf(built.state.digest, 'att'));
    expect(built.state.provenance?.attestation.reference).toBe(`${fleet.registry.host}/prov/tiny@${tagged?.digest ?? 'none'}`);
    // finishedAt is taken when the gates end; the record is updated once the SBOM, the signed
    // attestation and the release tags are in the registry.
    for (const [builder, b] of builds) console.log(`${builder}: SBOM + attestation + promotion took ${Date.parse(b.updatedAt) - Date.parse(b.state.finishedAt)} ms`);
  });

  it('the attestation verifies with the platform public key and names the request, context, bases, builder and gates', async () => {
    const { statement } = await verifyProvenance(registry, 'prov/tiny', built.state.digest, publicKeyPem);
    expect(statement.subject).toEqual([{ name: `${fleet.registry.host}/prov/tiny`, digest: { sha256: built.state.digest.slice(7) } }]);
    const p = statement.predicate;
    expect(p.buildDefinition.externalParameters.request).toMatchObject({ id: 'prov-buildah', tenant: 'platform', kind: 'custom', repository: 'prov/tiny', buildArgNames: ['N'] });
    expect(JSON.stringify(statement)).not.toContain('value-never-in-provenance');
    const deps = p.buildDefinition.resolvedDependencies;
    expect(deps[0]).toMatchObject({ name: 'context', digest: { sha256: built.request.context.digest.slice(7) } });
    expect(deps.slice(1)).toEqual([expect.objectContaining({ name: `${fleet.registry.host}/official/base:1`, digest: { sha256: fleet.officialImages['official/base:1']?.slice(7) } })]);
    expect(p.runDetails.builder.version).toMatchObject({ builder: 'buildah', pool: 'default', workerId: fleet.workers[0]?.workerId });
    expect(p.runDetails.metadata).toMatchObject({ invocationId: 'prov-buildah/attempt-1' });
    expect(Date.parse(p.runDetails.metadata?.startedOn ?? '')).toBeLessThanOrEqual(Date.parse(p.runDetails.metadata?.finishedOn ?? ''));
    const gates = p.runDetails.byproducts?.find((b) => b.name === 'gate-verdict')?.annotations?.gates;
    expect(gates).toEqual(expect.arrayContaining([expect.objectContaining({ gate: 'non-root', outcome: 'pass' })]));
  });

  it('fleet provenance verifies by build id and by reference', async () => {
    const byId = await cli('prov-buildah', '--json');
    expect(byId.exitCode, byId.stderr).toBe(0);
    expect(JSON.parse(byId.stdout)).toMatchObject({ verified: true, image: `${fleet.registry.host}/prov/tiny@${built.state.digest}` });
    const byRef = await cli(`${fleet.registry.host}/prov/tiny:buildah`);
    expect(byRef.exitCode, byRef.stderr).toBe(0);
    expect(byRef.stdout).toContain('signature    verified');
    expect(byRef.stdout).toContain(`official/base:1@${fleet.officialImages['official/base:1'] ?? 'none'}`);
    const alone = await standalone(built.state.digest);
    expect(alone.exitCode, alone.stderr).toBe(0);
    expect(JSON.parse(alone.stdout)).toMatchObject({ predicateType: SLSA_PROVENANCE_V1 });
  });

  it('fleet provenance refuses a tampered attestation and one signed by another key', async () => {
    const stored = await readAttachment(registry, 'prov/tiny', built.state.digest, 'att', DSSE_ENVELOPE_MEDIA_TYPE);
    const envelope = DsseEnvelope.parse(JSON.parse(Buffer.from(stored?.layers[0]?.bytes ?? []).toString('utf8')));
    const statement = JSON.parse(Buffer.from(envelope.payload, 'base64').toString('utf8')) as { predicate: { buildDefinition: { resolvedDependencies: { digest: { sha256: string } }[] } } };
    const dep = statement.predicate.buildDefinition.resolvedDependencies[1];
    if (dep !== undefined) dep.digest.sha256 = 'f'.repeat(64);
    const forged = Buffer.from(JSON.stringify(statement));
    const manifest = await registry.manifest('prov/tiny', built.state.digest);
    const subject = { digest: built.state.digest, mediaType: manifest?.mediaType ?? '', size: manifest?.bytes.length ?? 0 };
    const replace = (env: DsseEnvelope) =>
      putPrepared(registry, prepareAttachment(registry.endpoint.host, 'prov/tiny', subject, 'att', DSSE_ENVELOPE_MEDIA_TYPE, { mediaType: DSSE_ENVELOPE_MEDIA_TYPE, bytes: Buffer.from(JSON.stringify(env)) }));

    // the platform's signature over the original, with the payload changed
    await replace({ ...envelope, payload: forged.toString('base64') });
    const tampered = await cli(built.id);
    expect(tampered.exitCode).toBe(1);
    expect(tampered.stderr).toMatch(/E_ATTESTATION_INVALID: .*no signature verifies/);
    expect((await standalone(built.state.digest)).stderr).toMatch(/REFUSED .*no signature verifies/);

    // a well-formed attestation, signed by a key that is not the platform's
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    await replace(signDsse(IN_TOTO_PAYLOAD_TYPE, forged, privateKey));
    const otherKey = await cli(`${fleet.registry.host}/prov/tiny@${built.state.digest}`, '--json');
    expect(otherKey.exitCode).toBe(1);
    expect(JSON.parse(otherKey.stdout)).toMatchObject({ kind: 'error', error: { code: 'E_ATTESTATION_INVALID' } });

    // put back, the original verifies again: the refusals were about the bytes, not the image
    await replace(envelope);
    expect((await cli(built.id)).exitCode).toBe(0);
  });
});

describe('SBOM', () => {
  it('a CycloneDX SBOM of the image\'s Debian packages is attached next to it and named, by digest, in the signed provenance', async () => {
    expect(built.state.provenance?.sbom).toMatchObject({ storedAs: 'tag', format: 'CycloneDX 1.5 JSON' });
    const sbom = await readAttachment(registry, 'prov/tiny', built.state.digest, 'sbom', CYCLONEDX_JSON);
    const bytes = Buffer.from(sbom?.layers[0]?.bytes ?? []);
    const bom = JSON.parse(bytes.toString('utf8')) as { bomFormat: string; metadata: { component: { version: string } }; components: { name: string; purl: string }[] };
    expect(bom).toMatchObject({ bomFormat: 'CycloneDX', specVersion: '1.5', metadata: { component: { version: built.state.digest } } });
    // official/base is Debian minbase: dpkg lists itself and base-files
    expect(bom.components.map((c) => c.name)).toEqual(expect.arrayContaining(['base-files', 'dpkg']));
    expect(bom.components.find((c) => c.name === 'dpkg')?.purl).toMatch(/^pkg:deb\/debian\/dpkg@[^?]+\?arch=/);
    const { statement } = await verifyProvenance(registry, 'prov/tiny', built.state.digest, publicKeyPem);
    expect(statement.predicate.runDetails.byproducts).toContainEqual(expect.objectContaining({ name: 'sbom', digest: { sha256: sha256(bytes).slice(7) } }));
  });

  it('the base’s layers are read for the SBOMs while the builds run, once for the three; after the push only the apps’ own', async () => {
    const layersOf = async (repository: string, digest: string): Promise<string[]> => {
      const manifest = await registry.manifest(repository, digest);
      return (JSON.parse(Buffer.from(manifest?.bytes ?? []).toString('utf8')) as { layers: { digest: string }[] }).layers.map((l) => l.digest);
    };
    const baseLayers = new Set(await layersOf('official/base', fleet.officialImages['official/base:1'] ?? ''));
    const appLayers = new Set<string>();
    for (const b of builds.values()) for (const layer of await layersOf('prov/tiny', b.state.digest)) if (!baseLayers.has(layer)) appLayers.add(layer);
    const metrics = await (await fetch(`${fleet.coordinator.httpUrl}/metrics`)).text();
    const reads = (when: string): number => Number(new RegExp(`^fleet_sbom_layers_read_total\\{when="${when}"\\} (\\d+)$`, 'm').exec(metrics)?.[1] ?? 0);
    // Every builder's image shares the base's layer blobs, so the SBOMs found them read already.
    expect({ ahead: reads('ahead'), sbom: reads('sbom') }).toEqual({ ahead: baseLayers.size, sbom: appLayers.size });
  });
});

describe.each(BUILDER_KINDS)('base annotations: %s', (builder) => {
  it(`base annotations (${builder}): the promoted manifest names the final stage's base by tag and digest`, async () => {
    const done = builds.get(builder);
    const manifest = await registry.manifest('prov/tiny', builder);
    expect(manifest?.digest).toBe(done?.state.digest);
    const parsed = JSON.parse(Buffer.from(manifest?.bytes ?? []).toString('utf8')) as { mediaType: string; annotations?: Record<string, string> };
    expect(parsed.mediaType).toBe('application/vnd.oci.image.manifest.v1+json');
    expect(parsed.annotations).toMatchObject({
      [BASE_NAME_ANNOTATION]: `${fleet.registry.host}/official/base:1`,
      [BASE_DIGEST_ANNOTATION]: fleet.officialImages['official/base:1'],
    });
  });
});
