import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { ErrorCode, FleetError } from '../../protocol/index.ts';
import { KANIKO_BUILD, KANIKO_IMAGE, OFFICIAL_IMAGES_VERSION } from '../versions.ts';
import { RegistryClient, type RegistryEndpoint } from '../../adapters/registry-client.ts';
import { openSigstorePrivateKey } from '../../signing/sigstore-key.ts';
import { signImage } from '../../signing/sigstore.ts';
import { cacheDir } from '../../adapters/environment.ts';

/**
 * The platform's own images, built once by the bootstrap into OCI layouts in the cache (the
 * layout tag is the reference with "/" and ":" turned into "-"): the official bases and the
 * JaCoCo payload (scripts/build-official-images), and the kaniko builder (scripts/build-kaniko-image).
 */
export const PLATFORM_IMAGES: readonly { ref: string; layout: string }[] = [
  ...['official/base:1', 'official/jre17:1', 'official/jdk17:1', 'platform/jacoco:0.8.6'].map((ref) => ({ ref, layout: `official-${OFFICIAL_IMAGES_VERSION}` })),
  { ref: KANIKO_IMAGE, layout: `kaniko-${KANIKO_BUILD}` },
];

/**
 * Publishes the platform images into a registry and signs each with the platform key (sigstore
 * attachments), so workers and gates can verify them. Returns reference → manifest digest.
 * `only` limits it to some images (a test publishing an unsigned impostor signs nothing).
 */
export async function publishPlatformImages(
  registry: RegistryEndpoint,
  opts: { sign?: boolean; only?: readonly string[]; /** docker config.json for a registry that wants credentials */ authFile?: string | undefined } = {},
): Promise<Record<string, string>> {
  const keyDir = join(cacheDir(), 'keys');
  const key = opts.sign === false
    ? null
    : openSigstorePrivateKey(await readFile(join(keyDir, 'official.key'), 'utf8'), await readFile(join(keyDir, 'official.pass'), 'utf8'));
  const client = new RegistryClient(registry);
  const digests: Record<string, string> = {};
  for (const { ref, layout } of PLATFORM_IMAGES.filter((i) => opts.only?.includes(i.ref) ?? true)) {
    const layoutTag = ref.replace(/[/:]/g, '-');
    await execa('skopeo', [
      'copy', '--quiet', '--retry-times', '3',
      ...(registry.insecure ? ['--dest-tls-verify=false'] : []),
      ...(opts.authFile === undefined ? [] : ['--dest-authfile', opts.authFile]),
      `oci:${join(cacheDir(), 'images', layout)}:${layoutTag}`, `docker://${registry.host}/${ref}`,
    ]);
    const [repository, tag] = ref.split(':') as [string, string];
    const manifest = await client.manifest(repository, tag);
    if (manifest === null) throw new FleetError(ErrorCode.E_PUSH_FAILED, `${ref} is not in ${registry.host} after the copy`);
    if (key !== null) await signImage(client, repository, manifest.digest, `${registry.host}/${ref}`, key);
    digests[ref] = manifest.digest;
  }
  return digests;
}
