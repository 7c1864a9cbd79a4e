import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { BUILDER_KINDS, ErrorCode, type BuilderKind } from '../../../protocol/index.ts';
import { classifyFailure, finalReason } from '../../../worker/builders/failure-taxonomy.ts';

/**
 * Real output: each fixture is the last lines a builder printed for one failing Dockerfile
 * (test/fixtures/builder-failures/<case>.Dockerfile), captured from a local fleet with the three
 * builders (buildah 1.28, BuildKit, kaniko) before the taxonomy existed.
 */
const dir = new URL('../../fixtures/builder-failures/', import.meta.url).pathname;
const REGISTRY = '127.0.0.1:44283';

function classify(name: string, builder: BuilderKind, target?: string) {
  const lines = readFileSync(`${dir}${name}-${builder}.log`, 'utf8').split('\n');
  const dockerfile = readFileSync(`${dir}${name}.Dockerfile`, 'utf8');
  return classifyFailure({ builder, lines, dockerfile, buildArgs: { FLEET_REGISTRY: REGISTRY }, ...(target === undefined ? {} : { target }) });
}

/** case → the code every builder must agree on, and the Dockerfile line it names (null: none, e.g. --target) */
const AGREED: readonly { name: string; code: ErrorCode; line: number | null; step?: string; exitCode?: number; target?: string }[] = [
  { name: 'copy-missing', code: ErrorCode.E_COPY_SOURCE_MISSING, line: 4, step: 'COPY missing.txt /missing.txt' },
  { name: 'add-missing', code: ErrorCode.E_COPY_SOURCE_MISSING, line: 3, step: 'ADD nothere/ /srv/' },
  { name: 'bad-instruction', code: ErrorCode.E_DOCKERFILE_INVALID, line: 4, step: 'FROBNICATE something' },
  { name: 'target-missing', code: ErrorCode.E_TARGET_NOT_FOUND, line: null, target: 'nosuch' },
  { name: 'run-exit', code: ErrorCode.E_BUILD_STEP_FAILED, line: 4, step: 'RUN exit 7', exitCode: 7 },
  // USER names no user of the image: the step never starts (captured with buildah 1.43.2)
  { name: 'user-unknown', code: ErrorCode.E_DOCKERFILE_INVALID, line: 4, step: 'RUN echo hi > /tmp/x' },
];

describe('a RUN --mount=type=bind whose source the context lacks', () => {
  // captured with buildah 1.43.2 and the fleet's kaniko (v1.25.5-fleet.5); BuildKit's reads as a
  // missing COPY source already (corpus entry fail-run-mount-bind-missing)
  it.each(['buildah', 'kaniko'] as const)('is E_COPY_SOURCE_MISSING on %s, as on BuildKit', (builder) => {
    expect(classify('bind-missing', builder)?.code).toBe(ErrorCode.E_COPY_SOURCE_MISSING);
  });
});

