import { z } from 'zod';
import { ErrorCode, FleetError, decodeWith, type AllowedBase } from '../protocol/index.ts';
import type { Manifest, RegistryClient } from '../adapters/registry-client.ts';
import { DOCKER_HUB, baseUses, checkBasePolicy, describeRef, parseImageRef, type BaseUse, type ImageRef } from './base-policy.ts';

/**
 * A build's bases, each manifest read from its registry once (one GET, with the pool's
 * credentials) however many steps ask: the check that every base exists (here), the platform
 * signature check of the official ones (official-bases.ts) and the digest pinning for the report
 * (base-digests.ts) all read the same answer. They used to ask the registry each for itself: a
 * HEAD per base, a GET per official base, then a GET per base not pinned yet.
 *
 * What the registry answered means the same on every builder: a name that does not resolve, a
 * missing manifest or a refusal is final at once (E_BASE_NOT_FOUND, E_BASE_UNAUTHORIZED); only
 * what an outage explains (connection refused, timeouts, 5xx, 429) is E_REGISTRY_UNAVAILABLE,
 * which is retried with backoff.
 */

/** The part of an image manifest (or index) the ONBUILD read needs; the rest passes. */
const ManifestDoc = z.object({
  manifests: z.array(z.object({ digest: z.string(), platform: z.object({ os: z.string(), architecture: z.string() }).partial().optional() })).optional(),
  config: z.object({ digest: z.string() }).optional(),
  layers: z.array(z.object({ digest: z.string() })).nullish(),
});
/** The part of an image config the ONBUILD read needs (Docker's `OnBuild`, which BuildKit writes in OCI configs too). */
const ConfigDoc = z.object({ config: z.object({ OnBuild: z.array(z.string()).nullable().optional() }).nullable().optional() });
/** this machine's architecture, as image indexes name it */
const ARCH: string = ({ x64: 'amd64', arm64: 'arm64', arm: 'arm', ppc64: 'ppc64le', s390x: 's390x' } as Record<string, string>)[process.arch] ?? process.arch;

/** Docker Hub's API host, where a FROM's `docker.io` (or no registry at all) is read. */
const DOCKER_HUB_API = 'registry-1.docker.io';
/** how long one manifest read may take before its registry counts as unavailable (retried) */
const FETCH_TIMEOUT_MS = 15_000;

/** How a read of a base's manifest ended: the status (and, for a 2xx, the manifest), or the error. */
export type ProbeOutcome = { status: number; manifest?: Manifest | null } | { error: unknown };

/**
 * What a read's outcome means for the build: null when the base is there; otherwise the error,
 * final unless an outage explains it. `use` names the Dockerfile line in the message.
 */
export function probeVerdict(use: BaseUse, ref: ImageRef, outcome: ProbeOutcome): FleetError | null {
  return verdict(ref, outcome, use);
}

