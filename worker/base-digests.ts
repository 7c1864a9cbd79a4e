import { ErrorCode, FleetError, type BaseImage } from '../protocol/index.ts';
import type { RegistryClient } from '../adapters/registry-client.ts';
import { fromImages, instructions } from './official-bases.ts';
import { baseUses } from './base-policy.ts';
import { BaseResolver } from './base-resolver.ts';

/** An image reference split the way the distribution API addresses it. */
export interface ImageRef {
  /** the registry's API host (Docker Hub's short names go to registry-1.docker.io) */
  host: string;
  repository: string;
  tag: string;
  digest?: string;
}

const DIGEST_SUFFIX = /@(sha256:[a-f0-9]{64})$/;

/**
 * Splits `host/path:tag@digest` with the Docker rules: the first component is a registry host only
 * when it has a `.` or `:` or is `localhost`; otherwise the image is on Docker Hub (one-component
 * names under `library/`).
 */
export function parseImageRef(image: string): ImageRef {
  const digest = DIGEST_SUFFIX.exec(image)?.[1];
  let rest = digest === undefined ? image : image.slice(0, image.length - digest.length - 1);
  const slash = rest.indexOf('/');
  const first = slash < 0 ? '' : rest.slice(0, slash);
  let host = 'registry-1.docker.io';
  if (first !== '' && (first.includes('.') || first.includes(':') || first === 'localhost')) {
    host = first === 'docker.io' || first === 'index.docker.io' ? host : first;
    rest = rest.slice(slash + 1);
  }
  const colon = rest.lastIndexOf(':');
  let repository = colon > rest.lastIndexOf('/') ? rest.slice(0, colon) : rest;
  const tag = colon > rest.lastIndexOf('/') ? rest.slice(colon + 1) : 'latest';
  if (host === 'registry-1.docker.io' && !repository.includes('/')) repository = `library/${repository}`;
  return { host, repository, tag, ...(digest === undefined ? {} : { digest }) };
}

/**
 * Every FROM image of the Dockerfile (then every COPY --from / RUN --mount=from image) resolved to
 * the manifest digest the build uses, for the report (provenance and rebuilds read it).
 * `buildArgs` are the request's args; `pinnedArgs` are the ones handed to the builder, where
 * verified official bases are already `name@digest`, so those cost no registry call and name
 * exactly what was verified. The others come from `resolver`, the build's, which already read
 * them for the base check; alone, a resolver of its own reads each once. The name stays the tag
 * form the Dockerfile asked for: that is what a base update moves.
 */
export async function resolveBases(
  dockerfile: string,
  buildArgs: Readonly<Record<string, string>>,
  pinnedArgs: Readonly<Record<string, string>>,
  registry: (host: string) => RegistryClient,
  signal?: AbortSignal,
  resolver: BaseResolver = new BaseResolver(registry, signal),
): Promise<BaseImage[]> {
  const digestOf = async (image: string): Promise<string> => {
    const ref = parseImageRef(image);
    const digest = ref.digest ?? (await resolver.manifest(image))?.digest;
    if (digest === undefined) throw new FleetError(ErrorCode.E_BASE_NOT_FOUND, `base image ${image} does not exist in ${ref.host}`);
    return digest;
  };
  const named = fromImages(dockerfile, buildArgs);
  const pinned = fromImages(dockerfile, pinnedArgs);
  const bases: BaseImage[] = [];
  for (const [i, from] of named.entries()) {
    // Only a pinned FROM differs from its name, and it carries its digest: what is read is the name.
    const digest = await digestOf(pinned[i]?.image ?? from.image);
    if (!bases.some((b) => b.name === from.image && b.digest === digest)) bases.push({ name: from.image, digest });
  }
  // COPY --from=<image> and RUN --mount=from=<image> pull an image too: resolved the same way, so a
  // sandboxed builder imports it by digest and provenance names it (no build args there: refused).
  for (const use of baseUses(dockerfile, buildArgs)) {
    if (/^FROM\s/i.test(use.text) || bases.some((b) => b.name === use.image)) continue;
    bases.push({ name: use.image, digest: await digestOf(use.image) });
  }
  return bases;
}

/**
 * The image the final stage (or `target`) is built on, following `FROM <stage>` back to an image:
 * the base the OCI `org.opencontainers.image.base.*` annotations name. Null for a final stage
 * on `scratch`. Read with the same instruction reader and build-arg expansion as the bases
 * (heredoc bodies skipped); stage names match case-insensitively, as in the Dockerfile frontend.
 */
export function finalStageBase(dockerfile: string, buildArgs: Readonly<Record<string, string>>, target?: string): string | null {
  const images = new Map(fromImages(dockerfile, buildArgs).map((f) => [f.line, f.image]));
  const stages: { name: string | undefined; from: string; image: string | null }[] = [];
  for (const { text, line } of instructions(dockerfile)) {
    const [keyword = '', ...rest] = text.split(/\s+/);
    if (!/^FROM$/i.test(keyword)) continue;
    const operands = rest.filter((w) => !w.startsWith('--'));
    const name = operands.length >= 3 && operands[1]?.toLowerCase() === 'as' ? operands[2]?.toLowerCase() : undefined;
    stages.push({ name, from: (operands[0] ?? '').toLowerCase(), image: images.get(line) ?? null });
  }
  let at = target === undefined ? stages.length - 1 : stages.findIndex((st) => st.name === target.toLowerCase());
  for (let hops = 0; at >= 0 && hops <= stages.length; hops++) {
    const stage = stages[at];
    if (stage === undefined) return null;
    if (stage.image !== null) return stage.image;
    // not an image: an earlier stage (follow it) or scratch (no base)
    at = stages.slice(0, at).findLastIndex((st) => st.name === stage.from);
  }
  return null;
}
