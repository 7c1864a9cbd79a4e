import { describe, expect, it } from 'vitest';
import type { FleetError} from '../../protocol/index.ts';
import { BuildRequest, ErrorCode, isFleetError, parseWith } from '../../protocol/index.ts';

const valid = { id: 'rel-42', context: { digest: `sha256:${'a'.repeat(64)}` }, image: { repository: 'app/my-app', tags: ['1'] } };

function rejection(value: unknown): FleetError {
  try {
    parseWith(BuildRequest, value, 'build request');
  } catch (e) {
    if (isFleetError(e)) return e;
  }
  throw new Error('expected a rejection');
}

describe('build request schema', () => {
  it('applies defaults to a minimal request', () => {
    expect(parseWith(BuildRequest, valid, 'build request')).toMatchObject({ pool: 'default', dockerfile: 'Dockerfile', buildArgs: {}, labels: {} });
  });

  it('names the field path and the reason of every problem', () => {
    const err = rejection({ ...valid, image: { repository: 'app/x', tags: ['ok', 'not ok'] } });
    expect(err.code).toBe(ErrorCode.E_INVALID_REQUEST);
    expect(err.details?.issues).toEqual([{ path: 'image.tags[1]', message: expect.stringContaining('OCI tag') }]);
    expect(err.message).toContain('image.tags[1]');
  });

  it('rejects unknown fields instead of ignoring a typo', () => {
    expect(rejection({ ...valid, dockerFile: 'x' }).message).toContain('dockerFile');
  });

  it.each([
    ['id', { ...valid, id: 'has.dot' }],
    ['id', { ...valid, id: 'x'.repeat(129) }],
    ['context.digest', { ...valid, context: { digest: 'sha256:short' } }],
    ['dockerfile', { ...valid, dockerfile: '../outside/Dockerfile' }],
    ['dockerfile', { ...valid, dockerfile: '/etc/passwd' }],
    ['image.repository', { ...valid, image: { repository: 'UPPER/case', tags: ['1'] } }],
    ['image.tags', { ...valid, image: { repository: 'a/b', tags: [] } }],
    ['buildArgs.FLEET_REGISTRY', { ...valid, buildArgs: { FLEET_REGISTRY: 'x' } }],
    ['buildArgs.bad name', { ...valid, buildArgs: { 'bad name': 'x' } }],
    // BuildKit's own options: a frontend image from anywhere, another tenant's cache mounts
    ['buildArgs.BUILDKIT_SYNTAX', { ...valid, buildArgs: { BUILDKIT_SYNTAX: 'evil.example/frontend:1' } }],
    ['buildArgs.BUILDKIT_CACHE_MOUNT_NS', { ...valid, buildArgs: { BUILDKIT_CACHE_MOUNT_NS: 'tenant:other' } }],
  ])('rejects a bad %s', (path, value) => {
    const paths = rejection(value).details?.issues?.map((i) => i.path);
    expect(paths).toContain(path);
  });
});
