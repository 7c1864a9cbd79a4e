import { mkdir, mkdtemp, readFile, rm, writeFile, chown } from 'node:fs/promises';
import { join } from 'node:path';
import { stopProcess } from '../adapters/child-process.ts';

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
  /**
   * Stops the rootless pause process podman left for this runtime directory, resolving once it
   * has exited, and removes the directory.
   */
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
  // default_rootless_network_cmd: the buildah the bootstrap builds (1.43) would give rootless RUN
  // steps pasta, and Debian 12's passt is too old for it; Debian's podman 4.3 predates the key
  // and ignores it (slirp4netns is its only choice).
  await writeFile(
    containers,
    '[engine]\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\nruntime = "runc"\n\n[network]\ndefault_rootless_network_cmd = "slirp4netns"\n',
  );
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

/**
 * Each runtime directory gets its own rootless pause process, holding the user namespace for
 * the podman commands that follow: it outlives every one of them and would pile up, one per
 * worker or test run. It is `catatonit -P`, or podman itself (named `podman pause`) where
 * catatonit is not installed, as on Debian without recommends.
 */
const PAUSE_NAMES = new Set(['catatonit', 'podman pause']);

/**
 * The pid pause.pid names, when that process is this runtime's pause process: a pause process by
 * name, with this runtime dir in its environment (a stale pause.pid may name a recycled pid).
 */
async function pauseProcess(runDir: string): Promise<number | null> {
  const pid = Number((await readFile(join(runDir, 'libpod', 'tmp', 'pause.pid'), 'utf8').catch(() => '')).trim());
  if (!Number.isInteger(pid) || pid <= 1) return null;
  const name = (await readFile(`/proc/${pid}/comm`, 'utf8').catch(() => '')).trim();
  if (!PAUSE_NAMES.has(name)) return null;
  const environ = await readFile(`/proc/${pid}/environ`, 'utf8').catch(() => '');
  return environ.split('\0').includes(`XDG_RUNTIME_DIR=${runDir}`) ? pid : null;
}

async function closeRuntime(runDir: string, ownDir: boolean): Promise<void> {
  // Waits for the exit, not just signals: the caller removes the state dir next, and a test
  // checks nothing is left. A podman command of this runtime still finishing (conmon's cleanup
  // of a --rm container) starts a new pause process when it finds none: stop that one too.
  const stopped = new Set<number>();
  for (let pid = await pauseProcess(runDir); pid !== null && !stopped.has(pid) && stopped.size < 5; pid = await pauseProcess(runDir)) {
    stopped.add(pid);
    await stopProcess(pid);
  }
  if (ownDir) await rm(runDir, { recursive: true, force: true }).catch(() => undefined);
}

function toml(s: string): string {
  return JSON.stringify(s);
}
