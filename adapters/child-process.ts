import { readFile } from 'node:fs/promises';

/** Grace between SIGTERM and SIGKILL for every child process we start. */
export const KILL_GRACE_MS = 5_000;

/** What the fleet keeps of a long-running child (a server, a daemon): whatever options started it. */
export interface ChildHandle extends PromiseLike<unknown> {
  readonly pid?: number | undefined;
  readonly exitCode: number | null;
  kill(signal?: NodeJS.Signals | number): boolean;
}

/**
 * FILE ARGS as a command that gets SIGNAL from the kernel when the process spawning it dies,
 * however it dies (kill -9 included), so nothing it started lives on as an orphan:
 * `setpriv --pdeathsig`. The signal follows the death of the spawning *thread*; node spawns from
 * its main thread, which lives as long as the process. setpriv execs FILE in its own place, so
 * the child's pid (and what `kill` reaches) is FILE's.
 */
export function diesWithParent(file: string, args: readonly string[], signal: 'TERM' | 'KILL' = 'TERM'): [string, string[]] {
  return ['setpriv', ['--pdeathsig', signal, '--', file, ...args]];
}

/** How often a process that is not our child is looked at while we wait for it to go. */
const POLL_MS = 20;

/**
 * The process's identity while it runs: its start time (so a recycled pid is not taken for it),
 * or null once it has exited. A zombie has exited: its parent reaps it, not us.
 */
async function runningSince(pid: number): Promise<string | null> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => null);
  if (stat === null) return null;
  // After "pid (comm) ": state is the first field, starttime the twentieth.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const state = fields[0];
  if (state === undefined || state === 'Z' || state === 'X' || state === 'x') return null;
  return fields[19] ?? null;
}

/** Resolves true once the process that ran since `since` has exited, false if it still runs at `deadline`. */
async function exitedBy(pid: number, since: string, deadline: number): Promise<boolean> {
  for (;;) {
    if ((await runningSince(pid)) !== since) return true;
    if (Date.now() >= deadline) return false;
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch (e) {
    // ESRCH: it exited between the look and the signal.
    if ((e as NodeJS.ErrnoException).code !== 'ESRCH') throw e;
  }
}

/**
 * Stops a process that is not our child, so there is no exit event to wait for (a daemon that
 * double-forked away): SIGTERM, SIGKILL when it still runs `termMs` later, and resolves only
 * once it has exited. A process can take seconds to exit even after SIGKILL on a busy machine
 * (tearing down its namespaces and mounts waits on the disk), hence the long second deadline;
 * past it the process is stuck in the kernel, and that is an error worth seeing.
 */
export async function stopProcess(pid: number, opts: { termMs?: number; killMs?: number } = {}): Promise<void> {
  const since = await runningSince(pid);
  if (since === null) return;
  signal(pid, 'SIGTERM');
  if (await exitedBy(pid, since, Date.now() + (opts.termMs ?? 2_000))) return;
  signal(pid, 'SIGKILL');
  const killMs = opts.killMs ?? 60_000;
  if (await exitedBy(pid, since, Date.now() + killMs)) return;
  throw new Error(`process ${pid} still runs ${killMs} ms after SIGKILL`);
}
