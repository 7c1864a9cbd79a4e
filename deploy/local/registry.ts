import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { KILL_GRACE_MS } from '../../runtime/child-process.ts';
import { freePort, waitFor } from './host.ts';

export interface Registry {
  /** host:port as used in image references */
  host: string;
  stop(): Promise<void>;
  start(): Promise<void>;
}

/** Debian's docker-registry (distribution 2.8) on a free loopback port with filesystem storage. */
export async function startRegistry(dir: string): Promise<Registry> {
  await mkdir(dir, { recursive: true });
  const port = await freePort();
  const config = join(dir, 'config.yml');
  await writeFile(
    config,
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
      '',
    ].join('\n'),
  );
  const host = `127.0.0.1:${port}`;
  let child: ResultPromise | null = null;
  const registry: Registry = {
    host,
    async start() {
      const proc = execa('docker-registry', ['serve', config], { stdio: ['ignore', 'ignore', 'pipe'], reject: false, forceKillAfterDelay: KILL_GRACE_MS });
      child = proc;
      await waitFor('registry', async () => {
        if (proc.exitCode !== null) throw new Error(`docker-registry exited ${proc.exitCode}`);
        const res = await fetch(`http://${host}/v2/`);
        return res.ok ? true : null;
      });
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
