import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LocalFleet } from '../../deploy/local/fleet.ts';
import { BUILDER_KINDS, type BuilderKind } from '../../protocol/index.ts';
import { archivedLog, startTestFleet } from '../helpers/fleet.ts';

/** Enough output, fast enough, that BuildKit's default step limits (2 MiB, 200 KiB/s) would clip it. */
const LINES = 50_000;
const NUMBERED = /line (\d{5})$/;

let fleet: LocalFleet;
let context: string;
let contextDir: string;

beforeAll(async () => {
  contextDir = await mkdtemp(join(tmpdir(), 'fleet-chatty-'));
  await writeFile(
    join(contextDir, 'Dockerfile'),
    `ARG FLEET_REGISTRY\nFROM \${FLEET_REGISTRY}/official/base:1\nRUN seq -f 'line %05g' 1 ${LINES}\nUSER 1000\n`,
  );
  fleet = await startTestFleet({ workers: 1, coordinator: { pools: ['buildkit', 'kaniko'] } });
  for (const builder of ['buildkit', 'kaniko'] as const) await fleet.addWorker({ pool: builder, builder });
  context = (await fleet.client.uploadContext(contextDir)).digest;
});
afterAll(async () => {
  await fleet?.stop();
  await rm(contextDir, { recursive: true, force: true });
});

/** The numbers of the step's lines, in the order they came. */
function numbers(texts: readonly string[]): number[] {
  return texts.flatMap((t) => {
    const m = NUMBERED.exec(t);
    return m?.[1] === undefined ? [] : [Number(m[1])];
  });
}

const expected = Array.from({ length: LINES }, (_, i) => i + 1);

describe.each(BUILDER_KINDS)('complete logs: %s', (builder: BuilderKind) => {
  it(`complete logs (${builder}): a step printing ${LINES} lines at full speed arrives whole and in order, live and in the archive`, async () => {
    const id = `chatty-${builder}`;
    await fleet.client.submit({ id, context: { digest: context }, pool: builder === 'buildah' ? 'default' : builder, image: { repository: 'logs/chatty', tags: [builder] } });
    const live: string[] = [];
    const done = await fleet.client.follow(id, { line: (l) => void live.push(l.text) });
    expect(done.state).toMatchObject({ phase: 'pushed' });
    const all = live.join('\n');
    expect(all).not.toMatch(/output clipped|log limit/);
    expect(numbers(live)).toEqual(expected);
    const archived = (await archivedLog(fleet, id))
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => (JSON.parse(l) as { text?: string }).text ?? '');
    expect(archived.join('\n')).not.toMatch(/output clipped|log limit/);
    expect(numbers(archived)).toEqual(expected);
  }, 600_000);
});
