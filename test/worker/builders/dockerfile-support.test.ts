import { describe, expect, it } from 'vitest';
import { ErrorCode } from '../../../protocol/index.ts';
import { unsupportedFeature } from '../../../worker/builders/dockerfile-support.ts';

const refused = (builder: string, line: string): string | null => {
  const e = unsupportedFeature(`FROM x\nWORKDIR /src\n${line}\n`, builder);
  if (e === null) return null;
  expect(e.code).toBe(ErrorCode.E_DOCKERFILE_INVALID);
  expect(e.message).toContain(`line 3 (${line.split('\n')[0] ?? ''}`);
  return e.message;
};

describe('Dockerfile features a builder does not have', () => {
  it.each([
    ['a bind mount from a stage', 'RUN --mount=type=bind,from=build,source=/out,target=/o true', 'kaniko binds only the build context'],
    ['a bind mount from an image, naming no type (bind is the default)', 'RUN --mount=from=r/tools:1,target=/t true', 'kaniko binds only the build context'],
    ['COPY --exclude', 'COPY --exclude=*.pem . /app/', 'would copy the excluded files'],
    ['ADD --exclude', 'ADD --exclude=**/*.log app/ /app/', 'would copy the excluded files'],
    ['COPY --parents', 'COPY --parents src/*/f.txt /out/', 'would flatten the tree'],
    ['a symbolic --chmod', 'COPY --chmod=u+x,go-w run.sh /bin/', 'only an octal mode'],
  ])('kaniko refuses %s', (_what, line, reason) => {
    expect(refused('kaniko', line)).toContain(reason);
  });

  it.each([
    ['a bind mount of a file from the context', 'RUN --mount=type=bind,source=go.mod,target=go.mod go mod download'],
    ['the whole context bound, naming no type', 'RUN --mount=target=. go build .'],
    ['a cache mount, a secret mount, and a flag-like word in the command', 'RUN --mount=type=cache,target=/c --mount=type=secret,id=s echo --mount=type=bind,from=x'],
    ['an octal --chmod and --chown', 'COPY --chmod=0755 --chown=1000:1000 run.sh /bin/'],
    ['a --chmod from a build arg', 'COPY --chmod=$MODE run.sh /bin/'],
  ])('kaniko builds %s', (_what, line) => {
    expect(refused('kaniko', line)).toBeNull();
  });

  it('buildah refuses an --exclude it would match from the context root where BuildKit matches from the source', () => {
    expect(refused('buildah', 'COPY --exclude=*.log app/ /app/')).toContain('write --exclude=**/*.log');
    expect(refused('buildah', 'COPY ["app/", "/app/"]')).toBeNull();
    expect(refused('buildah', 'COPY --exclude=**/*.log app/ /app/')).toBeNull();
    expect(refused('buildah', 'COPY --exclude=*.log --exclude=Dockerfile . /app/')).toBeNull();
    expect(refused('buildah', 'COPY --chmod=u+x run.sh /bin/')).toContain('only an octal mode');
    expect(refused('buildah', 'RUN --mount=type=bind,target=. make')).toBeNull();
  });

  it('buildah and kaniko refuse an EXPOSE range, which they would write as one port key', () => {
    for (const builder of ['buildah', 'kaniko']) {
      expect(refused(builder, 'EXPOSE 80 8000-8002/udp')).toContain('"8000-8002/udp"');
      expect(refused(builder, 'EXPOSE 80 443/tcp $PORT')).toBeNull();
    }
  });

  it('buildah and kaniko refuse a secret as an environment variable, which they would leave unset', () => {
    for (const builder of ['buildah', 'kaniko']) {
      expect(refused(builder, 'RUN --mount=type=secret,id=npm_token,env=NPM_TOKEN npm ci')).toContain('read it from /run/secrets/npm_token');
      expect(refused(builder, 'RUN --mount=type=secret,id=npm_token,target=/root/.npmrc npm ci')).toBeNull();
    }
  });

  it('BuildKit has all of them', () => {
    for (const line of ['COPY --exclude=*.log app/ /app/', 'COPY --parents a/*/f /o/', 'COPY --chmod=u+x run.sh /bin/', 'RUN --mount=target=. make', 'EXPOSE 8000-8002', 'RUN --mount=type=secret,id=t,env=T true']) expect(refused('buildkit', line)).toBeNull();
  });
});
