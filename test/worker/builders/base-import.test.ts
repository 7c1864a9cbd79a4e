import { describe, expect, it } from 'vitest';
import { kanikoCopyFromStages, pinFromLines, repositoryOf, type ImportedBase } from '../../../worker/builders/base-import.ts';
import { buildctlArgs, contextName } from '../../../worker/builders/buildkit.ts';
import type { BuildPlan } from '../../../worker/builders/types.ts';

const D = 'sha256:1111111111111111111111111111111111111111111111111111111111111111';
const base = (image: string): ImportedBase => ({ image, digest: D, pinned: `${repositoryOf(image)}@${D}` });

describe('base import', () => {
  it('repositoryOf drops a tag and a digest, keeping a registry port', () => {
    expect(repositoryOf('127.0.0.1:5000/official/base:1')).toBe('127.0.0.1:5000/official/base');
    expect(repositoryOf(`127.0.0.1:5000/official/base@${D}`)).toBe('127.0.0.1:5000/official/base');
    expect(repositoryOf('127.0.0.1:5000/official/base')).toBe('127.0.0.1:5000/official/base');
  });

  it('pinFromLines pins each imported FROM (build args expanded, --platform and AS kept) and leaves stages alone', () => {
    const dockerfile = 'ARG FLEET_REGISTRY\nARG TAG=1\nFROM --platform=linux/amd64 ${FLEET_REGISTRY}/official/base:$TAG AS build\nRUN true\nFROM build\nFROM r:5000/other/img:2\n';
    const pinned = pinFromLines(dockerfile, { FLEET_REGISTRY: 'r:5000' }, [base('r:5000/official/base:1')]);
    expect(pinned.split('\n')).toEqual([
      'ARG FLEET_REGISTRY', 'ARG TAG=1', `FROM --platform=linux/amd64 r:5000/official/base@${D} AS build`, 'RUN true', 'FROM build', 'FROM r:5000/other/img:2', '',
    ]);
  });

  it('pinFromLines reads FROMs as fromImages does: an ARG whose default names another ARG, ${X:-default}', () => {
    const dockerfile = 'ARG FLEET_REGISTRY\nARG REPO=conformance/busybox\nARG REF=${REPO}:1\nFROM ${FLEET_REGISTRY}/${REF} AS first\nARG LEVEL=one\nFROM first\nFROM ${MISSING:-r:5000/x/y:2}\n';
    const pinned = pinFromLines(dockerfile, { FLEET_REGISTRY: 'r:5000' }, [base('r:5000/conformance/busybox:1'), base('r:5000/x/y:2')]);
    expect(pinned.split('\n')).toEqual([
      'ARG FLEET_REGISTRY', 'ARG REPO=conformance/busybox', 'ARG REF=${REPO}:1', `FROM r:5000/conformance/busybox@${D} AS first`, 'ARG LEVEL=one', 'FROM first', `FROM r:5000/x/y@${D}`, '',
    ]);
  });

  it('kanikoCopyFromStages turns each imported COPY --from image into a pinned stage before the first FROM (continued lines too) and shifts stage indexes past them', () => {
    const dockerfile = ['ARG FLEET_REGISTRY', 'FROM r:5000/official/base:1 AS build', 'COPY --from=build /a /a', 'COPY --from=0 /a /b', 'COPY --chown=1 \\', '  --from=r:5000/tools/lint:2 /lint /lint', 'COPY --from=r:5000/not/imported:1 /x /x', 'RUN --mount=from=r:5000/tools/lint:2 true', ''].join('\n');
    expect(kanikoCopyFromStages(dockerfile, [base('r:5000/tools/lint:2')]).split('\n')).toEqual([
      'ARG FLEET_REGISTRY', `FROM r:5000/tools/lint@${D} AS fleet-copy-from-0`, 'FROM r:5000/official/base:1 AS build', 'COPY --from=build /a /a', 'COPY --from=1 /a /b', 'COPY --chown=1 \\', '  --from=fleet-copy-from-0 /lint /lint', 'COPY --from=r:5000/not/imported:1 /x /x', 'RUN --mount=from=r:5000/tools/lint:2 true', '',
    ]);
    expect(kanikoCopyFromStages('FROM a\nCOPY --from=0 /a /a\n', [base('r:5000/tools/lint:2')])).toBe('FROM a\nCOPY --from=0 /a /a\n');
  });

  it('names BuildKit contexts as the dockerfile frontend looks them up (familiar form, no :latest)', () => {
    expect(contextName('r:5000/official/base:1')).toBe('r:5000/official/base:1');
    expect(contextName('r:5000/official/base:latest')).toBe('r:5000/official/base');
    expect(contextName('docker.io/library/debian:12')).toBe('debian:12');
    expect(contextName('docker.io/acme/tool:latest')).toBe('acme/tool');
    expect(contextName(`r:5000/x@${D}`)).toBe(`r:5000/x@${D}`);
  });

  it('buildctl reads bases from the layout, writes an OCI layout, keeps the cache local, and forces network none when asked', () => {
    const plan: BuildPlan = { buildId: 'b', contextDir: '/c', dockerfile: '/c/Dockerfile', buildArgs: {}, secrets: {}, labels: {}, destinations: ['r:5000/a/b:1'], workDir: '/w' };
    const args = buildctlArgs(plan, '/w/m.json', { layout: '/w/out', baseLayout: '/s/bases/oci', bases: [base('r:5000/official/base:1')], network: 'none', checks: 'skip=InvalidDefaultArgInFrom', cache: { dir: '/s/cache/x', filled: true } }).join(' ');
    expect(args).toContain('--oci-layout fleetbases=/s/bases/oci');
    expect(args).toContain(`--opt context:r:5000/official/base:1=oci-layout://fleetbases@${D}`);
    expect(args).toContain('--output type=oci,dest=/w/out,tar=false');
    expect(args).toContain('--import-cache type=local,src=/s/cache/x');
    expect(args).toContain('--export-cache type=local,dest=/s/cache/x');
    expect(args).toContain('--opt force-network-mode=none');
    expect(args).not.toMatch(/type=registry|push=true/);
    // a COPY --from image is one more named context, looked up by the name the instruction gives
    const copy = buildctlArgs(plan, '/w/m.json', { layout: '/w/out', baseLayout: '/s/b', bases: [base('r:5000/tools/lint:2')], network: 'private', checks: 'skip=InvalidDefaultArgInFrom' }).join(' ');
    expect(copy).toContain(`--opt context:r:5000/tools/lint:2=oci-layout://fleetbases@${D}`);
    expect(buildctlArgs(plan, '/w/m.json', { layout: '/w/out', baseLayout: '/s/b', bases: [], network: 'private', checks: 'skip=InvalidDefaultArgInFrom' }).join(' ')).not.toContain('force-network-mode');
  });
});
