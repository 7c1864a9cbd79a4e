import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { buildUserContainers } from '../../node/build-user-containers.ts';

/**
 * Runs an image with rootless podman as the build user, in storage of its own; returns stdout.
 * `shell` replaces the entrypoint with `sh -c SHELL` (to look inside an image).
 */
export async function runImage(
  reference: string,
  insecureRegistry: string,
  opts: { shell?: string } = {},
): Promise<{ stdout: string; exitCode: number | undefined }> {
  const dir = await mkdtemp(join(tmpdir(), 'fleet-podman-'));
  const containers = await buildUserContainers(dir, [insecureRegistry]);
  try {
    const command = opts.shell === undefined ? [reference] : ['--entrypoint', 'sh', reference, '-c', opts.shell];
    const r = await execa('podman', ['run', '--rm', '--network', 'none', ...command], { ...containers.opts, reject: false });
    if (r.exitCode !== 0) throw new Error(`podman run ${reference} failed (${String(r.exitCode)}): ${r.stderr}`);
    return { stdout: r.stdout, exitCode: r.exitCode };
  } finally {
    await containers.close();
    await rm(dir, { recursive: true, force: true });
  }
}