function verdict(ref: ImageRef, outcome: ProbeOutcome, use?: BaseUse): FleetError | null {
  const at = use === undefined ? '' : ` at Dockerfile line ${use.line} (${use.text})`;
  const image = describeRef(ref);
  const fail = (code: ErrorCode, label: string, why: string): FleetError => new FleetError(code, `${label}${at}: ${image}: ${why}`, use === undefined ? undefined : { step: use.text });
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

/** One per build (the job runner's): every read it makes is shared by the steps after it. */
export class BaseResolver {
  private readonly answers = new Map<string, Promise<ProbeOutcome>>();

  constructor(
    private readonly registry: (host: string) => RegistryClient,
    private readonly signal?: AbortSignal,
  ) {}

  /**
   * The whole check: policy first (no network), then every distinct image read at once (a
   * multi-stage build's bases in the time of the slowest). Throws the first failure, in
   * Dockerfile order; returns the uses, all present.
   */
  async check(dockerfile: string, buildArgs: Readonly<Record<string, string>>, allowed: readonly AllowedBase[]): Promise<BaseUse[]> {
    const checked = checkBasePolicy(baseUses(dockerfile, buildArgs), allowed);
    const outcomes = await Promise.all(checked.map(({ ref }) => this.read(ref)));
    if (this.signal?.aborted === true) throw this.signal.reason;
    for (const [i, { use, ref }] of checked.entries()) {
      const outcome = outcomes[i];
      const error = outcome === undefined ? null : probeVerdict(use, ref, outcome);
      if (error !== null) throw error;
    }
    return checked.map((c) => c.use);
  }

  /**
   * The manifest `image` names (its digest computed from its bytes), or null when its registry
   * has none (404: each caller says what a missing base means to it); any other failure typed as
   * the check types it.
   */
  async manifest(image: string): Promise<Manifest | null> {
    const ref = parseImageRef(image);
    if (ref === null) throw new FleetError(ErrorCode.E_DOCKERFILE_INVALID, `Dockerfile invalid: "${image}" is no image reference`);
    const outcome = await this.read(ref);
    if ('status' in outcome && outcome.status === 404) return null;
    const error = verdict(ref, outcome);
    if (error !== null) throw error;
    return 'status' in outcome ? (outcome.manifest ?? null) : null;
  }

  /**
   * The ONBUILD triggers of `image`: Dockerfile lines every build FROM it runs, as its own. Read
   * from its config (an index followed to its linux manifest for this machine's architecture,
   * else its first); empty when it has none.
   */
  async onBuild(image: string): Promise<string[]> {
    const found = await this.platformManifest(image);
    if (found?.doc.config === undefined) return [];
    const config = decodeWith(ConfigDoc, await this.client(found.ref).blob(found.ref.repository, found.doc.config.digest, this.signal), `image config of ${image}`, ErrorCode.E_BASE_NOT_FOUND);
    return config.config?.OnBuild ?? [];
  }

  /** The layer digests of `image` (its platform manifest's, as onBuild picks it). */
  async layers(image: string): Promise<string[]> {
    return (await this.platformManifest(image))?.doc.layers?.map((l) => l.digest) ?? [];
  }

  /** `image`'s manifest for this machine: an index followed to its linux manifest for this architecture, else its first. */
  private async platformManifest(image: string): Promise<{ ref: ImageRef; doc: z.infer<typeof ManifestDoc> } | null> {
    const ref = parseImageRef(image);
    const manifest = ref === null ? null : await this.manifest(image);
    if (ref === null || manifest === null) return null;
    const what = `image manifest of ${image}`;
    const doc = decodeWith(ManifestDoc, manifest.bytes, what, ErrorCode.E_BASE_NOT_FOUND);
    if (doc.manifests === undefined) return { ref, doc };
    const entry = doc.manifests.find((m) => m.platform?.os === 'linux' && m.platform.architecture === ARCH) ?? doc.manifests[0];
    const chosen = entry === undefined ? null : await this.client(ref).manifest(ref.repository, entry.digest, this.signal);
    return chosen === null ? null : { ref, doc: decodeWith(ManifestDoc, chosen.bytes, what, ErrorCode.E_BASE_NOT_FOUND) };
  }

  private client(ref: ImageRef): RegistryClient {
    return this.registry(ref.registry === DOCKER_HUB ? DOCKER_HUB_API : ref.registry);
  }

  /** The registry's answer for `ref`: read on the first ask, shared by every later one. */
  private read(ref: ImageRef): Promise<ProbeOutcome> {
    const key = describeRef(ref);
    let answer = this.answers.get(key);
    if (answer === undefined) {
      const client = this.client(ref);
      const timeout = AbortSignal.timeout(FETCH_TIMEOUT_MS);
      answer = client
        .manifestAnswer(ref.repository, ref.reference, this.signal === undefined ? timeout : AbortSignal.any([this.signal, timeout]))
        .then((a): ProbeOutcome => a, (error: unknown) => ({ error }));
      this.answers.set(key, answer);
    }
    return answer;
  }
}

/**
 * The check on its own (a resolver used once): every base allowed and present, or the first
 * failure in Dockerfile order.
 */
export function checkBases(
  dockerfile: string,
  buildArgs: Readonly<Record<string, string>>,
  allowed: readonly AllowedBase[],
  registry: (host: string) => RegistryClient,
  signal: AbortSignal,
): Promise<BaseUse[]> {
  return new BaseResolver(registry, signal).check(dockerfile, buildArgs, allowed);
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
