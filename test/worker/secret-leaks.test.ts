import { randomBytes } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { sha256, type RegistryClient } from '../../adapters/registry-client.ts';
import { ErrorCode } from '../../protocol/index.ts';
import { secretInImage } from '../../worker/secret-leaks.ts';

const SECRET = 'npm_0123456789abcdef-secret';

/** A registry holding one image: its config and gzipped layers (the calls secretInImage makes). */
function imageWith(config: string, layers: Buffer[]): { registry: RegistryClient; layerDigests: string[] } {
  const blobs = new Map<string, Buffer>([[sha256(config), Buffer.from(config)]]);
  const layerDigests = layers.map((l) => {
    const gz = gzipSync(l);
    blobs.set(sha256(gz), gz);
    return sha256(gz);
  });
  const manifest = Buffer.from(JSON.stringify({ config: { digest: sha256(config) }, layers: layerDigests.map((digest) => ({ digest, mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip' })) }));
  const blob = (_repo: string, digest: string): Buffer => blobs.get(digest) ?? Buffer.alloc(0);
  const registry = {
    manifest: () => Promise.resolve({ digest: sha256(manifest), mediaType: 'application/vnd.oci.image.manifest.v1+json', bytes: manifest }),
    blob: (repo: string, digest: string) => Promise.resolve(blob(repo, digest)),
    // small chunks, so a value may straddle two of them
    blobStream: (repo: string, digest: string) => {
      const bytes = blob(repo, digest);
      return Promise.resolve(new ReadableStream<Uint8Array>({
        start(c) {
          for (let i = 0; i < bytes.length; i += 1000) c.enqueue(bytes.subarray(i, i + 1000));
          c.close();
        },
      }));
    },
  } as unknown as RegistryClient;
  return { registry, layerDigests };
}

const secrets = new Map([['npm_token', Buffer.from(SECRET)]]);
const check = (registry: RegistryClient, skip: string[] = []) => secretInImage(registry, 'quarantine/app', 'sha256:x', new Set(skip), secrets, AbortSignal.timeout(5_000));

describe("the build's own secret values in its image", () => {
  it('finds a value in an app layer, wherever the chunks of the stream cut it, naming the layer but never the value', async () => {
    const noise = randomBytes(300_000);
    const layer = Buffer.concat([noise.subarray(0, 131_067), Buffer.from(SECRET), noise.subarray(131_067)]);
    const { registry } = imageWith('{"config":{}}', [randomBytes(5000), layer]);
    const found = await check(registry);
    expect(found?.code).toBe(ErrorCode.E_GATE_BLOCKED);
    expect(found?.message).toContain('the value of build secret npm_token is in layer 2');
    expect(found?.message).not.toContain(SECRET);
    expect(found?.details?.gates).toEqual([{ gate: 'no-secrets', code: 'SECRET_IN_FILE', reason: expect.stringContaining('layer 2') as string }]);
  });

  it('finds a value in the config (an ENV, a label, the history)', async () => {
    const { registry } = imageWith(JSON.stringify({ config: { Env: [`TOKEN=${SECRET}`] } }), [randomBytes(100)]);
    expect((await check(registry))?.message).toContain('is in the image config');
  });

  it("reads no base layer, and passes an image without the value", async () => {
    const { registry, layerDigests } = imageWith('{}', [Buffer.from(`base ${SECRET}`), randomBytes(1000)]);
    expect(await check(registry, layerDigests.slice(0, 1))).toBeNull();
  });

  it('does not search values too short to mean anything', async () => {
    const { registry } = imageWith('{"a":"x"}', [Buffer.from('abc')]);
    expect(await secretInImage(registry, 'quarantine/app', 'sha256:x', new Set(), new Map([['short', Buffer.from('abc')]]), AbortSignal.timeout(5_000))).toBeNull();
  });
});
