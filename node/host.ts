import { chown, readFile, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { createServer } from 'node:net';
import { fleetEnvironment } from '../adapters/environment.ts';


export interface RunAs {
  uid: number;
  gid: number;
  /** true when we must switch to this user (we are root) */
  switchUser: boolean;
}

/** execa's uid/gid for running as `user`: none at all when no switch is needed. */
export function runAsOptions(user: RunAs): { uid?: number; gid?: number } {
  return user.switchUser ? { uid: user.uid, gid: user.gid } : {};
}

/** Root launches workers as the build user; anyone else launches them as themselves. */
export async function buildUser(): Promise<RunAs> {
  const me = process.getuid?.() ?? 0;
  if (me !== 0) return { uid: me, gid: process.getgid?.() ?? me, switchUser: false };
  const passwd = await readFile('/etc/passwd', 'utf8');
  const name = fleetEnvironment().FLEET_BUILD_USER;
  const line = passwd.split('\n').find((l) => l.startsWith(`${name}:`));
  const [, , uid, gid] = line?.split(':') ?? [];
  if (uid === undefined || gid === undefined) {
    throw new Error(`build user ${name} does not exist: run scripts/bootstrap as root first`);
  }
  return { uid: Number(uid), gid: Number(gid), switchUser: true };
}

/** A loopback port nobody listens on right now (for servers that cannot pick their own). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

export async function waitFor<T>(what: string, probe: () => Promise<T | null>, timeoutMs = 15_000): Promise<T> {
  const until = Date.now() + timeoutMs;
  let last: unknown = null;
  while (Date.now() < until) {
    try {
      const v = await probe();
      if (v !== null) return v;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${what} did not become ready within ${timeoutMs} ms${last === null ? '' : `: ${String(last)}`}`);
}

/** Hands a tree we created to the build user (its storage and config must be its own). */
export async function chownTree(dir: string, uid: number, gid: number): Promise<void> {
  await chown(dir, uid, gid);
  for (const name of await readdir(dir)) {
    const p = join(dir, name);
    if ((await stat(p)).isDirectory()) await chownTree(p, uid, gid);
    else await chown(p, uid, gid);
  }
}
