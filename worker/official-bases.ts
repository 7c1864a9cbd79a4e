import { ErrorCode, FleetError } from '../protocol/index.ts';
import type { RegistryClient } from '../adapters/registry-client.ts';
import { verifyImageSignature } from '../signing/sigstore.ts';

/** Platform namespaces whose images must carry the platform's signature before a build uses them. */
const SIGNED_NAMESPACES = ['official/', 'platform/'];

interface FromLine {
  /** the image text as written, e.g. `${FLEET_BUILD_BASE}` */
  raw: string;
  /** after build-arg expansion */
  image: string;
}

/**
 * Reads the images a Dockerfile's FROM lines name, with build args expanded (ARG defaults before
 * the first FROM, overridden by the build's args). Stage names are left out.
 */
export function fromImages(dockerfile: string, buildArgs: Readonly<Record<string, string>>): FromLine[] {
  const lines = dockerfile.replace(/\\\r?\n/g, ' ').split(/\r?\n/);
  const args: Record<string, string> = {};
  const stages = new Set<string>();
  const found: FromLine[] = [];
  let seenFrom = false;
  for (const line of lines) {
    const arg = /^\s*ARG\s+([A-Za-z_][A-Za-z0-9_]*)(?:=(\S*))?/i.exec(line);
    if (arg?.[1] !== undefined && !seenFrom) {
      args[arg[1]] = buildArgs[arg[1]] ?? stripQuotes(arg[2] ?? '');
      continue;
    }
    const from = /^\s*FROM\s+(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?/i.exec(line);
    if (from?.[1] === undefined) continue;
    seenFrom = true;
    const image = from[1].replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)/g, (_, a: string | undefined, b: string | undefined) => args[a ?? b ?? ''] ?? '');
    if (!stages.has(image.toLowerCase()) && image !== 'scratch') found.push({ raw: from[1], image });
    if (from[2] !== undefined) stages.add(from[2].toLowerCase());
  }
  return found;
}

function stripQuotes(v: string): string {
  return v.replace(/^"(.*)"$/, '$1').replace(/^'(.*)'$/, '$1');
}

/**
 * Verifies the platform signature of every official (and platform service) image the build pulls
 * from `registry`, before the builder sees any of them; an unsigned or wrongly signed one fails
 * the build with E_BASE_UNSIGNED. A FROM that is exactly one build arg (the standard template's
 * FLEET_* bases) is pinned to the verified digest, so the builder pulls what was verified.
 * Returns the build args to use.
 */
export async function verifyOfficialBases(
  dockerfile: string,
  buildArgs: Readonly<Record<string, string>>,
  registry: RegistryClient,
  publicKeyPem: string,
  signal?: AbortSignal,
): Promise<{ buildArgs: Record<string, string>; verified: string[] }> {
  const pinned: Record<string, string> = { ...buildArgs };
  const verified: string[] = [];
  const host = registry.endpoint.host;
  for (const from of fromImages(dockerfile, buildArgs)) {
    if (!from.image.startsWith(`${host}/`)) continue;
    const path = from.image.slice(host.length + 1);
    if (!SIGNED_NAMESPACES.some((ns) => path.startsWith(ns))) continue;
    const at = path.indexOf('@');
    const colon = path.lastIndexOf(':');
    const repository = at >= 0 ? path.slice(0, at) : colon >= 0 ? path.slice(0, colon) : path;
    const reference = at >= 0 ? path.slice(at + 1) : colon >= 0 ? path.slice(colon + 1) : 'latest';
    const digest = await verifiedDigest(registry, repository, reference, publicKeyPem, signal);
    verified.push(`${from.image} = ${digest}`);
    const whole = /^\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?$/.exec(from.raw);
    if (whole?.[1] !== undefined && whole[1].startsWith('FLEET_') && whole[1] in pinned) pinned[whole[1]] = `${host}/${repository}@${digest}`;
  }
  return { buildArgs: pinned, verified };
}

/**
 * The manifest digest of a platform image, once its platform signature checks out; otherwise
 * E_BASE_UNSIGNED naming the image and why.
 */
export async function verifiedDigest(
  registry: RegistryClient,
  repository: string,
  reference: string,
  publicKeyPem: string,
  signal?: AbortSignal,
): Promise<string> {
  const image = `${registry.endpoint.host}/${repository}${reference.startsWith('sha256:') ? '@' : ':'}${reference}`;
  const manifest = await registry.manifest(repository, reference, signal);
  if (manifest === null) throw new FleetError(ErrorCode.E_BASE_UNSIGNED, `platform image ${image} does not exist in ${registry.endpoint.host}`);
  const check = await verifyImageSignature(registry, repository, manifest.digest, publicKeyPem);
  if (!check.ok) throw new FleetError(ErrorCode.E_BASE_UNSIGNED, `refusing to use ${image}: ${check.reason}`);
  return manifest.digest;
}
