import { chown, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LocalFleet } from '../../deploy/local/fleet.ts';
import { buildUser } from '../../node/host.ts';
import { BUILDER_KINDS, type BuilderKind } from '../../protocol/index.ts';
import { archivedLog, startTestFleet } from '../helpers/fleet.ts';

/**
 * Every worker holds push credentials the test knows (the registry here takes anonymous pushes,
 * so a wrong password cannot fail a build: the only question is whether a RUN step can read it).
 */
const USER = 'fleet-pusher';
const PASSWORD = `sealed-${Date.now().toString(36)}-0123456789abcdef`;
const AUTH = Buffer.from(`${USER}:${PASSWORD}`).toString('base64');

/** A RUN step looking where builders and runtimes are known to leave credentials, printing what it finds. */
const HUNT = [
  'set +e',
  'for f in /kaniko/.docker/config.json "$DOCKER_CONFIG/config.json" "${DOCKER_CONFIG}" /root/.docker/config.json "$HOME/.docker/config.json" "$REGISTRY_AUTH_FILE" /run/containers/*/auth.json /run/user/*/containers/auth.json; do echo "== file $f"; cat "$f" 2>&1; echo; done',
  'echo "== env"; env',
  'for p in /proc/[0-9]*; do echo "== environ $p"; tr "\\0" " " < $p/environ 2>&1; echo; echo "== cmdline $p"; tr "\\0" " " < $p/cmdline 2>&1; echo; done',
  'echo "== mountinfo"; cat /proc/self/mountinfo',
  'for m in $(cut -d" " -f5 /proc/self/mountinfo); do if [ -f "$m" ]; then echo "== mounted file $m"; head -c 8192 "$m"; echo; fi; done',
  'echo "== files naming auths"; for f in $(grep -rl auths /kaniko /root /run /etc /home /tmp /fleet /workspace 2>/dev/null | head -50); do echo "== $f"; head -c 8192 "$f"; echo; done',
  'echo "== hunt done"',
].join('; ');

let fleet: LocalFleet;
let contextDir: string;
let context: string;

beforeAll(async () => {
  contextDir = await mkdtemp(join(tmpdir(), 'fleet-hunt-'));
  await writeFile(join(contextDir, 'hunt.sh'), `${HUNT}\n`);
  await writeFile(join(contextDir, 'Dockerfile'), 'ARG FLEET_REGISTRY\nFROM ${FLEET_REGISTRY}/official/base:1\nCOPY hunt.sh /hunt.sh\nRUN sh /hunt.sh\nUSER 1000\n');
  fleet = await startTestFleet({ workers: 0, coordinator: { pools: ['buildkit', 'kaniko'] } });
  const authFile = join(fleet.stateDir, 'known-push-auth.json');
  await writeFile(authFile, JSON.stringify({ auths: { [fleet.registry.host]: { auth: AUTH } } }), { mode: 0o600 });
  const user = await buildUser();
  if (user.switchUser) await chown(authFile, user.uid, user.gid);
  await fleet.addWorker({ registryAuthFile: authFile });
  for (const builder of ['buildkit', 'kaniko'] as const) await fleet.addWorker({ pool: builder, builder, registryAuthFile: authFile });
  context = (await fleet.client.uploadContext(contextDir)).digest;
});
afterAll(async () => {
  await fleet?.stop();
  await rm(contextDir, { recursive: true, force: true });
});

describe.each(BUILDER_KINDS)('sealed credentials: %s', (builder: BuilderKind) => {
  it(`sealed credentials (${builder}): a RUN step hunting for the pool's push credentials finds none, and the worker still pushes`, async () => {
    const id = `hunt-${builder}`;
    await fleet.client.submit({ id, context: { digest: context }, pool: builder === 'buildah' ? 'default' : builder, image: { repository: 'sealed/hunt', tags: [builder] } });
    const live: string[] = [];
    const done = await fleet.client.follow(id, { line: (l) => void live.push(l.text) });
    expect(done.state).toMatchObject({ phase: 'pushed' });
    const log = `${live.join('\n')}\n${await archivedLog(fleet, id)}`;
    // The hunt ran to its end, so an absence means it looked.
    expect(log).toContain('== hunt done');
    expect(log).toContain('== mountinfo');
    for (const secret of [PASSWORD, AUTH]) expect(log.includes(secret), `the log holds ${secret === AUTH ? 'the auth field' : 'the password'}`).toBe(false);
  }, 300_000);
});
