import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LocalFleet } from '../../deploy/local/fleet.ts';
import { archivedLog, startTestFleet } from '../helpers/fleet.ts';
import { eventually } from '../helpers/eventually.ts';
import { runImage } from '../helpers/podman.ts';

/**
 * kaniko runs in a container whose root is the first-built stage's base, already unpacked by
 * podman's storage, and skips its own unpack of it (`--initial-fs-unpacked`, KanikoRootfs). The
 * image must be what unpacking gives: the stage's own changes (a deleted base file included), the
 * later stages unpacked by kaniko as before, none of the container's own mounts. A final stage on
 * an image of its own is built alone in a second container whose root is that base
 * (`--final-stage-only`), copying from the earlier stages through the build's kaniko dir. And where
 * the worker's guess of the first stage is wrong, kaniko's own word overrules it: built again,
 * unpacking.
 */

let fleet: LocalFleet;
let dir: string;
/** the worker with the node's shared store */
let nodeWorker: { stateDir: string } | undefined;

beforeAll(async () => {
  fleet = await startTestFleet({ workers: 0, sharedImageStore: true, coordinator: { pools: ['kaniko', 'kaniko-node', 'kaniko-misnamed'] } });
  // one worker with storage of its own (it loads the base), one with the node's shared store too
  await fleet.addWorker({ pool: 'kaniko', builder: 'kaniko', sharedImageStore: undefined });
  nodeWorker = await fleet.addWorker({ pool: 'kaniko-node', builder: 'kaniko' });
  dir = await mkdtemp(join(tmpdir(), 'fleet-kaniko-rootfs-'));
}, 300_000);
afterAll(async () => {
  await fleet?.stop();
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

async function build(id: string, dockerfile: string, pool = 'kaniko'): Promise<{ log: string; phase: string }> {
  await writeFile(join(dir, 'Dockerfile'), dockerfile);
  const { digest } = await fleet.client.uploadContext(dir);
  await fleet.client.submit({ id, context: { digest }, pool, image: { repository: 'rootfs/app', tags: [id] } });
  const done = await fleet.client.follow(id, {});
  return { log: await archivedLog(fleet, id), phase: done.state.phase };
}

describe('kaniko on a pre-unpacked first base', () => {
  it("skips unpacking the first stage's base, and the image holds that stage's changes (a deleted base file too), the later stages' and nothing of the container", async () => {
    const base = `${fleet.registry.host}/official/base:1`;
    const dockerfile = [
      `FROM ${base} AS app`,
      'RUN echo a > /a && rm /etc/debian_version',
      `FROM ${base} AS other`,
      'RUN echo b > /b',
      'FROM app',
      'COPY --from=other /b /b',
      'RUN echo c > /c',
      'USER 1000',
    ].join('\n');
    const first = await build('rootfs-first', dockerfile);
    expect(first.phase, first.log).toBe('pushed');
    expect(first.log).toContain('(first base unpacked ahead)');
    expect(first.log).not.toContain('building again');
    // the fleet's kaniko image says its executor has the ctime snapshot mode; the worker uses it
    expect(first.log).toContain('Snapshots compare file metadata with the ctime');
    const { stdout } = await runImage(`${fleet.registry.host}/rootfs/app:rootfs-first`, fleet.registry.host, {
      shell: 'cat /a /b /c; test -e /etc/debian_version && echo has-debian-version; ls -d /kaniko /kaniko-image /fleet /workspace 2>/dev/null; echo end',
    });
    expect(stdout.trim().split('\n')).toEqual(['a', 'b', 'c', 'end']);

    // the same worker again: the base is in its podman storage, kaniko still skips the unpack
    const again = await build('rootfs-again', dockerfile.replace('echo c', 'echo d'));
    expect(again.phase, again.log).toBe('pushed');
    expect(again.log).toContain('(first base unpacked ahead)');
  });

  it("runs on the base and the kaniko image from the node's shared store on a fresh worker", async () => {
    // podman cannot mount an image of the read-only shared store (`--mount type=image`): every
    // such run once fell back to unpacking
    const done = await build('rootfs-node', `FROM ${fleet.registry.host}/official/base:1\nRUN echo node > /node\nUSER 1000\n`, 'kaniko-node');
    expect(done.phase, done.log).toBe('pushed');
    expect(done.log).toContain('(first base unpacked ahead)');
    expect(done.log).not.toContain('building again');
    const { stdout } = await runImage(`${fleet.registry.host}/rootfs/app:rootfs-node`, fleet.registry.host, { shell: 'cat /node' });
    expect(stdout.trim()).toBe('node');
  });

  it("builds the final stage alone on its own pre-unpacked base: what it copies and its own changes, nothing of the earlier stages' roots or of either container", async () => {
    const registry = fleet.registry.host;
    const dockerfile = [
      `FROM ${registry}/official/base:1 AS build`,
      'RUN mkdir -p /out/sub && echo jar > /out/sub/app.jar && ln -s sub/app.jar /out/link && chown -R 1000:1000 /out/sub && echo stray > /stray',
      `FROM ${registry}/official/base:1 AS unused`,
      'RUN echo unused > /unused',
      `FROM ${registry}/official/jre17:1`,
      'ARG GREETING=hi',
      'COPY --from=build /out /opt/app',
      'RUN rm /etc/debian_version && cat /opt/app/link > /copied && echo "$GREETING" > /greeting',
      'USER 1000',
    ].join('\n');
    const done = await build('rootfs-final', dockerfile, 'kaniko-node');
    expect(done.phase, done.log).toBe('pushed');
    expect(done.log).toContain('(first and final bases unpacked ahead)');
    expect(done.log).not.toContain('building again');
    const { stdout } = await runImage(`${registry}/rootfs/app:rootfs-final`, registry, {
      shell: [
        'cat /opt/app/sub/app.jar /copied /greeting; readlink /opt/app/link; stat -c %u:%g /opt/app/sub/app.jar',
        'test -x /usr/bin/java -o -d /usr/lib/jvm && echo has-jre',
        'ls -d /stray /unused /etc/debian_version /kaniko /kaniko-image /fleet /workspace 2>/dev/null; echo end',
      ].join('; '),
    });
    expect(stdout.trim().split('\n')).toEqual(['jar', 'jar', 'hi', 'sub/app.jar', '1000:1000', 'has-jre', 'end']);
    // what kaniko kept for the final stage has the build's owners (a 0750 directory of uid 1000,
    // not the worker's): removed all the same, with the attempt's scratch dir
    await eventually(async () => (await readdir(join(nodeWorker?.stateDir ?? '/nonexistent', 'scratch'))).length === 0, 30_000, "the attempt's scratch dir removed");
  });

  it('builds again with every base unpacked when kaniko names another first stage than the worker guessed', async () => {
    // The guess does not expand build args in a stage reference (kaniko does): with no COPY in
    // the final stage it takes every stage as kept, so `unused` first; kaniko keeps `build` and the final.
    const dockerfile = [
      'ARG STAGE=build',
      `FROM ${fleet.registry.host}/platform/jacoco:0.8.6 AS unused`,
      `FROM ${fleet.registry.host}/official/base:1 AS build`,
      'RUN echo built > /built',
      'FROM ${STAGE}',
      'USER 1000',
    ].join('\n');
    const done = await build('rootfs-guess', dockerfile);
    expect(done.phase, done.log).toBe('pushed');
    expect(done.log).toContain('building again, unpacking every base itself');
    expect(done.log).not.toContain('(first base unpacked ahead)');
    const { stdout } = await runImage(`${fleet.registry.host}/rootfs/app:rootfs-guess`, fleet.registry.host, { shell: 'cat /built' });
    expect(stdout.trim()).toBe('built');
  });
});

describe('a kaniko worker whose kaniko image is not there', () => {
  it("fails the build with the kaniko image's own error, not a cancellation of what ran beside it, and keeps serving", async () => {
    const misnamed = await fleet.addWorker({ pool: 'kaniko-misnamed', builder: 'kaniko', sharedImageStore: undefined, kanikoImage: 'platform/kaniko:no-such-tag' });
    const app = join(dir, 'misnamed');
    await mkdir(app, { recursive: true });
    await writeFile(join(app, 'Dockerfile'), `FROM ${fleet.registry.host}/official/base:1\nRUN echo x > /x\nUSER 1000\n`);
    const { digest } = await fleet.client.uploadContext(app);
    await fleet.client.submit({ id: 'kaniko-misnamed-1', context: { digest }, pool: 'kaniko-misnamed', image: { repository: 'rootfs/misnamed', tags: ['1'] } });
    const done = await fleet.client.follow('kaniko-misnamed-1', {});
    expect(done.state).toMatchObject({ phase: 'failed', error: { code: 'E_BASE_UNSIGNED' } });
    expect(done.state.phase === 'failed' ? done.state.error.message : '').toContain('platform/kaniko:no-such-tag does not exist');
    await eventually(async () => (await fleet.client.workers()).some((w) => w.workerId === misnamed.workerId && w.state === 'idle'), 30_000, 'the worker idle again');
  }, 300_000);
});
