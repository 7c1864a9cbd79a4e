import { chown, mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { fleetEnvironment } from '../../adapters/environment.ts';
import { execa } from 'execa';
import { diesWithParent } from '../../adapters/child-process.ts';
import type { WorkerOptions } from '../../worker/index.ts';
import { buildUser, type RunAs, runAsOptions } from '../../node/host.ts';

const PROJECT_ROOT = fileURLToPath(new URL('../../', import.meta.url));

export interface WorkerProcess {
  workerId: string;
  pool: string;
  pid: number;
  stateDir: string;
  logFile: string;
  exited: Promise<{ exitCode: number | undefined; signal: string | undefined }>;
  /** SIGTERM = drain; SIGKILL = crash */
  signal(sig: NodeJS.Signals): void;
  stop(): Promise<void>;
}

/**
 * Starts a worker as its own OS process, as the unprivileged build user when we are root. Its
 * state dir (builder storage, scratch) belongs to that user and goes when it stops.
 */
export async function spawnWorker(
  options: Omit<WorkerOptions, 'stateDir'> & { workerId: string },
  baseDir: string,
  runAs?: RunAs,
): Promise<WorkerProcess> {
  const user = runAs ?? (await buildUser());
  const stateDir = join(baseDir, options.workerId);
  await mkdir(stateDir, { recursive: true, mode: 0o700 });
  const configFile = join(baseDir, `${options.workerId}.json`);
  // 0600 and the worker's own: it holds the S3 credentials.
  await writeFile(configFile, JSON.stringify({ ...options, stateDir } satisfies WorkerOptions), { mode: 0o600 });
  const logFile = join(baseDir, `${options.workerId}.log`);
  if (user.switchUser) {
    await chown(stateDir, user.uid, user.gid);
    await chown(configFile, user.uid, user.gid);
  }

  // The fleet's death (even by kill -9) is a crash for the worker: SIGKILL, as a crashed worker
  // ends (a SIGTERM drain would wait on a NATS that died with the fleet). Its builders follow it
  // by their own pdeathsig.
  const child = execa(...diesWithParent(process.execPath, ['--import', 'tsx', join(PROJECT_ROOT, 'worker/main.ts'), '--config', configFile], 'KILL'), {
    cwd: PROJECT_ROOT,
    ...runAsOptions(user),
    env: { HOME: stateDir, FLEET_LOG_JSON: '1', FLEET_LOG_LEVEL: fleetEnvironment().FLEET_LOG_LEVEL ?? 'info' },
    extendEnv: true,
    stdin: 'ignore',
    stdout: { file: logFile, append: true },
    stderr: { file: logFile, append: true },
    reject: false,
    // SIGTERM means "drain": the worker finishes its build within its own drain grace. execa's
    // default would SIGKILL it 5 s after any signal and turn every drain into a crash.
    forceKillAfterDelay: false,
  });
  const exited = child.then((r) => ({ exitCode: r.exitCode, signal: r.signal }));
  return {
    workerId: options.workerId,
    pool: options.pool ?? 'default',
    pid: child.pid ?? -1,
    stateDir,
    logFile,
    exited,
    signal: (sig) => child.kill(sig),
    async stop() {
      child.kill('SIGTERM');
      await exited;
      await removeState(stateDir, user);
    },
  };
}

/** Builder storage holds files owned by sub-uids; only root or the user's namespace can delete them. */
async function removeState(dir: string, user: RunAs): Promise<void> {
  if (user.switchUser || process.getuid?.() === 0) {
    await rm(dir, { recursive: true, force: true });
    return;
  }
  await execa('buildah', ['unshare', 'rm', '-rf', dir], { reject: false });
}
