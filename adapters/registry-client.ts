import { createHash } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import { z } from 'zod';
import { ErrorCode, FleetError } from '../protocol/index.ts';
import type { RegistryCredentials } from './docker-config.ts';

const TokenAnswer = z.object({ token: z.string().optional(), access_token: z.string().optional() });

export const MEDIA = {
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
} as const;
const ACCEPT = [MEDIA.ociManifest, MEDIA.ociIndex, MEDIA.dockerManifest, MEDIA.dockerList].join(', ');

const ReferrerDescriptor = z.object({
  mediaType: z.string(),
  digest: z.string(),
  size: z.number(),
  artifactType: z.string().optional(),
  annotations: z.record(z.string(), z.string()).optional(),
});
export type ReferrerDescriptor = z.infer<typeof ReferrerDescriptor>;
const ReferrersIndex = z.object({ mediaType: z.literal(MEDIA.ociIndex).optional(), manifests: z.array(ReferrerDescriptor) });

export interface RegistryEndpoint {
  host: string;
  insecure: boolean;
  /** for registries that want them: sent as Basic, or traded for a Bearer token when challenged */
  credentials?: RegistryCredentials | undefined;
}

/** The distribution API's error body: `{"errors":[{"code":"MANIFEST_BLOB_UNKNOWN",…}]}`. */
const ErrorBody = z.object({ errors: z.array(z.object({ code: z.string() })) });

/**
 * Waits before each new try of a manifest put refused with MANIFEST_BLOB_UNKNOWN. distribution's
 * filesystem store rewrites a repository's blob link in place (truncate, then write) each time the
 * same blob is uploaded to it again (distribution/distribution#4489), so a manifest put that lands
 * while another push of a shared layer into the same repository commits can read an empty link
 * and be refused although every blob is there. Two builds of one app pushing at once do that. A
 * blob that is really missing is still refused after the last try, about 1.6 s later.
 */
const BLOB_UNKNOWN_RETRY_MS = [50, 150, 400, 1_000] as const;
/** Waits before each new try of a read answered 5xx. */
const READ_RETRY_MS = [100, 400] as const;

/** `Bearer realm="…",service="…",scope="…"` → its parameters */
const CHALLENGE_PARAM = /(\w+)="([^"]*)"/g;

export interface Manifest {
  /** sha256 of the exact bytes, computed here (never the registry's header or a worker's word) */
  digest: string;
  mediaType: string;
  bytes: Uint8Array;
}

export function sha256(bytes: Uint8Array | string): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

/**
 * The slice of the OCI distribution API the platform uses: read manifests and blobs by digest,
 * upload small blobs, mount blobs across repositories and put manifests (promotion, signatures).
 * Transport failures are `E_REGISTRY_UNAVAILABLE`, which the retry classifier treats as transient.
 */
export class RegistryClient {
  /** the Authorization header that last worked, reused until a 401 says otherwise */
  private authorization: string | null = null;

  constructor(
    readonly endpoint: RegistryEndpoint,
    private readonly timeoutMs = 30_000,
  ) {}

  private url(path: string): string {
    return `${this.endpoint.insecure ? 'http' : 'https'}://${this.endpoint.host}/v2/${path}`;
  }

  /**
   * One request, answered past any challenge. A read answered 5xx is sent again, twice at most:
   * the same link rewrite that refuses manifests (above) has distribution answer 500 to a read
   * of a blob another push is uploading into the repository again.
   */
  private async call(what: string, path: string, init: RequestInit = {}): Promise<Response> {
    const read = init.method === undefined || init.method === 'GET' || init.method === 'HEAD';
    for (let tries = 0; ; tries++) {
      const res = await this.authorized(what, path, init);
      const wait = READ_RETRY_MS[tries];
      if (!read || res.status < 500 || wait === undefined) return res;
      await res.body?.cancel();
      await delay(wait);
    }
  }

