import { describe, expect, it } from 'vitest';
import { MEDIA, sha256, type Manifest, type RegistryClient } from '../../../adapters/registry-client.ts';
import { ErrorCode, isFleetError } from '../../../protocol/index.ts';
import { readImage } from '../../../coordinator/gates/image-reader.ts';

/** A registry holding one manifest and its config, as bytes (readImage's only calls). */
function registryWith(manifest: unknown, config: unknown): RegistryClient {
  const bytes = (v: unknown): Uint8Array => new TextEncoder().encode(typeof v === 'string' ? v : JSON.stringify(v));
  const m: Manifest = { digest: sha256(bytes(manifest)), mediaType: MEDIA.ociManifest, bytes: bytes(manifest) };
  return { manifest: () => Promise.resolve(m), blob: () => Promise.resolve(bytes(config)) } as unknown as RegistryClient;
}

const CONFIG_DESCRIPTOR = { mediaType: MEDIA.ociConfig, digest: `sha256:${'c'.repeat(64)}`, size: 2 };

describe('reading the image the gates check', () => {
  it('reads an image of no layers, whose manifest says "layers": null (BuildKit and kaniko, FROM scratch with metadata only)', async () => {
    const image = await readImage(registryWith({ schemaVersion: 2, config: CONFIG_DESCRIPTOR, layers: null }, { config: { User: '1000' }, rootfs: { type: 'layers', diff_ids: null } }), 'app/x', 'sha256:x');
    expect(image.layers).toEqual([]);
    expect(image.config.rootfs.diff_ids).toEqual([]);
  });

  it.each([
    ['a manifest that is not JSON', 'not json', {}],
    ['a manifest without its config', { schemaVersion: 2, layers: [] }, {}],
    ['a config without its rootfs', { schemaVersion: 2, config: CONFIG_DESCRIPTOR, layers: [] }, { config: {} }],
  ])('fails the build at once on %s (final, not retried as an internal error)', async (_what, manifest, config) => {
    const err = await readImage(registryWith(manifest, config), 'app/x', 'sha256:x').then(() => null, (e: unknown) => e);
    expect(isFleetError(err, ErrorCode.E_BUILD_FAILED), String(err)).toBe(true);
    expect(String((err as Error).message)).toMatch(/^invalid image (manifest|config) app\/x@/);
  });
});
