import { mkdir, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import bcrypt from 'bcryptjs';
import { execa } from 'execa';
import { diesWithParent, KILL_GRACE_MS, type ChildHandle } from '../../adapters/child-process.ts';
import type { RegistryCredentials } from '../../adapters/docker-config.ts';
import { freePort, waitFor } from '../../node/host.ts';

export interface Registry {
  /** host:port as used in image references */
  host: string;
  /** set when the registry wants credentials (htpasswd): these are the only ones it takes */
  credentials?: RegistryCredentials;
  stop(): Promise<void>;
  start(): Promise<void>;
  /**
   * Has the registry tell `url` of every push (distribution's `notifications.endpoints`, with
   * `Authorization: Bearer <token>`), as a production registry tells the coordinator; restarts it
   * to read the new config (the storage stays).
   */
  notifyTo(url: string, token: string): Promise<void>;
}

/** Where and how the registry sends its notifications. */
interface NotificationEndpoint {
  url: string;
  token: string;
}

/**
 * Debian's docker-registry (distribution 2.8) on a free loopback port with filesystem storage;
 * with `auth`, it takes only a random user and password (htpasswd, bcrypt).
 */
export async function startRegistry(dir: string, opts: { auth?: boolean } = {}): Promise<Registry> {
  await mkdir(dir, { recursive: true });
  const port = await freePort();
  const config = join(dir, 'config.yml');
  const credentials = opts.auth === true ? { username: 'fleet', password: randomBytes(18).toString('base64url') } : undefined;
  if (credentials !== undefined) await writeFile(join(dir, 'htpasswd'), `${credentials.username}:${await bcrypt.hash(credentials.password, 10)}\n`, { mode: 0o600 });
  const render = (notify: NotificationEndpoint | null): string =>
    [
      'version: 0.1',
      'log:',
      '  level: warn',
      'storage:',
      '  filesystem:',
      `    rootdirectory: ${join(dir, 'data')}`,
      '  delete:',
      '    enabled: true',
      'http:',
      `  addr: 127.0.0.1:${port}`,
      ...(credentials === undefined ? [] : ['auth:', '  htpasswd:', '    realm: fleet', `    path: ${join(dir, 'htpasswd')}`]),
      // Best effort, like any registry's: a few quick retries, then a short backoff; the coordinator's poller covers the rest.
      ...(notify === null
        ? []
        : ['notifications:', '  endpoints:', '    - name: fleet', `      url: ${notify.url}`, '      headers:', `        Authorization: [${JSON.stringify(`Bearer ${notify.token}`)}]`, '      timeout: 2s', '      threshold: 3', '      backoff: 1s']),
      '',
    ].join('\n');
  // 0600: once notifications are on, it holds the notifier's token.
  await writeFile(config, render(null), { mode: 0o600 });
  const host = `127.0.0.1:${port}`;
  let child: ChildHandle | null = null;
  const registry: Registry = {
    host,
    ...(credentials === undefined ? {} : { credentials }),
    async start() {
      // Dies with the fleet's process, even a kill -9'd one.
      const proc = execa(...diesWithParent('docker-registry', ['serve', config]), { stdio: ['ignore', 'ignore', 'pipe'], reject: false, forceKillAfterDelay: KILL_GRACE_MS });
      child = proc;
      await waitFor('registry', async () => {
        if (proc.exitCode !== null) throw new Error(`docker-registry exited ${proc.exitCode}`);
        const res = await fetch(`http://${host}/v2/`);
        return res.ok || (credentials !== undefined && res.status === 401) ? true : null;
      });
    },
    async notifyTo(url, token) {
      await writeFile(config, render({ url, token }), { mode: 0o600 });
      await registry.stop();
      await registry.start();
    },
    async stop() {
      const c = child;
      child = null;
      if (c === null) return;
      c.kill('SIGTERM');
      await c;
    },
  };
  await registry.start();
  return registry;
}
