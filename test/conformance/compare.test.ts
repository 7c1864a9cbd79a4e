import { describe, expect, it } from 'vitest';
import type { BuilderKind } from '../../protocol/index.ts';
import { compareEntry, type BuildFacts } from './compare.ts';
import { Expectation, type CorpusEntry } from './corpus.ts';
import type { ImageFacts } from './image-facts.ts';

const entry = (expect: unknown = {}): CorpusEntry => ({ name: 'unit-entry-not-in-corpus', dir: '/nonexistent', expect: Expectation.parse(expect) });
const image = (config: ImageFacts['config'], tree: ImageFacts['tree'] = []): BuildFacts => ({ outcome: 'pushed', seconds: 1, attempt: 1, image: { digest: 'sha256:x', config, tree } });
const failed = (code: string, exitCode?: number): BuildFacts => ({ outcome: 'failed', seconds: 1, attempt: 1, code, message: `${code} message`, ...(exitCode === undefined ? {} : { exitCode }) });
const facts = (byBuilder: Partial<Record<BuilderKind, BuildFacts>>): Map<BuilderKind, BuildFacts> => new Map(Object.entries(byBuilder) as [BuilderKind, BuildFacts][]);
const verdicts = (c: ReturnType<typeof compareEntry>): Record<string, string> => Object.fromEntries(c.cells.map((x) => [x.builder, x.verdict]));

describe('conformance compare', () => {
  it('three identical images agree', () => {
    const same = image({ User: '1000', Env: ['PATH=/bin'] });
    expect(verdicts(compareEntry(entry(), facts({ buildah: same, buildkit: same, kaniko: same })))).toEqual({ buildah: 'agrees', buildkit: 'agrees', kaniko: 'agrees' });
  });

  it('the builder off the majority differs, on the field that differs', () => {
    const c = compareEntry(entry(), facts({ buildah: image({ User: 'app' }), buildkit: image({ User: '1000' }), kaniko: image({ User: '1000' }) }));
    expect(verdicts(c)).toEqual({ buildah: 'differs', buildkit: 'agrees', kaniko: 'agrees' });
    expect(c.cells[0]?.differences).toEqual([{ aspect: 'config.User', got: 'app', wanted: '1000' }]);
  });

  it('file trees are compared line by line', () => {
    const file = { path: '/d/a', type: 'file' as const, mode: '0644', owner: '0:0', sha256: 'aa' };
    const c = compareEntry(entry(), facts({ buildah: image({}, [file]), buildkit: image({}, [file]), kaniko: image({}, [{ ...file, owner: '1000:1000' }]) }));
    expect(c.cells[2]?.differences[0]).toMatchObject({ aspect: 'tree', got: '/d/a file 0644 1000:1000 aa (majority: /d/a file 0644 0:0 aa)' });
  });

  it('a compared path missing from an image differs even when every builder agrees on it', () => {
    const c = compareEntry(entry({ files: ['/made'] }), facts({ buildah: image({}), buildkit: image({}), kaniko: image({}) }));
    expect(verdicts(c)).toEqual({ buildah: 'differs', buildkit: 'differs', kaniko: 'differs' });
    expect(c.cells[0]?.differences).toEqual([{ aspect: 'missing', got: '/made', wanted: 'present' }]);
  });

  it('a failure is held against the expected outcome, code and exit code, even when all builders agree', () => {
    const c = compareEntry(entry({ outcome: 'failed', code: 'E_BUILD_STEP_FAILED', exitCode: 3 }), facts({ buildah: failed('E_BUILD_STEP_FAILED', 3), buildkit: failed('E_BUILD_FAILED'), kaniko: image({}) }));
    expect(verdicts(c)).toEqual({ buildah: 'agrees', buildkit: 'differs', kaniko: 'differs' });
    expect(c.cells[1]?.differences.map((d) => d.aspect)).toEqual(['code', 'exitCode']);
    expect(c.cells[2]?.differences.map((d) => d.aspect)).toEqual(['outcome']);
  });

  it('with no two builders agreeing, BuildKit (Docker\'s builder) is the reference', () => {
    const c = compareEntry(entry(), facts({ buildah: failed('E_DOCKERFILE_INVALID'), buildkit: image({ Cmd: ['a'] }), kaniko: image({}) }));
    expect(verdicts(c)).toEqual({ buildah: 'differs', buildkit: 'agrees', kaniko: 'differs' });
    expect(c.cells[2]?.differences).toEqual([{ aspect: 'config.Cmd', got: '(not set)', wanted: '["a"]' }]);
  });

  it('with no majority and no BuildKit image, every pushed builder differs', () => {
    const c = compareEntry(entry(), facts({ buildah: image({ Cmd: ['b'] }), kaniko: image({}) }));
    expect(verdicts(c)).toEqual({ buildah: 'differs', kaniko: 'differs' });
  });
});