  private async authorized(what: string, path: string, init: RequestInit): Promise<Response> {
    const send = (): Promise<Response> => this.reach(path.startsWith('http') ? path : this.url(path), init, this.authorization, `registry ${this.endpoint.host}`, what);
    const res = await send();
    if (res.status !== 401) return res;
    // Challenged: answer it once (Basic, or a Bearer token from the realm), then retry.
    await res.body?.cancel();
    this.authorization = await this.answer(what, res.headers.get('www-authenticate') ?? '', init.signal ?? undefined);
    const again = await send();
    if (again.status === 401) throw new FleetError(ErrorCode.E_REGISTRY_AUTH, `registry ${this.endpoint.host} refused the platform's credentials (${what})`);
    return again;
  }

  /** One HTTP call to the registry or its token service; a transport failure is E_REGISTRY_UNAVAILABLE naming `who`. */
  private async reach(url: string, init: RequestInit, authorization: string | null, who: string, what: string): Promise<Response> {
    const headers = new Headers(init.headers);
    if (authorization !== null) headers.set('authorization', authorization);
    try {
      return await fetch(url, { ...init, headers, signal: init.signal ?? AbortSignal.timeout(this.timeoutMs) });
    } catch (e) {
      throw new FleetError(ErrorCode.E_REGISTRY_UNAVAILABLE, `${who} unreachable (${what}): ${String(e)}`, undefined, { cause: e });
    }
  }

