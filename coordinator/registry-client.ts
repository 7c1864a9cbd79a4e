import { createHash } from 'node:crypto';
import { ErrorCode, FleetError } from '../protocol/index.ts';

const MANIFEST_TYPES = [
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
].join(', ');

export interface RegistryEndpoint {
  host: string;
  insecure: boolean;
}

/**
 * Reads a manifest from the registry and returns the sha256 of its bytes: the digest is computed
 * here, not taken from the registry's header or the worker's word.
 */
export async function fetchManifestDigest(
  registry: RegistryEndpoint,
  repository: string,
  reference: string,
  signal?: AbortSignal,
): Promise<string | null> {
  const url = `${registry.insecure ? 'http' : 'https'}://${registry.host}/v2/${repository}/manifests/${reference}`;
  let res: Response;
  try {
    res = await fetch(url, { headers: { accept: MANIFEST_TYPES }, signal: signal ?? AbortSignal.timeout(15_000) });
  } catch (e) {
    throw new FleetError(ErrorCode.E_REGISTRY_UNAVAILABLE, `registry ${registry.host} unreachable: ${String(e)}`, undefined, { cause: e });
  }
  if (res.status === 404) return null;
  if (!res.ok) {
    throw new FleetError(ErrorCode.E_REGISTRY_UNAVAILABLE, `registry ${registry.host} answered ${res.status} for ${repository}:${reference}`);
  }
  const body = new Uint8Array(await res.arrayBuffer());
  return `sha256:${createHash('sha256').update(body).digest('hex')}`;
}
