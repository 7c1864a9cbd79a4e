import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { ErrorCode, FleetError } from '../../protocol/index.ts';
import { RegistryClient, type RegistryEndpoint } from '../../runtime/registry-client.ts';
import { openSigstorePrivateKey } from '../../runtime/sigstore-key.ts';
import { signImage } from '../../runtime/sigstore.ts';

/**
 * The platform's own images, built once by scripts/build-official-images into an OCI layout in
 * the cache (the layout tag is the reference with "/" and ":" turned into "-").
 */
export const PLATFORM_IMAGES = ['official/base:1', 'official/jre17:1', 'official/jdk17:1', 'platform/jacoco:0.8.6'] as const;
export type PlatformImage = (typeof PLATFORM_IMAGES)[number];

const CACHE_DIR = process.env.FLEET_CACHE_DIR ?? '/var/cache/fleet';

/** Where the bootstrap leaves the layout and the signing key. */
export async function platformImagePaths(): Promise<{ layout: string; keyDir: string }> {
  const versions = await readFile(new URL('../../scripts/versions.env', import.meta.url), 'utf8');
  const version = /^OFFICIAL_IMAGES_VERSION=(\S+)$/m.exec(versions)?.[1];
  if (version === undefined) throw new FleetError(ErrorCode.E_INTERNAL, 'scripts/versions.env names no OFFICIAL_IMAGES_VERSION');
  return { layout: join(CACHE_DIR, 'images', `official-${version}`), keyDir: join(CACHE_DIR, 'keys') };
}

/**
 * Publishes the platform images into a registry and signs each with the platform key (sigstore
 * attachments), so workers and gates can verify them. Returns reference → manifest digest.
 * `only` limits it to some images (a test publishing an unsigned impostor signs nothing).
 */
export async function publishPlatformImages(
  registry: RegistryEndpoint,
  opts: { sign?: boolean; only?: readonly PlatformImage[] } = {},
): Promise<Record<string, string>> {
  const { layout, keyDir } = await platformImagePaths();
  const key = opts.sign === false
    ? null
    : openSigstorePrivateKey(await readFile(join(keyDir, 'official.key'), 'utf8'), await readFile(join(keyDir, 'official.pass'), 'utf8'));
  const client = new RegistryClient(registry);
  const digests: Record<string, string> = {};
  for (const ref of opts.only ?? PLATFORM_IMAGES) {
    const layoutTag = ref.replace(/[/:]/g, '-');
    await execa('skopeo', [
      'copy', '--quiet', '--retry-times', '3',
      ...(registry.insecure ? ['--dest-tls-verify=false'] : []),
      `oci:${layout}:${layoutTag}`, `docker://${registry.host}/${ref}`,
    ]);
    const [repository, tag] = ref.split(':') as [string, string];
    const manifest = await client.manifest(repository, tag);
    if (manifest === null) throw new FleetError(ErrorCode.E_PUSH_FAILED, `${ref} is not in ${registry.host} after the copy`);
    if (key !== null) await signImage(client, repository, manifest.digest, `${registry.host}/${ref}`, key);
    digests[ref] = manifest.digest;
  }
  return digests;
}