  private async answer(what: string, challenge: string, signal: AbortSignal | undefined): Promise<string> {
    const credentials = this.endpoint.credentials;
    const basic = credentials === undefined ? null : `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`).toString('base64')}`;
    if (/^basic\b/i.test(challenge)) {
      if (basic === null) throw new FleetError(ErrorCode.E_REGISTRY_AUTH, `registry ${this.endpoint.host} wants credentials and none are configured for it (${what})`);
      return basic;
    }
    const params = Object.fromEntries([...challenge.matchAll(CHALLENGE_PARAM)].map((m) => [m[1]?.toLowerCase() ?? '', m[2] ?? '']));
    const realm = /^bearer\b/i.test(challenge) ? params.realm : undefined;
    if (realm === undefined) throw new FleetError(ErrorCode.E_REGISTRY_AUTH, `registry ${this.endpoint.host} answered 401 without a usable challenge (${what})`);
    const url = new URL(realm);
    for (const key of ['service', 'scope']) if (params[key] !== undefined) url.searchParams.set(key, params[key]);
    const res = await this.reach(url.toString(), { signal: signal ?? null }, basic, `token service of ${this.endpoint.host}`, what);
    const token = TokenAnswer.safeParse(await res.json().catch(() => null));
    const value = token.success ? (token.data.token ?? token.data.access_token) : undefined;
    if (!res.ok || value === undefined) throw new FleetError(ErrorCode.E_REGISTRY_AUTH, `token service of ${this.endpoint.host} refused (${res.status}) for ${what}`);
    return `Bearer ${value}`;
  }

  /** The refusal as E_REGISTRY_UNAVAILABLE, naming the registry's own error codes when its body has them. */
  private async refusal(what: string, res: Response): Promise<FleetError> {
    return this.refused(what, res.status, await registryErrorCodes(res));
  }

  private refused(what: string, status: number, codes: readonly string[]): FleetError {
    const why = codes.length === 0 ? '' : ` (${codes.join(', ')})`;
    return new FleetError(ErrorCode.E_REGISTRY_UNAVAILABLE, `registry ${this.endpoint.host} answered ${status}${why} to ${what}`);
  }

  /** The manifest `repository:reference`, or null when the registry has none. */
  async manifest(repository: string, reference: string, signal?: AbortSignal): Promise<Manifest | null> {
    const { status, manifest } = await this.manifestAnswer(repository, reference, signal);
    if (status === 404) return null;
    if (manifest === null) throw new FleetError(ErrorCode.E_REGISTRY_UNAVAILABLE, `registry ${this.endpoint.host} answered ${status} to GET manifest ${repository}:${reference}`);
    return manifest;
  }

  /**
   * A GET of manifest `repository:reference` and the status it was answered with, once any
   * challenge was answered (credentials refused: E_REGISTRY_AUTH; registry unreachable:
   * E_REGISTRY_UNAVAILABLE); the manifest when the answer is 2xx. For a caller that must tell a
   * missing image (404) from a refusal (403) or a failing registry (5xx, 429) and wants the bytes
   * when there are some: one request where a HEAD and then a GET were two.
   */
  async manifestAnswer(repository: string, reference: string, signal?: AbortSignal): Promise<{ status: number; manifest: Manifest | null }> {
    const res = await this.call(`GET manifest ${repository}:${reference}`, `${repository}/manifests/${reference}`, { headers: { accept: ACCEPT }, signal: signal ?? null });
    if (!res.ok) {
      await res.body?.cancel();
      return { status: res.status, manifest: null };
    }
    const bytes = new Uint8Array(await res.arrayBuffer());
    return { status: res.status, manifest: { digest: sha256(bytes), mediaType: res.headers.get('content-type') ?? '', bytes } };
  }

  /**
   * The status a HEAD of manifest `repository:reference` is answered with, once any challenge was
   * answered (credentials refused: E_REGISTRY_AUTH; registry unreachable: E_REGISTRY_UNAVAILABLE):
   * for a caller that must tell a missing image (404) from a refusal (403) or a failing registry (5xx, 429).
   */
  async manifestStatus(repository: string, reference: string, signal?: AbortSignal): Promise<number> {
    const res = await this.call(`HEAD manifest ${repository}:${reference}`, `${repository}/manifests/${reference}`, { method: 'HEAD', headers: { accept: ACCEPT }, signal: signal ?? null });
    await res.body?.cancel();
    return res.status;
  }

  /**
   * The registry's `Docker-Content-Digest` for `repository:reference` (a HEAD: no bytes move, and
   * Docker Hub does not count it against pull limits), or null when it has none. The registry's
   * word, not computed: good enough to notice that a tag moved, never to trust an image by.
   */
  async headDigest(repository: string, reference: string, signal?: AbortSignal): Promise<string | null> {
    const what = `HEAD manifest ${repository}:${reference}`;
    const res = await this.call(what, `${repository}/manifests/${reference}`, { method: 'HEAD', headers: { accept: ACCEPT }, signal: signal ?? null });
    if (res.status === 404) return null;
    await res.body?.cancel();
    if (!res.ok) throw await this.refusal(what, res);
    return res.headers.get('docker-content-digest');
  }

  /** A blob's bytes, checked against its digest. */
  async blob(repository: string, digest: string, signal?: AbortSignal): Promise<Uint8Array> {
    const res = await this.blobResponse(repository, digest, signal);
    const bytes = new Uint8Array(await res.arrayBuffer());
    if (sha256(bytes) !== digest) throw new FleetError(ErrorCode.E_DIGEST_MISMATCH, `blob ${digest} of ${repository} does not match its digest`);
    return bytes;
  }

  /** A blob as a stream, for layers too large to hold; the caller verifies what it needs. */
  async blobStream(repository: string, digest: string, signal?: AbortSignal): Promise<ReadableStream<Uint8Array>> {
    const res = await this.blobResponse(repository, digest, signal);
    if (res.body === null) throw await this.refusal(`GET blob ${digest}`, res);
    return res.body;
  }

  private async blobResponse(repository: string, digest: string, signal?: AbortSignal): Promise<Response> {
    const what = `GET blob ${repository}@${digest}`;
    const res = await this.call(what, `${repository}/blobs/${digest}`, { signal: signal ?? null });
    if (!res.ok) throw await this.refusal(what, res);
    return res;
  }

  /** Uploads a small blob in one request (monolithic upload); a no-op when it exists. */
  async putBlob(repository: string, bytes: Uint8Array): Promise<string> {
    const digest = sha256(bytes);
    const head = await this.call(`HEAD blob ${digest}`, `${repository}/blobs/${digest}`, { method: 'HEAD' });
    if (head.ok) return digest;
    const start = await this.call(`start upload to ${repository}`, `${repository}/blobs/uploads/`, { method: 'POST' });
    if (start.status !== 202) throw await this.refusal(`start upload to ${repository}`, start);
    const put = await this.call(`PUT blob ${digest}`, this.uploadUrl(start, digest), {
      method: 'PUT',
      headers: { 'content-type': 'application/octet-stream' },
      body: bytes,
    });
    if (put.status !== 201) throw await this.refusal(`PUT blob ${digest}`, put);
    return digest;
  }

  /** Makes blob `digest` of repository `from` available in `repository` without copying bytes. */
  async mountBlob(repository: string, digest: string, from: string): Promise<void> {
    const what = `mount ${digest} from ${from} into ${repository}`;
    const res = await this.call(what, `${repository}/blobs/uploads/?mount=${encodeURIComponent(digest)}&from=${encodeURIComponent(from)}`, { method: 'POST' });
    if (res.status === 201) return;
    // 202: the registry declined to mount and opened an upload instead; nothing to upload from here
    throw await this.refusal(what, res);
  }

  async putManifest(repository: string, reference: string, manifest: Pick<Manifest, 'bytes' | 'mediaType'>): Promise<string> {
    const what = `PUT manifest ${repository}:${reference}`;
    for (let tries = 0; ; tries++) {
      const res = await this.call(what, `${repository}/manifests/${reference}`, {
        method: 'PUT',
        headers: { 'content-type': manifest.mediaType },
        body: manifest.bytes,
      });
      if (res.status === 201) return sha256(manifest.bytes);
      const codes = await registryErrorCodes(res);
      const wait = BLOB_UNKNOWN_RETRY_MS[tries];
      if (res.status !== 400 || !codes.includes('MANIFEST_BLOB_UNKNOWN') || wait === undefined) throw this.refused(what, res.status, codes);
      await delay(wait);
    }
  }

  /**
   * The OCI 1.1 referrers of `repository@digest` (descriptors of manifests whose `subject` is it),
   * or null when the registry has no referrers API (distribution 2.x answers 404): then attachments
   * go under the `sha256-<hex>.<kind>` tag scheme instead.
   */
  async referrers(repository: string, digest: string, signal?: AbortSignal): Promise<ReferrerDescriptor[] | null> {
    const what = `GET referrers of ${repository}@${digest}`;
    const res = await this.call(what, `${repository}/referrers/${digest}`, { headers: { accept: MEDIA.ociIndex }, signal: signal ?? null });
    if (res.status === 404 || res.status === 405) {
      await res.body?.cancel();
      return null;
    }
    if (!res.ok) throw await this.refusal(what, res);
    const index = ReferrersIndex.safeParse(await res.json().catch(() => null));
    // A 200 that is no index is a registry serving something else at that path: no referrers API.
    return index.success ? index.data.manifests : null;
  }

  private uploadUrl(start: Response, digest: string): string {
    const location = start.headers.get('location');
    if (location === null) throw this.refused('start upload (no Location)', start.status, []);
    const url = new URL(location, this.url(''));
    url.searchParams.set('digest', digest);
    return url.toString();
  }
}

/** The `code`s of a registry's error answer (read from its body, which this consumes), or none. */
async function registryErrorCodes(res: Response): Promise<string[]> {
  const text = await res.text().catch(() => '');
  const body = ErrorBody.safeParse((() => { try { return JSON.parse(text) as unknown; } catch { return null; } })());
  return body.success ? [...new Set(body.data.errors.map((e) => e.code))] : [];
}

/** The digest of `repository:reference` as computed from the registry's bytes, or null. */
export async function fetchManifestDigest(
  registry: RegistryEndpoint,
  repository: string,
  reference: string,
  signal?: AbortSignal,
): Promise<string | null> {
  return (await new RegistryClient(registry, 15_000).manifest(repository, reference, signal))?.digest ?? null;
}
