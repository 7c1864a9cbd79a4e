import { ErrorCode, FleetError, type AllowedBase } from '../protocol/index.ts';
import { fromImages, instructions, stageNames } from './official-bases.ts';

/**
 * Where a build's bases may come from, checked by the worker before any builder pulls one:
 * every FROM (after build args) and every COPY --from that names an image rather than a stage
 * must be allowed by the job's policy (E_BASE_NOT_ALLOWED, naming the line). No network here:
 * that each allowed base exists is the base resolver's check (base-resolver.ts), the same on
 * every builder.
 *
 * Checked here rather than by the coordinator at intake: a custom build's Dockerfile is in its
 * context in S3, which only the worker downloads; the coordinator puts the tenant's policy in
 * the job instead.
 */

/** Docker Hub's names for itself, as a FROM may write them (its API host is the base resolver's business). */
export const DOCKER_HUB = 'docker.io';
const DOCKER_HUB_ALIASES = new Set(['docker.io', 'index.docker.io', 'registry-1.docker.io']);

export interface ImageRef {
  /** as a FROM names it, Docker Hub as `docker.io` */
  registry: string;
  repository: string;
  /** tag or `sha256:…` */
  reference: string;
}

/** One place a build pulls an image: a FROM or a COPY --from naming no stage. */
export interface BaseUse {
  image: string;
  line: number;
  /** the instruction as written */
  text: string;
}

/**
 * A reference as the builders resolve it: no registry part (no `.`/`:` in the first component,
 * not `localhost`) means Docker Hub, a single name there means `library/`. Null when it is no
 * valid reference (empty after build args, upper case, spaces).
 */
export function parseImageRef(image: string): ImageRef | null {
  const at = image.indexOf('@');
  const name = at >= 0 ? image.slice(0, at) : image;
  const digest = at >= 0 ? image.slice(at + 1) : null;
  const slash = name.indexOf('/');
  const first = slash >= 0 ? name.slice(0, slash) : '';
  const hasHost = slash >= 0 && (/[.:]/.test(first) || first === 'localhost');
  const registry = hasHost ? first.toLowerCase() : DOCKER_HUB;
  let path = hasHost ? name.slice(slash + 1) : name;
  let tag = 'latest';
  const colon = path.lastIndexOf(':');
  if (colon > path.lastIndexOf('/')) {
    tag = path.slice(colon + 1);
    path = path.slice(0, colon);
  }
  if (registry === DOCKER_HUB && !path.includes('/')) path = `library/${path}`;
  if (!/^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$/.test(path)) return null;
  const reference = digest ?? tag;
  if (!/^(?:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}|sha256:[a-f0-9]{64})$/.test(reference)) return null;
  return { registry: DOCKER_HUB_ALIASES.has(registry) ? DOCKER_HUB : registry, repository: path, reference };
}

/**
 * Every image the Dockerfile pulls, with its line: FROMs, and `COPY --from=X` or `RUN
 * --mount=…,from=X` where X is no stage (nor a stage index). A `$` there stays in the image text:
 * the policy refuses it (BuildKit does not expand it, buildah would, unchecked).
 */
export function baseUses(dockerfile: string, buildArgs: Readonly<Record<string, string>>): BaseUse[] {
  const all = instructions(dockerfile);
  const textOf = (line: number): string => all.find((i) => i.line === line)?.text ?? '';
  const uses: BaseUse[] = fromImages(dockerfile, buildArgs).map((f) => ({ image: f.image, line: f.line, text: textOf(f.line) }));
  const stages = new Set(stageNames(dockerfile));
  for (const i of all) {
    const froms = [
      ...(/^COPY\s/i.test(i.text) ? [/\s--from=(\S+)/.exec(i.text)?.[1]] : []),
      ...(/^RUN\s/i.test(i.text) ? [...i.text.matchAll(/--mount=\S*?\bfrom=([^,\s]+)/g)].map((m) => m[1]) : []),
    ];
    for (const from of froms) {
      if (from === undefined || /^\d+$/.test(from) || stages.has(from.toLowerCase())) continue;
      uses.push({ image: from, line: i.line, text: i.text });
    }
  }
  return uses;
}

/** Whether `ref` is among the allowed bases (registry names compared without case; Docker Hub by any of its names). */
export function isAllowed(ref: ImageRef, allowed: readonly AllowedBase[]): boolean {
  return allowed.some((a) => {
    const registry = DOCKER_HUB_ALIASES.has(a.registry.toLowerCase()) ? DOCKER_HUB : a.registry.toLowerCase();
    if (registry !== ref.registry) return false;
    return a.repositories === undefined || a.repositories.some((p) => (p.endsWith('/*') ? ref.repository.startsWith(p.slice(0, -1)) : ref.repository === p));
  });
}

/** Refuses the first use the policy does not allow, or that is no valid reference; the refs of the rest. */
export function checkBasePolicy(uses: readonly BaseUse[], allowed: readonly AllowedBase[]): { use: BaseUse; ref: ImageRef }[] {
  const checked: { use: BaseUse; ref: ImageRef }[] = [];
  for (const use of uses) {
    const at = `at Dockerfile line ${use.line} (${use.text})`;
    if (use.image.includes('$') && !/^FROM\s/i.test(use.text)) {
      throw new FleetError(ErrorCode.E_DOCKERFILE_INVALID, `Dockerfile invalid ${at}: variable expansion is not supported for --from (BuildKit refuses it, so the platform does on every builder); name the image in a FROM … AS stage and copy from the stage`, { step: use.text });
    }
    const ref = parseImageRef(use.image);
    if (ref === null) {
      throw new FleetError(ErrorCode.E_DOCKERFILE_INVALID, `Dockerfile invalid ${at}: "${use.image}" is no image reference${use.image === '' ? ' (a build arg it needs is not set)' : ''}`, { step: use.text });
    }
    if (!isAllowed(ref, allowed)) {
      const copy = !/^FROM\s/i.test(use.text) ? `--from=${use.image} names no stage of this Dockerfile, so it is the image ${describeRef(ref)}, and ` : '';
      throw new FleetError(ErrorCode.E_BASE_NOT_ALLOWED, `base not allowed ${at}: ${copy}${describeRef(ref)} is not among the bases this build may use (${allowed.map(describeAllowed).join(', ')})`, { step: use.text });
    }
    checked.push({ use, ref });
  }
  return checked;
}

/** `registry/repository:tag` or `registry/repository@digest`, as messages name an image. */
export function describeRef(ref: ImageRef): string {
  return `${ref.registry}/${ref.repository}${ref.reference.startsWith('sha256:') ? '@' : ':'}${ref.reference}`;
}

function describeAllowed(a: AllowedBase): string {
  return a.repositories === undefined ? `${a.registry}/*` : a.repositories.map((r) => `${a.registry}/${r}`).join(', ');
}
