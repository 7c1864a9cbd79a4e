import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { builderToolPath } from '../../adapters/environment.ts';
import { buildUserContainers } from '../../node/build-user-containers.ts';
import { buildkitdCommand, writeBuildkitdConfig } from './buildkitd.ts';
import { ReadyRoots } from './buildkit-ready-roots.ts';

/** Where a node image store's BuildKit seed root is, beside the store (its graph root's parent). */
export function buildkitSeedRoot(storeDir: string): string {
  return join(storeDir, 'buildkit-seed', 'root');
}

/**
 * The node's BuildKit root with the platform's images already unpacked, filled once per node as
 * the build user. BuildKit keeps a content store and snapshots of its own, so the node image
 * store (containers-storage) does nothing for it: every fresh BuildKit worker would unpack the
 * Java bases itself, about 10 s of file creation for jdk17 alone. A worker's tenant root starts
 * as a copy of this one instead (buildkit-seed-clone.ts), and BuildKit finds each
 * base's layers unpacked by their chain ids.
 *
 * The bases come in as the workers bring them in (skopeo into an OCI layout, read by BuildKit as
 * named contexts), so the blobs are the ones a worker's build names; one `FROM base` + `RUN true`
 * per image unpacks it (no output is exported). Only the platform's images are in it.
 */
export async function fillBuildkitSeed(storeDir: string, registry: { host: string; insecure: boolean }, references: readonly string[], authFile?: string): Promise<string> {
  const registryHost = registry.host;
  const dir = join(storeDir, 'buildkit-seed');
  const root = buildkitSeedRoot(storeDir);
  await mkdir(dir, { recursive: true, mode: 0o755 });
  const { opts, close } = await buildUserContainers(dir, registry.insecure ? [registryHost] : [], { PATH: builderToolPath(), ...(authFile === undefined ? {} : { REGISTRY_AUTH_FILE: authFile }) });
  const layout = join(dir, 'layout');
  const daemonDir = join(dir, 'daemon');
  const socket = join(daemonDir, 'buildkitd.sock');
  const scratch = [layout, ...references.flatMap((_r, i) => [join(dir, `context-${i}`), join(dir, `digest-${i}`)])];
  try {
    await execa('mkdir', ['-p', join(daemonDir, 'run')], opts);
    await writeBuildkitdConfig(daemonDir, []);
    const digests: string[] = [];
    for (const [i, ref] of references.entries()) {
      const digestFile = join(dir, `digest-${i}`);
      await execa('skopeo', ['copy', '--quiet', ...(registry.insecure ? ['--src-tls-verify=false'] : []), '--digestfile', digestFile, `docker://${registryHost}/${ref}`, `oci:${layout}:base-${i}`], opts);
      digests.push((await readFile(digestFile, 'utf8')).trim());
    }
    // The daemon's network is the fill's own (`pod`): its only steps are `RUN true` on the platform's images.
    const [command = 'rootlesskit', ...args] = buildkitdCommand(daemonDir, socket, {}, 'pod', root);
    const daemon = execa(command, args, {
      ...opts, env: { ...opts.env, XDG_RUNTIME_DIR: join(daemonDir, 'run') }, reject: false, stdin: 'ignore',
      stdout: { file: join(daemonDir, 'buildkitd.log') }, stderr: { file: join(daemonDir, 'buildkitd.log') },
    });
    let exited = false;
    void daemon.then(() => {
      exited = true;
    });
    try {
      await waitForDaemon(socket, opts, () => exited);
      for (const [i, digest] of digests.entries()) {
        const context = join(dir, `context-${i}`);
        await execa('mkdir', ['-p', context], opts);
        await writeFile(join(context, 'Dockerfile'), 'FROM base\nRUN true\n');
        await execa('buildctl', [
          '--addr', `unix://${socket}`, 'build', '--progress', 'plain', '--frontend', 'dockerfile.v0',
          '--local', `context=${context}`, '--local', `dockerfile=${context}`,
          '--oci-layout', `seed=${layout}`, '--opt', `context:base=oci-layout://seed@${digest}`,
        ], opts);
      }
    } finally {
      daemon.kill('SIGTERM');
      await daemon;
    }
    // The node's first fresh BuildKit worker takes it instead of copying the seed as its build
    // waits; without it, that worker copies the seed itself, so the fill stands.
    await new ReadyRoots(root, opts).refill().catch(() => undefined);
    return root;
  } finally {
    await close();
    // Only the root (and its ready copies) stays: its content store holds the blobs.
    await execa('rm', ['-rf', ...scratch], { ...opts, reject: false });
  }
}

async function waitForDaemon(socket: string, opts: { env: Record<string, string> }, exited: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !exited(); i++) {
    if ((await execa('buildctl', ['--addr', `unix://${socket}`, 'debug', 'workers'], { ...opts, reject: false })).exitCode === 0) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`the BuildKit seed's buildkitd did not start (see ${join(socket, '..', 'buildkitd.log')})`);
}
