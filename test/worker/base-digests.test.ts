import { describe, expect, it } from 'vitest';
import { sha256, type Manifest, type RegistryClient } from '../../adapters/registry-client.ts';
import { isFleetError } from '../../protocol/index.ts';
import { parseImageRef, resolveBases } from '../../worker/base-digests.ts';

const D = (c: string) => `sha256:${c.repeat(64)}`;

/** A registry that knows a fixed set of `host/repository:tag` manifests and counts its reads. */
function registries(known: Record<string, string>) {
  const reads: string[] = [];
  const client = (host: string) =>
    ({
      endpoint: { host, insecure: true },
      // the base resolver's read: the status, and the manifest when there is one
      manifestAnswer: (repository: string, reference: string): Promise<{ status: number; manifest: Manifest | null }> => {
        reads.push(`${host}/${repository}:${reference}`);
        const digest = known[`${host}/${repository}:${reference}`];
        return Promise.resolve(digest === undefined ? { status: 404, manifest: null } : { status: 200, manifest: { digest, mediaType: 'application/vnd.oci.image.manifest.v1+json', bytes: new Uint8Array() } });
      },
    }) as unknown as RegistryClient;
  return { client, reads };
}

describe('image references', () => {
  it('splits host, repository, tag and digest with the Docker rules', () => {
    expect(parseImageRef('127.0.0.1:5000/official/base:1')).toEqual({ host: '127.0.0.1:5000', repository: 'official/base', tag: '1' });
    expect(parseImageRef('alpine')).toEqual({ host: 'registry-1.docker.io', repository: 'library/alpine', tag: 'latest' });
    expect(parseImageRef('docker.io/bitnami/redis:7')).toEqual({ host: 'registry-1.docker.io', repository: 'bitnami/redis', tag: '7' });
    expect(parseImageRef('localhost/x/y')).toEqual({ host: 'localhost', repository: 'x/y', tag: 'latest' });
    expect(parseImageRef(`r:5000/a/b:2@${D('c')}`)).toEqual({ host: 'r:5000', repository: 'a/b', tag: '2', digest: D('c') });
    expect(parseImageRef(`r:5000/a/b@${sha256('x')}`)).toMatchObject({ repository: 'a/b', digest: sha256('x') });
  });
});

describe('resolved bases', () => {
  const dockerfile = [
    'ARG FLEET_REGISTRY',
    'ARG FLEET_BASE',
    'ARG BASE=app/custom:3',
    'FROM ${FLEET_REGISTRY}/official/jdk17:1 AS build',
    'FROM build AS test',
    'FROM ${FLEET_BASE} AS runtime',
    'FROM ${FLEET_REGISTRY}/${BASE}',
    'FROM scratch',
  ].join('\n');
  const args = { FLEET_REGISTRY: 'r:5000', FLEET_BASE: 'r:5000/official/jre17:1' };

  it('names each FROM after build args, with the digest the build used (a pinned official base costs no read)', async () => {
    const { client, reads } = registries({ 'r:5000/official/jdk17:1': D('a'), 'r:5000/app/custom:4': D('b') });
    const pinned = { ...args, FLEET_BASE: `r:5000/official/jre17@${D('e')}` };
    const bases = await resolveBases(dockerfile, { ...args, BASE: 'app/custom:4' }, { ...pinned, BASE: 'app/custom:4' }, client);
    expect(bases).toEqual([
      { name: 'r:5000/official/jdk17:1', digest: D('a') },
      { name: 'r:5000/official/jre17:1', digest: D('e') },
      { name: 'r:5000/app/custom:4', digest: D('b') },
    ]);
    expect(reads).toEqual(['r:5000/official/jdk17:1', 'r:5000/app/custom:4']);
  });

  it('fails the build on a base that does not exist', async () => {
    const { client } = registries({ 'r:5000/official/jdk17:1': D('a'), 'r:5000/official/jre17:1': D('e') });
    const err = await resolveBases(dockerfile, args, args, client).catch((e: unknown) => e);
    expect(isFleetError(err, 'E_BASE_NOT_FOUND') && err.message).toContain('r:5000/app/custom:3');
  });

  it('resolves COPY --from and RUN --mount=from images as bases too (stages and indexes aside, a digest costs no read)', async () => {
    const { client, reads } = registries({ 'r:5000/official/base:1': D('a'), 'r:5000/tools/lint:2': D('b') });
    const text = ['FROM r:5000/official/base:1 AS build', 'COPY --from=build /a /a', 'COPY --from=0 /a /b', `COPY --from=r:5000/tools/lint:2 /bin/lint /lint`, `RUN --mount=type=bind,from=r:5000/x/y@${D('c')},target=/m true`].join('\n');
    expect(await resolveBases(text, {}, {}, client)).toEqual([
      { name: 'r:5000/official/base:1', digest: D('a') },
      { name: 'r:5000/tools/lint:2', digest: D('b') },
      { name: `r:5000/x/y@${D('c')}`, digest: D('c') },
    ]);
    expect(reads).toEqual(['r:5000/official/base:1', 'r:5000/tools/lint:2']);
  });

  it('resolves nothing for a FROM scratch build', async () => {
    const { client, reads } = registries({});
    expect(await resolveBases('FROM scratch\nCOPY a /a\n', {}, {}, client)).toEqual([]);
    expect(reads).toEqual([]);
  });
});
