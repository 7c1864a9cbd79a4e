import { mkdir, mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { sha256 } from '../../../adapters/registry-client.ts';
import { keepReachable, linkBlobs, taggedDigest } from '../../../worker/builders/oci-layout.ts';

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

/** A layout with blobs (content → digest) and an index naming `manifests` (digest, tag). */
async function layout(blobs: string[], manifests: { digest: string; tag?: string }[]): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'oci-layout-test-'));
  dirs.push(dir);
  await mkdir(join(dir, 'blobs', 'sha256'), { recursive: true });
  for (const b of blobs) await writeFile(join(dir, 'blobs', 'sha256', sha256(b).slice('sha256:'.length)), b);
  const index = { schemaVersion: 2, manifests: manifests.map((m) => ({ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: m.digest, size: 1, ...(m.tag === undefined ? {} : { annotations: { 'org.opencontainers.image.ref.name': m.tag } }) })) };
  await writeFile(join(dir, 'index.json'), JSON.stringify(index));
  return dir;
}

describe('the worker\'s OCI layouts', () => {
  it('taggedDigest names the manifest under a tag; null without layout or tag', async () => {
    const dir = await layout([], [{ digest: sha256('m1') }, { digest: sha256('m2'), tag: 'latest' }]);
    expect(await taggedDigest(dir, 'latest')).toBe(sha256('m2'));
    expect(await taggedDigest(dir, 'other')).toBeNull();
    expect(await taggedDigest(join(dir, 'nope'), 'latest')).toBeNull();
  });

  it('keepReachable keeps what the index reaches (nested indexes, configs, layers) and deletes the rest and half-written uploads', async () => {
    const config = 'config';
    const layer = 'layer-1';
    const manifest = JSON.stringify({ schemaVersion: 2, config: { digest: sha256(config) }, layers: [{ digest: sha256(layer) }] });
    const nested = JSON.stringify({ schemaVersion: 2, manifests: [{ digest: sha256(manifest) }] });
    const stale = ['old-layer', JSON.stringify({ schemaVersion: 2, config: { digest: sha256('old-config') }, layers: [{ digest: sha256('old-layer') }] }), 'old-config'];
    const dir = await layout([config, layer, manifest, nested, ...stale], [{ digest: sha256(nested) }]);
    await mkdir(join(dir, 'ingest', 'x'), { recursive: true });
    expect(await keepReachable(dir)).toBe(true);
    const left = (await readdir(join(dir, 'blobs', 'sha256'))).map((h) => `sha256:${h}`).sort();
    expect(left).toEqual([config, layer, manifest, nested].map(sha256).sort());
    expect(await readdir(dir)).not.toContain('ingest');
  });

  it('keepReachable says false (and deletes nothing) without a readable index', async () => {
    const dir = await layout(['a'], []);
    await writeFile(join(dir, 'index.json'), 'not json');
    expect(await keepReachable(dir)).toBe(false);
    expect(await readdir(join(dir, 'blobs', 'sha256'))).toHaveLength(1);
  });

  it('linkBlobs hard-links the blobs a layout lacks (same inode), leaves the ones it has, and skips the ones the source lacks', async () => {
    const from = await layout(['base-layer', 'other'], []);
    const to = await layout(['other'], []);
    await linkBlobs(from, [sha256('base-layer'), sha256('other'), sha256('missing')], to);
    const path = (dir: string, c: string): string => join(dir, 'blobs', 'sha256', sha256(c).slice('sha256:'.length));
    expect((await stat(path(to, 'base-layer'))).ino).toBe((await stat(path(from, 'base-layer'))).ino);
    expect((await stat(path(to, 'other'))).ino).not.toBe((await stat(path(from, 'other'))).ino);
    expect(await readdir(join(to, 'blobs', 'sha256'))).toHaveLength(2);
  });
});
