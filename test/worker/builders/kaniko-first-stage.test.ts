import { describe, expect, it } from 'vitest';
import { kanikoFinalStageBase, kanikoFirstStageBase } from '../../../worker/builders/kaniko-first-stage.ts';
import { KanikoOutput } from '../../../worker/builders/kaniko.ts';
import { LogMasker } from '../../../worker/log-masker.ts';
import type { BuildOutput } from '../../../worker/builders/types.ts';

const A = 'r/official/base@sha256:aa';
const B = 'r/official/jdk@sha256:bb';

describe('the stage kaniko builds first', () => {
  it('is the only stage of a one-stage Dockerfile', () => {
    expect(kanikoFirstStageBase(`FROM ${A}\nRUN true\n`, undefined)).toBe(A);
  });

  it('is the first stage in file order when every stage is kept', () => {
    // the final stage copies nothing: kaniko keeps all stages, unused ones included
    expect(kanikoFirstStageBase(`FROM ${B} AS unused\nRUN true\nFROM ${A}\nRUN true\n`, undefined)).toBe(B);
  });

  it('skips an unused stage once the final stage copies from another', () => {
    const dockerfile = `FROM ${B} AS unused\nRUN true\nFROM ${B} AS build\nRUN make\nFROM ${A}\nCOPY --from=build /out /out\n`;
    expect(kanikoFirstStageBase(dockerfile, undefined)).toBe(B);
    expect(kanikoFirstStageBase(`FROM ${B} AS unused\nRUN true\nFROM ${A}\nCOPY . /app\nRUN true\n`, undefined)).toBe(A);
  });

  it('follows --target and the stages it is built on', () => {
    const dockerfile = `FROM ${A} AS base\nRUN true\nFROM base AS test\nRUN true\nFROM ${B} AS other\nRUN true\n`;
    expect(kanikoFirstStageBase(dockerfile, 'test')).toBe(A);
    expect(kanikoFirstStageBase(dockerfile, 'OTHER')).toBe(B);
  });

  it('resolves COPY --from=<index> to that stage', () => {
    const dockerfile = `FROM ${B} AS first\nRUN true\nFROM ${A} AS second\nRUN true\nFROM ${A}\nCOPY --from=1 /x /x\n`;
    expect(kanikoFirstStageBase(dockerfile, undefined)).toBe(A);
  });

  it('is none for scratch, a stage name or an unknown target', () => {
    expect(kanikoFirstStageBase('FROM scratch\nCOPY x /x\n', undefined)).toBeNull();
    expect(kanikoFirstStageBase(`FROM ${A}\n`, 'missing')).toBeNull();
    expect(kanikoFirstStageBase('', undefined)).toBeNull();
  });
});

describe('the final stage a second container can hold unpacked', () => {
  it('is the base of the stage kaniko builds last, when it builds others before it', () => {
    const dockerfile = `FROM ${B} AS build\nRUN make\nFROM ${A} AS runtime\nCOPY --from=build /out /out\nFROM runtime AS debug\nRUN true\n`;
    expect(kanikoFinalStageBase(dockerfile, 'runtime')).toBe(A);
    expect(kanikoFinalStageBase(`FROM ${B} AS unused\nRUN true\nFROM ${A}\nRUN true\n`, undefined)).toBe(A);
  });

  it('is none for a one-stage build, a final stage on another stage or on scratch', () => {
    expect(kanikoFinalStageBase(`FROM ${A}\nRUN true\n`, undefined)).toBeNull();
    // --target build: kaniko builds that stage alone
    expect(kanikoFinalStageBase(`FROM ${B} AS build\nRUN make\nFROM ${A}\nCOPY --from=build /out /out\n`, 'build')).toBeNull();
    expect(kanikoFinalStageBase(`FROM ${A} AS base\nRUN true\nFROM base\nRUN true\n`, undefined)).toBeNull();
    expect(kanikoFinalStageBase(`FROM ${B} AS build\nRUN make\nFROM scratch\nCOPY --from=build /out /out\n`, undefined)).toBeNull();
    expect(kanikoFinalStageBase(`FROM ${A}\n`, 'missing')).toBeNull();
  });
});

describe("kaniko's own word on its first stage", () => {
  const sink = (): BuildOutput & { lines: string[] } => {
    const lines: string[] = [];
    return { masker: new LogMasker([]), maxLine: 4096, lines, line: (_s, text) => Promise.resolve(void lines.push(text)) };
  };
  const logrus = (msg: string): string => `time="2026-11-30T01:43:00Z" level=info msg="${msg}"`;

  it('is read from the first announcement only: a RUN step printing a look-alike later changes nothing', async () => {
    const seen: string[] = [];
    const out = new KanikoOutput(sink(), (base) => seen.push(base));
    await out.line('stderr', logrus(`Building stage '${B}' [idx: '0', base-idx: '-1']`));
    await out.line('stdout', logrus(`Building stage '${A}' [idx: '0', base-idx: '-1']`));
    await out.line('stderr', logrus(`Building stage '${A}' [idx: '1', base-idx: '-1']`));
    expect(out.firstStage).toBe(B);
    expect(seen).toEqual([B]);
  });

  it('is the final stage in a --final-stage-only run, which announces it with its own index', async () => {
    const out = new KanikoOutput(sink());
    await out.line('stderr', logrus(`Building stage '${A}' [idx: '1', base-idx: '-1']`));
    expect(out.firstStage).toBe(A);
  });

  it('is not taken from plain output', async () => {
    const out = new KanikoOutput(sink());
    await out.line('stdout', `Building stage '${A}' [idx: '0', base-idx: '-1']`);
    expect(out.firstStage).toBeNull();
  });
});