describe('failure taxonomy on real builder output', () => {
  describe.each(AGREED)('$name', ({ name, code, line, step, exitCode, target }) => {
    it.each(BUILDER_KINDS)(`is ${code} on %s, naming the line and the builder's reason in one line`, (builder) => {
      const error = classify(name, builder, target);
      expect(error?.code).toBe(code);
      expect(error?.message).not.toContain('\n');
      expect(error?.message).toContain(`: ${builder}: `);
      if (line !== null) expect(error?.message).toContain(`at Dockerfile line ${line} (${step ?? ''})`);
      else expect(error?.message).toContain(`--target ${target ?? ''}`);
      if (step !== undefined) expect(error?.details?.step).toBe(step);
      if (exitCode !== undefined) expect(error?.details?.exitCode).toBe(exitCode);
    });
  });

  it.each(['buildah', 'buildkit'] as const)('a base whose registry host does not resolve is final (E_BASE_NOT_FOUND) on %s, naming its FROM line', (builder) => {
    const error = classify('base-nxdomain', builder);
    expect(error?.code).toBe(ErrorCode.E_BASE_NOT_FOUND);
    expect(error?.message).toContain('at Dockerfile line 1 (FROM nonexistent.invalid/x:1)');
    expect(error?.message).toContain('no such host');
  });

  it.each(['buildah', 'buildkit'] as const)('a base registry that refuses connections stays retryable (E_REGISTRY_UNAVAILABLE) on %s', (builder) => {
    const error = classify('base-refused', builder);
    expect(error?.code).toBe(ErrorCode.E_REGISTRY_UNAVAILABLE);
    expect(error?.message).toContain('at Dockerfile line 1 (FROM 127.0.0.1:1/x:1)');
  });

  it('kaniko cannot even parse those references: left to its own E_BUILD_FAILED (the worker refuses them before any builder runs)', () => {
    expect(classify('base-nxdomain', 'kaniko')).toBeNull();
    expect(finalReason('kaniko', readFileSync(`${dir}base-nxdomain-kaniko.log`, 'utf8').split('\n'))).toBe('could not parse reference: nonexistent.invalid/x:1');
  });

  it('ignores the BuildKit cache importer\'s "not found" (no cache yet) and reads the solve error', () => {
    const lines = readFileSync(`${dir}copy-missing-buildkit.log`, 'utf8');
    expect(lines).toContain('failed to configure registry cache importer');
    expect(classify('copy-missing', 'buildkit')?.message).toMatch(/^COPY\/ADD source missing at Dockerfile line 4 \(COPY missing.txt \/missing.txt\): buildkit: failed to compute cache key: .*"\/missing.txt": not found$/);
  });

  it('drops buildah\'s parser struct from an unknown instruction', () => {
    expect(classify('bad-instruction', 'buildah')?.message).toBe('Dockerfile invalid at Dockerfile line 4 (FROBNICATE something): buildah: building at STEP "FROBNICATE ": Build error: Unknown instruction: "FROBNICATE"');
  });

  // Written, not captured: a full disk and a registry's refusals, in each builder's wording.
  it.each([
    { builder: 'buildkit', line: 'error: failed to solve: failed to copy files: copy file range failed: no space left on device', code: ErrorCode.E_RESOURCE_LIMIT },
    { builder: 'buildah', line: 'Error: committing container for step {Env:[] Command:run}: copying layers: write /var/tmp/x: no space left on device', code: ErrorCode.E_RESOURCE_LIMIT },
    { builder: 'kaniko', line: 'error building image: error building stage: failed to take snapshot: write /kaniko/x: no space left on device', code: ErrorCode.E_RESOURCE_LIMIT },
    { builder: 'buildkit', line: 'error: failed to solve: r/x:1: failed to resolve source metadata for r/x:1: failed to authorize: failed to fetch anonymous token: unexpected status from GET request to http://r/token: 401 Unauthorized', code: ErrorCode.E_BASE_UNAUTHORIZED },
    { builder: 'buildah', line: 'Error: creating build container: initializing source docker://r/x:1: reading manifest 1 in r/x: unauthorized: authentication required', code: ErrorCode.E_BASE_UNAUTHORIZED },
    { builder: 'kaniko', line: 'error building image: unable to complete operation after 0 attempts, last error: GET http://r/v2/x/manifests/1: UNAUTHORIZED: authentication required', code: ErrorCode.E_BASE_UNAUTHORIZED },
    { builder: 'buildkit', line: 'error: failed to solve: r/x:1: failed to resolve source metadata for r/x:1: r/x:1: not found', code: ErrorCode.E_BASE_NOT_FOUND },
    { builder: 'buildah', line: 'Error: creating build container: initializing source docker://r/x:1: reading manifest 1 in r/x: manifest unknown', code: ErrorCode.E_BASE_NOT_FOUND },
    { builder: 'kaniko', line: 'error building image: unable to complete operation after 0 attempts, last error: GET http://r/v2/x/manifests/1: MANIFEST_UNKNOWN: manifest unknown', code: ErrorCode.E_BASE_NOT_FOUND },
    { builder: 'buildkit', line: 'error: failed to solve: r/x:1: failed to resolve source metadata for r/x:1: unexpected status from HEAD request to http://r/v2/x/manifests/1: 503 Service Unavailable', code: ErrorCode.E_REGISTRY_UNAVAILABLE },
    { builder: 'kaniko', line: 'error building image: unable to complete operation after 0 attempts, last error: GET http://r/v2/x/manifests/1: TOOMANYREQUESTS: slow down', code: ErrorCode.E_REGISTRY_UNAVAILABLE },
    // Refusals the conformance corpus found each builder makes in its own words (test/conformance/differences.ts).
    { builder: 'buildah', line: 'Error: building at STEP "ENV ": ENV requires at least one argument', code: ErrorCode.E_DOCKERFILE_INVALID },
    { builder: 'buildkit', line: 'error: failed to solve: variable expansion is not supported for --from, define a new stage with FROM using ARG from global scope as a workaround', code: ErrorCode.E_DOCKERFILE_INVALID },
    { builder: 'kaniko', line: 'error building image: error building stage: failed to execute command: when specifying multiple sources in a COPY command, destination must be a directory and end in \'/\'', code: ErrorCode.E_DOCKERFILE_INVALID },
    { builder: 'kaniko', line: 'error building image: could not parse reference: ${FLEET_REGISTRY}/conformance/busybox:1', code: ErrorCode.E_DOCKERFILE_INVALID },
  ] as const)('$builder: $code for "$line"', ({ builder, line, code }) => {
    expect(classifyFailure({ builder, lines: ['earlier output', line], dockerfile: 'FROM r/x:1\nRUN true\n' })?.code).toBe(code);
  });

  it.each([
    { builder: 'buildkit', line: 'error: failed to solve: failed to load cache key: Get "http://127.0.0.1:47123/tool": dial tcp 127.0.0.1:47123: connect: connection refused' },
    { builder: 'buildkit', line: 'error: failed to solve: failed to load cache key: invalid response status 404' },
    { builder: 'kaniko', line: 'error building image: error building stage: failed to execute command: downloading remote source file: Get "http://127.0.0.1:47123/tool": dial tcp 127.0.0.1:47123: connect: connection refused' },
  ] as const)("$builder: an ADD URL it could not fetch is the Dockerfile's source, final, not a registry outage: $line", ({ builder, line }) => {
    const dockerfile = 'FROM r/x:1\nADD http://127.0.0.1:47123/tool /tool\n';
    const error = classifyFailure({ builder, lines: ['earlier output', line], dockerfile });
    expect(error?.code).toBe(ErrorCode.E_COPY_SOURCE_MISSING);
    expect(error?.message).toContain('ADD source could not be fetched');
    if (line.includes('Get "')) expect(error?.details?.step).toBe('ADD http://127.0.0.1:47123/tool /tool');
  });

  it('names the right RUN when buildah quotes a step holding quotes (it does not escape them)', () => {
    const dockerfile = 'FROM r/x:1\nRUN echo "preparing the build"\nRUN echo "about to fail" && exit 42\n';
    const lines = ['STEP 3/3: RUN echo "about to fail" && exit 42', 'about to fail', 'Error: building at STEP "RUN echo "about to fail" && exit 42": while running runtime: exit status 42'];
    const error = classifyFailure({ builder: 'buildah', lines, dockerfile });
    expect(error?.details).toEqual({ step: 'RUN echo "about to fail" && exit 42', exitCode: 42 });
    expect(error?.message).toContain('at Dockerfile line 3 (RUN echo "about to fail" && exit 42) with exit code 42');
  });

  it('recognises nothing in output without the builder\'s final error line', () => {
    for (const builder of BUILDER_KINDS) expect(classifyFailure({ builder, lines: ['#1 DONE 0.0s', 'STEP 1/2: FROM x'], dockerfile: 'FROM x' })).toBeNull();
  });
});
