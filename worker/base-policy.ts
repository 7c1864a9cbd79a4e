import { ErrorCode, FleetError, type AllowedBase } from '../protocol/index.ts';
import type { RegistryClient } from '../adapters/registry-client.ts';
import { fromImages, instructions } from './official-bases.ts';

/**
 * Where a build's bases may come from, checked by the worker before any builder pulls one:
 * every FROM (after build args) and every COPY --from that names an image rather than a stage
 * must be allowed by the job's policy (E_BASE_NOT_ALLOWED, naming the line), then must exist in
 * its registry (a HEAD of the manifest with the pool's credentials): a name that does not resolve,
 * a missing manifest or a refusal is final at once (E_BASE_NOT_FOUND, E_BASE_UNAUTHORIZED), the
 * same on every builder; only what an outage explains (connection refused, timeouts, 5xx, 429)
 * stays E_REGISTRY_UNAVAILABLE, which is retried with backoff.
 *
 * Checked here rather than by the coordinator at intake: a custom build's Dockerfile is in its
 * context in S3, which only the worker downloads; the coordinator puts the tenant's policy in
 * the job instead.
 */

/** Docker Hub's names for itself, as a FROM may write them, and the host its API answers on. */
const DOCKER_HUB = 'docker.io';
const DOCKER_HUB_ALIASES = new Set(['docker.io', 'index.docker.io', 'registry-1.docker.io']);
const DOCKER_HUB_API = 'registry-1.docker.io';
/** how long the check waits for one registry before calling it unavailable (retried) */
const PROBE_TIMEOUT_MS = 15_000;

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
  const stages = new Set(all.flatMap((i) => /^FROM\s.*\sAS\s+(\S+)\s*$/i.exec(i.text)?.[1]?.toLowerCase() ?? []));
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
      const copy = !/^FROM\s/i.test(use.text) ? `--from=${use.image} names no stage of this Dockerfile, so it is the image ${describe(ref)}, and ` : '';
      throw new FleetError(ErrorCode.E_BASE_NOT_ALLOWED, `base not allowed ${at}: ${copy}${describe(ref)} is not among the bases this build may use (${allowed.map(describeAllowed).join(', ')})`, { step: use.text });
    }
    checked.push({ use, ref });
  }
  return checked;
}

/** How a HEAD of a base's manifest ended. */
export type ProbeOutcome = { status: number } | { error: unknown };

/**
 * What a probe's outcome means for the build: null when the base is there; otherwise the error,
 * final unless an outage explains it.
 */
export function probeVerdict(use: BaseUse, ref: ImageRef, outcome: ProbeOutcome): FleetError | null {
  const at = `at Dockerfile line ${use.line} (${use.text})`;
  const image = describe(ref);
  const fail = (code: ErrorCode, label: string, why: string): FleetError => new FleetError(code, `${label} ${at}: ${image}: ${why}`, { step: use.text });
  if ('status' in outcome) {
    const { status } = outcome;
    if (status >= 200 && status < 300) return null;
    if (status === 404) return fail(ErrorCode.E_BASE_NOT_FOUND, 'base image not found', `${ref.registry} has no such manifest (404)`);
    if (status === 401 || status === 403) return fail(ErrorCode.E_BASE_UNAUTHORIZED, 'base image refused', `${ref.registry} refused the platform's credentials (${status})`);
    if (status === 429 || status >= 500) return fail(ErrorCode.E_REGISTRY_UNAVAILABLE, 'registry unavailable', `${ref.registry} answered ${status}`);
    return fail(ErrorCode.E_BASE_NOT_FOUND, 'base image not found', `${ref.registry} answered ${status}`);
  }
  const e = outcome.error;
  if (e instanceof FleetError && e.code === ErrorCode.E_REGISTRY_AUTH) return fail(ErrorCode.E_BASE_UNAUTHORIZED, 'base image refused', e.message);
  // A name that does not exist (NXDOMAIN) will not exist on the next attempt either; a resolver
  // that did not answer (EAI_AGAIN) is an outage.
  if (causeCodes(e).includes('ENOTFOUND')) return fail(ErrorCode.E_BASE_NOT_FOUND, 'base image not found', `registry host ${ref.registry} does not resolve (no such host)`);
  if (e instanceof FleetError && e.code !== ErrorCode.E_REGISTRY_UNAVAILABLE) return e;
  return fail(ErrorCode.E_REGISTRY_UNAVAILABLE, 'registry unavailable', `${ref.registry} unreachable: ${causeMessage(e)}`);
}

/**
 * The whole check: policy first (no network), then one HEAD per distinct image. Throws the first
 * failure, in Dockerfile order.
 */
export async function checkBases(
  dockerfile: string,
  buildArgs: Readonly<Record<string, string>>,
  allowed: readonly AllowedBase[],
  registry: (host: string) => RegistryClient,
  signal: AbortSignal,
): Promise<BaseUse[]> {
  const checked = checkBasePolicy(baseUses(dockerfile, buildArgs), allowed);
  const probed = new Map<string, Promise<ProbeOutcome>>();
  const probe = (ref: ImageRef): Promise<ProbeOutcome> => {
    const key = describe(ref);
    let p = probed.get(key);
    if (p === undefined) {
      const client = registry(ref.registry === DOCKER_HUB ? DOCKER_HUB_API : ref.registry);
      p = client.manifestStatus(ref.repository, ref.reference, AbortSignal.any([signal, AbortSignal.timeout(PROBE_TIMEOUT_MS)])).then((status) => ({ status }), (error: unknown) => ({ error }));
      probed.set(key, p);
    }
    return p;
  };
  // All at once: a multi-stage build's bases are checked in the time of the slowest.
  const outcomes = await Promise.all(checked.map(({ ref }) => probe(ref)));
  if (signal.aborted) throw signal.reason;
  for (const [i, { use, ref }] of checked.entries()) {
    const outcome = outcomes[i];
    const error = outcome === undefined ? null : probeVerdict(use, ref, outcome);
    if (error !== null) throw error;
  }
  return checked.map((c) => c.use);
}

function describe(ref: ImageRef): string {
  return `${ref.registry}/${ref.repository}${ref.reference.startsWith('sha256:') ? '@' : ':'}${ref.reference}`;
}

function describeAllowed(a: AllowedBase): string {
  return a.repositories === undefined ? `${a.registry}/*` : a.repositories.map((r) => `${a.registry}/${r}`).join(', ');
}

/** The `code`s along an error's cause chain (fetch wraps the socket's error: `ENOTFOUND`, `ECONNREFUSED`…). */
function causeCodes(e: unknown): string[] {
  const codes: string[] = [];
  for (let c: unknown = e, depth = 0; c instanceof Error && depth < 6; c = c.cause, depth++) {
    if ('code' in c && typeof c.code === 'string') codes.push(c.code);
  }
  return codes;
}

function causeMessage(e: unknown): string {
  const messages: string[] = [];
  for (let c: unknown = e, depth = 0; c instanceof Error && depth < 6; c = c.cause, depth++) messages.push(c.message);
  return messages.at(-1) ?? String(e);
}
