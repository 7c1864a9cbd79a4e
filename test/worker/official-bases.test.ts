import { describe, expect, it } from 'vitest';
import { fromImages } from '../../worker/official-bases.ts';

describe('FROM images a build pulls', () => {
  it('expands ARG defaults and build args, and skips stages and scratch', () => {
    const dockerfile = [
      'ARG FLEET_REGISTRY',
      'ARG BASE=official/base:1',
      'FROM ${FLEET_REGISTRY}/official/jdk17:1 AS build',
      'FROM build AS test',
      'FROM --platform=linux/amd64 $FLEET_REGISTRY/${BASE}',
      'FROM scratch',
    ].join('\n');
    expect(fromImages(dockerfile, { FLEET_REGISTRY: 'r:5000' }).map((f) => f.image)).toEqual(['r:5000/official/jdk17:1', 'r:5000/official/base:1']);
    expect(fromImages(dockerfile, { FLEET_REGISTRY: 'r:5000', BASE: 'official/x:2' })[1]).toEqual({ raw: '$FLEET_REGISTRY/${BASE}', image: 'r:5000/official/x:2', line: 5 });
  });

  it('reads FROM flags, stage names in any case, quoted ARG defaults, ${X:-default}, continuations and comments', () => {
    const dockerfile = [
      '# syntax comment',
      'ARG REG="r:5000"',
      "ARG TAG='1' OTHER=x",
      'ARG UNSET',
      'FROM --platform=$BUILDPLATFORM ${REG}/official/jdk17:${TAG} AS Build',
      'RUN make',
      'FROM build',
      'FROM BUILD AS again',
      'FROM \\',
      '  # a comment inside',
      '  ${UNSET:-r:5000/official/base}:${TAG:+2}',
      'ARG LATE=ignored/after/first:from',
      'FROM ${LATE:-r:5000/late}:1',
      'from Scratch',
    ].join('\n');
    expect(fromImages(dockerfile, {})).toEqual([
      { raw: '${REG}/official/jdk17:${TAG}', image: 'r:5000/official/jdk17:1', line: 5 },
      { raw: '${UNSET:-r:5000/official/base}:${TAG:+2}', image: 'r:5000/official/base:2', line: 9 },
      { raw: '${LATE:-r:5000/late}:1', image: 'r:5000/late:1', line: 13 },
    ]);
    expect(fromImages(dockerfile, { REG: 'other:1', UNSET: 'x/y' }).map((f) => f.image)).toEqual(['other:1/official/jdk17:1', 'x/y:2', 'r:5000/late:1']);
  });

  it('skips heredoc bodies, which may hold anything', () => {
    const dockerfile = ['FROM r/a:1 AS one', 'RUN <<EOF', 'FROM r/not-an-image:1', 'EOF', 'COPY <<-"A" /a <<B /b', '\tFROM r/nor-this:1', '\tA', 'FROM r/still-not:1', 'B', 'FROM r/b:2'].join('\n');
    expect(fromImages(dockerfile, {})).toEqual([
      { raw: 'r/a:1', image: 'r/a:1', line: 1 },
      { raw: 'r/b:2', image: 'r/b:2', line: 10 },
    ]);
  });
});
