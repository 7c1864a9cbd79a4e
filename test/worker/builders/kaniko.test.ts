import { describe, expect, it } from 'vitest';
import { kanikoCacheMounts, platformArgs, secretMounts } from '../../../worker/builders/kaniko.ts';

describe('kaniko secret mounts', () => {
  it('finds each secret a RUN mounts, at /run/secrets/<id> unless it names a target', () => {
    const dockerfile = [
      'FROM x',
      'RUN --mount=type=secret,id=npm_token cat /run/secrets/npm_token',
      'RUN --mount=type=cache,target=/root/.cache --mount=type=secret,id=npmrc,target=/root/.npmrc npm ci',
      'RUN --mount=id=aws,type=secret,dst=/root/.aws/credentials true',
      'RUN --mount=type=bind,source=x,target=/y true',
    ].join('\n');
    expect(secretMounts(dockerfile)).toEqual([
      { id: 'npm_token', target: '/run/secrets/npm_token' },
      { id: 'npmrc', target: '/root/.npmrc' },
      { id: 'aws', target: '/root/.aws/credentials' },
    ]);
  });

  it('mounts a target once and ignores relative targets', () => {
    const dockerfile = 'RUN --mount=type=secret,id=a true\nRUN --mount=type=secret,id=a true\nRUN --mount=type=secret,id=b,target=rel true\n';
    expect(secretMounts(dockerfile)).toEqual([{ id: 'a', target: '/run/secrets/a' }]);
  });
});

describe('kaniko cache mounts and platform args', () => {
  it('mounts each absolute cache target once, keyed by its id (the target unless it names one)', () => {
    const dockerfile = [
      'FROM x',
      'RUN --mount=type=cache,target=/root/.npm npm ci',
      'RUN --mount=type=cache,id=gomod,target=/go/pkg/mod/ --mount=type=secret,id=t true',
      'RUN --mount=type=cache,target=rel/dir --mount=type=cache,target=/a/$X --mount=type=cache,target=/a/../etc true',
      'RUN --mount=type=cache,target=/home/app/.cache,uid=1000,gid=1001,mode=0700 true',
      'RUN --mount=type=cache,target=/bad,uid=$U,mode=rwx true',
    ].join('\n');
    expect(kanikoCacheMounts(dockerfile)).toEqual([
      { target: '/root/.npm', id: '/root/.npm', owner: '0:0', mode: '0755' },
      { target: '/go/pkg/mod', id: 'gomod', owner: '0:0', mode: '0755' },
      { target: '/home/app/.cache', id: '/home/app/.cache', owner: '1000:1001', mode: '0700' },
      { target: '/bad', id: '/bad', owner: '0:0', mode: '0755' },
    ]);
  });

  it("passes the node's platform as BuildKit's automatic platform args", () => {
    expect(platformArgs('x64')).toEqual({ BUILDPLATFORM: 'linux/amd64', BUILDOS: 'linux', BUILDARCH: 'amd64', BUILDVARIANT: '', TARGETPLATFORM: 'linux/amd64', TARGETOS: 'linux', TARGETARCH: 'amd64', TARGETVARIANT: '' });
    expect(platformArgs('arm64').TARGETPLATFORM).toBe('linux/arm64');
  });
});
