import { describe, expect, it } from 'vitest';
import { secretMounts } from '../../../worker/builders/kaniko.ts';

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
