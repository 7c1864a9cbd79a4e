import { chmod, mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cacheBin } from '../../adapters/environment.ts';
import { buildUserContainers, type BuildUserContainers } from '../../node/build-user-containers.ts';
import { eventually } from '../helpers/eventually.ts';

/** Running, not a zombie waiting for PID 1 to reap it. */
const alive = async (pid: number): Promise<boolean> => {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  return stat !== '' && !/\) Z /.test(stat);
};

// A worker's state dir deep enough that `<state>/run/containers` is past podman's limit for the
// run root its conmon cleanup process accepts.
describe('containers runtime of a worker with a deep state dir', () => {
  let root: string;
  let runtime: BuildUserContainers;
  let opts: BuildUserContainers['opts'];
  let stateDir: string;

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'fleet-containers-config-'));
    stateDir = join(root, 'a-deep-state-directory', 'workers', 'worker-with-a-long-id-0123456789');
    // the build user reaches its state dir through these
    await mkdir(dirname(stateDir), { recursive: true, mode: 0o755 });
    await chmod(root, 0o755);
    runtime = await buildUserContainers(stateDir, []);
    opts = runtime.opts;
    // An image from nothing but static busybox, committed into this runtime's own store by the
    // buildah the buildah pools run (the bootstrap's, 1.43) and run below by Debian's podman 4.3
    // (the kaniko pools'): both read one store.
    const buildah = join(cacheBin(), 'buildah');
    const ctr = (await execa(buildah, ['from', 'scratch'], opts)).stdout.trim();
    await execa(buildah, ['copy', ctr, '/bin/busybox', '/bin/busybox'], opts);
    await execa(buildah, ['commit', '--quiet', ctr, 'localhost/fleet-test-busybox:1'], opts);
    await execa(buildah, ['rm', ctr], opts);
  }, 120_000);

  afterAll(async () => {
    await runtime.close();
    await execa('buildah', ['unshare', 'rm', '-rf', stateDir], { ...opts, cwd: root, reject: false });
    await rm(root, { recursive: true, force: true });
  });

  it('keeps the image store in the state dir and the run root short enough for podman', async () => {
    expect((await execa('podman', ['info', '--format', '{{.Store.GraphRoot}}'], opts)).stdout.trim()).toBe(join(stateDir, 'storage'));
    expect(join(opts.env.XDG_RUNTIME_DIR ?? '', 'containers').length).toBeLessThanOrEqual(50);
  });

  it("lets conmon's cleanup process record a container's exit (a detached --rm container goes away by itself)", async () => {
    // Only the cleanup process removes a detached --rm container; with a run root it refuses,
    // the container stays behind (and an attached `podman run` waits 20 s for the exit).
    const id = (await execa('podman', ['run', '-d', '--rm', '--network', 'none', '--entrypoint', '/bin/busybox', 'localhost/fleet-test-busybox:1', 'true'], opts)).stdout.trim();
    await eventually(async () => (await execa('podman', ['container', 'exists', id], { ...opts, reject: false })).exitCode === 1, 15_000, 'container removed by its cleanup process');
  }, 60_000);

  it('has stopped the rootless pause process by the time close() resolves', async () => {
    await execa('podman', ['info', '--format', '{{.Host.Security.Rootless}}'], opts);
    const pid = Number((await readFile(join(opts.env.XDG_RUNTIME_DIR ?? '', 'libpod', 'tmp', 'pause.pid'), 'utf8')).trim());
    expect(await alive(pid)).toBe(true);
    await runtime.close();
    expect(await alive(pid)).toBe(false);
  });
});
