import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MEDIA, RegistryClient } from '../../adapters/registry-client.ts';
import { startRegistry, type Registry } from '../../deploy/local/registry.ts';
import { generateSigstoreKeyPair, openSigstorePrivateKey } from '../../signing/sigstore-key.ts';
import { signImage } from '../../signing/sigstore.ts';
import { resolveBases } from '../../worker/base-digests.ts';
import { BaseResolver } from '../../worker/base-resolver.ts';
import { verifyOfficialBases } from '../../worker/official-bases.ts';

/**
 * How many requests the worker sends a real registry before a build: the base check, the
 * platform signature check and the digest pinning, which share one base resolver. A counting
 * proxy in front of Debian's docker-registry sees every one (method and path); the image names
 * point at the proxy. Before the resolver, each step read for itself: 4 requests for the
 * standard build below (HEAD, GET of the base, 2 signature reads), 7 for the two-stage one
 * (2 HEADs, 3 GETs, 2 signature reads).
 */

let root: string;
let registry: Registry;
let proxy: Server;
let host: string;
let publicKeyPem: string;
/** every request the proxy forwarded, as `METHOD path` */
const seen: string[] = [];
/** what each build's preparation cost, printed at the end */
const counts: string[] = [];

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'fleet-base-resolver-'));
  registry = await startRegistry(join(root, 'registry'));
  const [registryHost = '', registryPort = ''] = registry.host.split(':');
  proxy = createServer((req, res) => {
    seen.push(`${req.method ?? ''} ${req.url ?? ''}`);
    const upstream = request({ host: registryHost, port: Number(registryPort), method: req.method, path: req.url, headers: req.headers }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    upstream.on('error', () => res.writeHead(502).end());
    req.pipe(upstream);
  });
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  host = `127.0.0.1:${(proxy.address() as AddressInfo).port}`;

  // Two tiny images through the proxy: a signed official base and a tenant's custom base.
  const client = new RegistryClient({ host, insecure: true });
  const keys = generateSigstoreKeyPair('platform');
  publicKeyPem = keys.publicKeyPem;
  for (const repository of ['official/base', 'app/custom']) {
    const layer = await client.putBlob(repository, new TextEncoder().encode(`layer of ${repository}`));
    const config = await client.putBlob(repository, new TextEncoder().encode(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } })));
    const manifest = JSON.stringify({
      schemaVersion: 2,
      mediaType: MEDIA.ociManifest,
      config: { mediaType: MEDIA.ociConfig, digest: config, size: 0 },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: layer, size: `layer of ${repository}`.length }],
    });
    const digest = await client.putManifest(repository, '1', { bytes: new TextEncoder().encode(manifest), mediaType: MEDIA.ociManifest });
    if (repository.startsWith('official/')) await signImage(client, repository, digest, `${host}/${repository}:1`, openSigstorePrivateKey(keys.privateKeyPem, 'platform'));
  }
}, 60_000);

afterAll(async () => {
  if (counts.length > 0) console.info(`registry requests before a build:\n${counts.join('\n')}`);
  await new Promise<void>((resolve) => (proxy === undefined ? resolve() : proxy.close(() => resolve())));
  await registry?.stop();
  await rm(root, { recursive: true, force: true });
});

/** What the job runner does with a build's bases before the builder starts (worker/job-runner.ts, build()). */
async function prepare(dockerfile: string, buildArgs: Record<string, string>): Promise<{ pinned: Record<string, string>; bases: { name: string; digest: string }[] }> {
  const signal = AbortSignal.timeout(30_000);
  const registryOf = (h: string): RegistryClient => new RegistryClient({ host: h, insecure: true });
  const resolver = new BaseResolver(registryOf, signal);
  await resolver.check(dockerfile, buildArgs, [{ registry: host }]);
  const { buildArgs: pinned } = await verifyOfficialBases(dockerfile, buildArgs, registryOf(host), publicKeyPem, resolver);
  const bases = await resolveBases(dockerfile, buildArgs, pinned, registryOf, signal, resolver);
  return { pinned, bases };
}

/** The requests one preparation sends, by kind: base manifests (HEAD, GET) and signature reads. */
async function counted(name: string, dockerfile: string, buildArgs: Record<string, string>) {
  seen.length = 0;
  const result = await prepare(dockerfile, buildArgs);
  const baseManifests = seen.filter((r) => /\/manifests\/1$/.test(r));
  const signatures = seen.filter((r) => /\.sig$/.test(r) || /\/blobs\//.test(r));
  counts.push(`${name}: ${seen.length} requests (${baseManifests.length} base manifest: ${baseManifests.map((r) => r.split(' ')[0]).join(', ')}; ${signatures.length} signature)`);
  return { result, total: seen.length, baseManifests, signatures };
}

describe('registry requests before a build', () => {
  it('a standard build on a pinned official base: the base manifest once, then its signature', async () => {
    const { result, total, baseManifests, signatures } = await counted('standard (FROM ${FLEET_BASE})', 'ARG FLEET_BASE\nFROM ${FLEET_BASE}\nRUN true\n', { FLEET_BASE: `${host}/official/base:1` });
    expect(result.pinned.FLEET_BASE).toMatch(new RegExp(`^${host}/official/base@sha256:[a-f0-9]{64}$`));
    expect(result.bases).toEqual([{ name: `${host}/official/base:1`, digest: result.pinned.FLEET_BASE?.split('@')[1] }]);
    expect(baseManifests).toEqual([`GET /v2/official/base/manifests/1`]);
    expect(signatures).toHaveLength(2);
    expect(total).toBe(3);
  });

  it('a two-stage custom build on an official and a custom base: each base manifest once', async () => {
    const dockerfile = ['ARG FLEET_REGISTRY', 'FROM ${FLEET_REGISTRY}/official/base:1 AS build', 'RUN true', 'FROM ${FLEET_REGISTRY}/app/custom:1', 'COPY --from=build /x /x'].join('\n');
    const { result, total, baseManifests, signatures } = await counted('custom two-stage (official + custom base)', dockerfile, { FLEET_REGISTRY: host });
    expect(result.bases.map((b) => b.name)).toEqual([`${host}/official/base:1`, `${host}/app/custom:1`]);
    expect(baseManifests.sort()).toEqual([`GET /v2/app/custom/manifests/1`, `GET /v2/official/base/manifests/1`]);
    expect(signatures).toHaveLength(2);
    expect(total).toBe(4);
  });
});
