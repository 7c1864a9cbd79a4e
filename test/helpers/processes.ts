import { readdir, readFile } from 'node:fs/promises';

export interface ProcessInfo {
  pid: number;
  ppid: number;
  /** argv joined by spaces */
  command: string;
}

/** One process from /proc, or null when it is gone or a zombie (exited, waiting to be reaped). */
async function read(pid: number): Promise<ProcessInfo | null> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => null);
  if (stat === null) return null;
  const [state, ppid] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  if (state === undefined || state === 'Z' || state === 'X') return null;
  const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
  return { pid, ppid: Number(ppid), command: cmdline.split('\0').filter((a) => a !== '').join(' ') };
}

/** Every running process on the machine. */
export async function processes(): Promise<ProcessInfo[]> {
  const pids = (await readdir('/proc')).filter((n) => /^\d+$/.test(n)).map(Number);
  return (await Promise.all(pids.map(read))).filter((p) => p !== null);
}

/** Every running descendant of `pid` (children, theirs, and so on). */
export async function descendantsOf(pid: number): Promise<ProcessInfo[]> {
  const all = await processes();
  const found: ProcessInfo[] = [];
  const parents = new Set([pid]);
  for (let grew = true; grew; ) {
    grew = false;
    for (const p of all) {
      if (parents.has(p.ppid) && !parents.has(p.pid)) {
        parents.add(p.pid);
        found.push(p);
        grew = true;
      }
    }
  }
  return found;
}

/**
 * Running processes whose argv or environment names `text` (a state dir): they find what a
 * process tree misses, the daemons that double-forked away (rootless podman's pause process,
 * conmon). Reading other users' environments takes root.
 */
export async function processesMentioning(text: string): Promise<ProcessInfo[]> {
  const found: ProcessInfo[] = [];
  for (const p of await processes()) {
    const environ = await readFile(`/proc/${p.pid}/environ`, 'utf8').catch(() => '');
    if (p.command.includes(text) || environ.includes(text)) found.push(p);
  }
  return found;
}

/** Those of `list` still running (a recycled pid with another command does not count). */
export async function stillRunning(list: readonly ProcessInfo[]): Promise<ProcessInfo[]> {
  const now = await Promise.all(list.map(async (p) => ({ p, now: await read(p.pid) })));
  return now.filter(({ p, now }) => now !== null && now.command === p.command).map(({ p }) => p);
}
