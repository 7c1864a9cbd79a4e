import { describe, expect, it } from 'vitest';
import { ErrorCode, isFleetError } from '../../protocol/index.ts';
import { buildkitChecks, isDockerfileFrontend, parserDirectives, syntaxNote } from '../../worker/dockerfile-directives.ts';

describe('Dockerfile parser directives', () => {
  it('reads directives as BuildKit does: after a BOM or a #! line, up to the first other line', () => {
    expect(parserDirectives('\uFEFF# syntax = docker/dockerfile:1.7\n# check=error=true\nFROM x\n').get('syntax')).toEqual({ value: 'docker/dockerfile:1.7', line: 1 });
    expect(parserDirectives('#!/usr/bin/env buildctl\n#SYNTAX=docker/dockerfile:1\nFROM x\n').get('syntax')).toEqual({ value: 'docker/dockerfile:1', line: 2 });
    // a comment, a blank line or an unknown key ends them: what follows is a comment
    expect(parserDirectives('# a comment\n# syntax=evil/frontend\nFROM x\n').size).toBe(0);
    expect(parserDirectives('\n# syntax=evil/frontend\nFROM x\n').size).toBe(0);
    expect(parserDirectives('# foo=bar\n# syntax=evil/frontend\nFROM x\n').size).toBe(0);
    expect(parserDirectives('FROM x\n# syntax=evil/frontend\n').size).toBe(0);
  });

  it("knows Docker's Dockerfile frontend under its names, tags and digests, and nothing else", () => {
    for (const ref of ['docker/dockerfile:1', 'docker/dockerfile:1.7-labs', 'docker.io/docker/dockerfile:1.4', 'docker/dockerfile-upstream:master', `docker/dockerfile@sha256:${'a'.repeat(64)}`, 'docker/dockerfile']) expect(isDockerfileFrontend(ref), ref).toBe(true);
    for (const ref of ['example.com/docker/dockerfile:1', 'docker/dockerfile-evil:1', 'tonistiigi/dockerfile:1', 'docker/dockerfile:1 ; x', 'ghcr.io/docker/dockerfile:1']) expect(isDockerfileFrontend(ref), ref).toBe(false);
  });

  it("builds Docker's frontend with the builder's parser and refuses another one, naming the line", () => {
    expect(syntaxNote('# syntax=docker/dockerfile:1\nFROM x\n', 'kaniko')).toContain("kaniko's own Dockerfile parser");
    expect(syntaxNote('FROM x\n', 'kaniko')).toBeNull();
    try {
      syntaxNote('# syntax=example.com/frontends/yaml:1 --flag\nFROM x\n', 'buildah');
      expect.unreachable();
    } catch (e) {
      expect(isFleetError(e, ErrorCode.E_DOCKERFILE_INVALID)).toBe(true);
      expect((e as Error).message).toContain('line 1: "# syntax=example.com/frontends/yaml:1"');
    }
  });

  it("keeps the Dockerfile's check options and skips the rule the platform's FROM convention trips", () => {
    expect(buildkitChecks('FROM x\n')).toBe('skip=InvalidDefaultArgInFrom');
    expect(buildkitChecks('# check=error=true\nFROM x\n')).toBe('skip=InvalidDefaultArgInFrom;error=true');
    expect(buildkitChecks('# check=skip=JSONArgsRecommended, StageNameCasing;error=true\nFROM x\n')).toBe('skip=JSONArgsRecommended,StageNameCasing,InvalidDefaultArgInFrom;error=true');
    expect(buildkitChecks('# check=skip=all\nFROM x\n')).toBe('skip=all');
  });
});
