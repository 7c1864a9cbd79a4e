import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MEDIA, RegistryClient, sha256 } from '../../adapters/registry-client.ts';
import { startRegistry, type Registry } from '../../deploy/local/registry.ts';
import { isFleetError } from '../../protocol/index.ts';

const CONFIG = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } }));

function manifestOf(layers: readonly Uint8Array[]): Buffer {
  return Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MEDIA.ociManifest,
      config: { mediaType: MEDIA.ociConfig, digest: sha256(CONFIG), size: CONFIG.length },
      layers: layers.map((l) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha256(l), size: l.length })),
    }),
  );
}

describe('a real registry', () => {
  let root: string;
  let registry: Registry;
  let client: RegistryClient;

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'fleet-registry-client-'));
    registry = await startRegistry(join(root, 'registry'));
    client = new RegistryClient({ host: registry.host, insecure: true });
  });
  afterAll(async () => {
    await registry.stop();
    await rm(root, { recursive: true, force: true });
  });

  it('takes a manifest whose blobs were uploaded to the repository', async () => {
    const layer = Buffer.from('a layer');
    await client.putBlob('app/one', layer);
    await client.putBlob('app/one', CONFIG);
    const bytes = manifestOf([layer]);
    expect(await client.putManifest('app/one', 'v1', { bytes, mediaType: MEDIA.ociManifest })).toBe(sha256(bytes));
    expect((await client.manifest('app/one', 'v1'))?.digest).toBe(sha256(bytes));
  });

  it('refuses a manifest naming a blob the repository lacks, with the registry’s own code, after its last try', async () => {
    await client.putBlob('app/two', CONFIG);
    const put = client.putManifest('app/two', 'v1', { bytes: manifestOf([Buffer.from('never uploaded')]), mediaType: MEDIA.ociManifest });
    const error: unknown = await put.catch((e: unknown) => e);
    expect(isFleetError(error, 'E_REGISTRY_UNAVAILABLE')).toBe(true);
    expect((error as Error).message).toMatch(/answered 400 \(MANIFEST_BLOB_UNKNOWN\) to PUT manifest app\/two:v1$/);
  });
});

/**
 * distribution's filesystem store rewrites a blob's link in the repository each time the blob is
 * uploaded there again, truncating it first: a manifest put landing in between is refused with
 * MANIFEST_BLOB_UNKNOWN (distribution/distribution#4489). That window is microseconds wide against
 * the real registry, so this registry stand-in answers exactly that a set number of times.
 */
describe('a registry failing now and then', () => {
  let server: Server;
  let host: string;
  /** the next answers, in order; then 201 to a PUT, and the manifest below to a GET */
  const answers: Array<{ status: number; body: unknown }> = [];
  const served = manifestOf([]);
  let puts = 0;
  let gets = 0;

  beforeAll(async () => {
    server = createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        if (req.method === 'PUT') puts += 1;
        else gets += 1;
        const answer = answers.shift();
        if (answer !== undefined) res.writeHead(answer.status, { 'content-type': 'application/json' }).end(JSON.stringify(answer.body));
        else if (req.method === 'PUT') res.writeHead(201).end();
        else res.writeHead(200, { 'content-type': MEDIA.ociManifest }).end(served);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await new Promise((resolve) => server.close(resolve));
  });

  const blobUnknown = { status: 400, body: { errors: [{ code: 'DIGEST_INVALID' }, { code: 'MANIFEST_BLOB_UNKNOWN', detail: 'sha256:00' }] } };

  it('tries a manifest put again while the registry says a blob it holds is unknown', async () => {
    puts = 0;
    answers.push(blobUnknown, blobUnknown);
    const bytes = manifestOf([]);
    expect(await new RegistryClient({ host, insecure: true }).putManifest('app/x', 'v1', { bytes, mediaType: MEDIA.ociManifest })).toBe(sha256(bytes));
    expect(puts).toBe(3);
  });

  it('gives up after its last try, naming the codes', async () => {
    puts = 0;
    answers.push(blobUnknown, blobUnknown, blobUnknown, blobUnknown, blobUnknown);
    const put = new RegistryClient({ host, insecure: true }).putManifest('app/x', 'v1', { bytes: manifestOf([]), mediaType: MEDIA.ociManifest });
    await expect(put).rejects.toThrow(/answered 400 \(DIGEST_INVALID, MANIFEST_BLOB_UNKNOWN\) to PUT manifest app\/x:v1/);
    expect(puts).toBe(5);
  });

  it('does not try again a manifest the registry finds invalid', async () => {
    puts = 0;
    answers.push({ status: 400, body: { errors: [{ code: 'MANIFEST_INVALID' }] } });
    const put = new RegistryClient({ host, insecure: true }).putManifest('app/x', 'v1', { bytes: manifestOf([]), mediaType: MEDIA.ociManifest });
    await expect(put).rejects.toThrow(/answered 400 \(MANIFEST_INVALID\)/);
    expect(puts).toBe(1);
  });

  it('reads again a manifest the registry failed to read, and gives a lasting failure back', async () => {
    const client = new RegistryClient({ host, insecure: true });
    gets = 0;
    answers.push({ status: 500, body: { errors: [{ code: 'UNKNOWN' }] } });
    expect((await client.manifest('app/x', 'v1'))?.digest).toBe(sha256(served));
    expect(gets).toBe(2);
    gets = 0;
    answers.push(...Array.from({ length: 3 }, () => ({ status: 503, body: {} })));
    expect(await client.manifestStatus('app/x', 'v1')).toBe(503);
    expect(gets).toBe(3);
  });
});
