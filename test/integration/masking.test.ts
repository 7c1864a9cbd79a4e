import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LocalFleet } from '../../deploy/local/fleet.ts';
import type { LogLine } from '../../protocol/index.ts';
import { archivedLog, startTestFleet } from '../helpers/fleet.ts';

/** named like a secret: the gate flags it by name */
const NPM_TOKEN = 'tok-live-4be1c0ffee7a9d22';
/** named like nothing, but an npm token: the gate flags it by value */
const NOTE = `npm_${'Zq7'.repeat(12)}`;

/** Build args are not build secrets, yet BuildKit prints each step with its args expanded. */
describe('masking build args (BuildKit)', () => {
  let fleet: LocalFleet;
  let context: string;
  beforeAll(async () => {
    fleet = await startTestFleet({ workers: 0, coordinator: { pools: ['buildkit'] } });
    await fleet.addWorker({ pool: 'buildkit', builder: 'buildkit' });
    context = await mkdtemp(join(tmpdir(), 'fleet-masking-'));
    await writeFile(
      join(context, 'Dockerfile'),
      [
        'ARG FLEET_REGISTRY',
        'FROM ${FLEET_REGISTRY}/official/base:1',
        'ARG NPM_TOKEN',
        'ARG NOTE',
        'ARG GREETING',
        'RUN echo "//registry.npmjs.org/:_authToken=${NPM_TOKEN}" > /tmp/npmrc && echo "note ${NOTE}" > /dev/null && echo "${GREETING} from the build"',
        'USER 10001',
        '',
      ].join('\n'),
    );
  });
  afterAll(async () => {
    await fleet?.stop();
    if (context !== undefined) await rm(context, { recursive: true, force: true });
  });

  it('masks a build-arg token in BuildKit step headers, live and in the S3 archive, and leaves ordinary args alone', async () => {
    const { digest } = await fleet.client.uploadContext(context);
    await fleet.client.submit({ id: 'masked-args', context: { digest }, pool: 'buildkit', buildArgs: { NPM_TOKEN, NOTE, GREETING: 'hello' }, image: { repository: 'app/masking', tags: ['1'] } });
    // The no-secrets gate then blocks the image (the args are in its history); the log must not have leaked them first.
    const done = await fleet.client.follow('masked-args', {});
    expect(done.state.phase).toBe('failed');
    const lines: LogLine[] = [];
    await fleet.client.logs('masked-args', { line: (l) => lines.push(l) }, { follow: false });
    const live = lines.map((l) => l.text).join('\n');
    const archive = await archivedLog(fleet, 'masked-args');
    for (const text of [live, archive]) {
      // BuildKit's header for the RUN step, with the args expanded and the secret ones masked
      // (its number depends on whether the base counts as a step: not when it comes in as a context).
      expect(text).toMatch(/#\d+ \[\d\/\d\] RUN echo \\?"\/\/registry\.npmjs\.org\/:_authToken=\*\*\*\\?" > \/tmp\/npmrc && echo \\?"note \*\*\*\\?"/);
      expect(text).toContain('hello from the build');
      expect(text).not.toContain(NPM_TOKEN);
      expect(text).not.toContain(NOTE);
    }
  });
});
