import { mkdir, mkdtemp, readFile, rm, writeFile, chown } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * Rootless podman passes its run root (`$XDG_RUNTIME_DIR/containers`) to the cleanup process
 * conmon starts when a container exits, and that process refuses a run root longer than this.
 * Past it, the exit is never recorded: every `podman run` (the kaniko builder) waits podman's
 * 20 s conmon timeout before it returns, and the container is left behind.
 */
const MAX_RUNROOT = 50;

/** The containers/* tools' private configuration and runtime directory of one worker (or one raw run). */
export interface ContainersRuntime {
  /** the environment that points buildah/podman at it */
  env: Record<string, string>;
  /** Stops the rootless pause process podman left for this runtime directory and removes the directory. */
  close(): Promise<void>;
}

/**
 * containers/* configuration private to one worker: native overlay storage under the worker's
 * state dir (vfs would be several times slower), cgroupfs with runc (this host has no systemd),
 * and the registries allowed over plain HTTP. `sharedImageStore` is a read-only store of the
 * official images the node keeps for every worker (containers-storage `additionalimagestores`):
 * a fresh worker builds on them without pulling. `owner` hands the runtime directory to the
 * build user when a root process prepares it for one.
 */
export async function writeContainersConfig(
  stateDir: string,
  insecureRegistries: readonly string[],
  opts: { sharedImageStore?: string | undefined; owner?: { uid: number; gid: number } | undefined } = {},
): Promise<ContainersRuntime> {
  const dir = join(stateDir, 'containers');
  for (const d of [dir, join(stateDir, 'home'), join(stateDir, 'tmp')]) await mkdir(d, { recursive: true, mode: 0o700 });
  const runDir = await runtimeDir(stateDir);
  if (opts.owner !== undefined) await chown(runDir, opts.owner.uid, opts.owner.gid);
  const storage = join(dir, 'storage.conf');
  const containers = join(dir, 'containers.conf');
  const registries = join(dir, 'registries.conf');
  // Rootless tools ignore `graphroot`/`runroot` (they follow `rootless_storage_path` and
  // XDG_RUNTIME_DIR); root honours them (the bench's rootful comparison).
  await writeFile(
    storage,
    `[storage]\ndriver = "overlay"\ngraphroot = ${toml(join(stateDir, 'storage'))}\nrunroot = ${toml(join(runDir, 'storage'))}\nrootless_storage_path = ${toml(join(stateDir, 'storage'))}\n` +
      (opts.sharedImageStore === undefined ? '' : `\n[storage.options]\nadditionalimagestores = [${toml(opts.sharedImageStore)}]\n`),
  );
  await writeFile(containers, '[engine]\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\nruntime = "runc"\n');
  await writeFile(
    registries,
    ['short-name-mode = "enforcing"', ...insecureRegistries.map((r) => `[[registry]]\nlocation = ${toml(r)}\ninsecure = true`)].join('\n\n') + '\n',
  );
  return {
    env: {
      HOME: join(stateDir, 'home'),
      XDG_RUNTIME_DIR: runDir,
      TMPDIR: join(stateDir, 'tmp'),
      CONTAINERS_STORAGE_CONF: storage,
      CONTAINERS_CONF: containers,
      CONTAINERS_REGISTRIES_CONF: registries,
    },
    close: () => closeRuntime(runDir, join(stateDir, 'run') !== runDir),
  };
}

/** `state/run` when the run root under it is short enough, else a short directory of its own in /tmp. */
async function runtimeDir(stateDir: string): Promise<string> {
  const inState = join(stateDir, 'run');
  if (join(inState, 'containers').length <= MAX_RUNROOT) {
    await mkdir(inState, { recursive: true, mode: 0o700 });
    return inState;
  }
  return mkdtemp('/tmp/fleet-run-');
}

async function closeRuntime(runDir: string, ownDir: boolean): Promise<void> {
  // Each runtime directory gets its own pause process (catatonit -P holding the user
  // namespace); it outlives every podman command and would pile up, one per worker.
  const pid = Number((await readFile(join(runDir, 'libpod', 'tmp', 'pause.pid'), 'utf8').catch(() => '')).trim());
  if (Number.isInteger(pid) && pid > 1 && (await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')).startsWith('catatonit')) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  if (ownDir) await rm(runDir, { recursive: true, force: true }).catch(() => undefined);
}

function toml(s: string): string {
  return JSON.stringify(s);
}
