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
    expect(fromImages(dockerfile, { FLEET_REGISTRY: 'r:5000', BASE: 'official/x:2' })[1]).toEqual({ raw: '$FLEET_REGISTRY/${BASE}', image: 'r:5000/official/x:2' });
  });
});
