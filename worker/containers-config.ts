import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * containers/* configuration private to one worker: native overlay storage under the worker's
 * state dir (vfs would be several times slower), cgroupfs with runc (this host has no systemd),
 * and the registries allowed over plain HTTP. `sharedImageStore` is a read-only store of the
 * official images the node keeps for every worker (containers-storage `additionalimagestores`):
 * a fresh worker builds on them without pulling. Returns the environment that points the
 * containers tools at it.
 */
export async function writeContainersConfig(stateDir: string, insecureRegistries: readonly string[], sharedImageStore?: string): Promise<Record<string, string>> {
  const dir = join(stateDir, 'containers');
  const runDir = join(stateDir, 'run');
  for (const d of [dir, runDir, join(stateDir, 'home'), join(stateDir, 'tmp')]) await mkdir(d, { recursive: true, mode: 0o700 });
  const storage = join(dir, 'storage.conf');
  const containers = join(dir, 'containers.conf');
  const registries = join(dir, 'registries.conf');
  await writeFile(
    storage,
    `[storage]\ndriver = "overlay"\ngraphroot = ${toml(join(stateDir, 'storage'))}\nrunroot = ${toml(join(runDir, 'storage'))}\n` +
      (sharedImageStore === undefined ? '' : `\n[storage.options]\nadditionalimagestores = [${toml(sharedImageStore)}]\n`),
  );
  await writeFile(containers, '[engine]\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\nruntime = "runc"\n');
  await writeFile(
    registries,
    ['short-name-mode = "enforcing"', ...insecureRegistries.map((r) => `[[registry]]\nlocation = ${toml(r)}\ninsecure = true`)].join('\n\n') + '\n',
  );
  return {
    HOME: join(stateDir, 'home'),
    XDG_RUNTIME_DIR: runDir,
    TMPDIR: join(stateDir, 'tmp'),
    CONTAINERS_STORAGE_CONF: storage,
    CONTAINERS_CONF: containers,
    CONTAINERS_REGISTRIES_CONF: registries,
  };
}

function toml(s: string): string {
  return JSON.stringify(s);
}
