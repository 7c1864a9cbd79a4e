import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { nkeys } from '@nats-io/nats-core';
import { afterEach, describe, expect, it } from 'vitest';
import { renderNatsConfig, roleOf } from '../../scripts/render-nats-config.ts';

describe('render-nats-config', () => {
  const dirs: string[] = [];
  afterEach(async () => {
    for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
  });
  async function nkeysDir(users: Record<string, string>): Promise<string> {
    const dir = await mkdtemp(join(tmpdir(), 'nkeys-'));
    dirs.push(dir);
    for (const [user, key] of Object.entries(users)) await writeFile(join(dir, user), `${key}\n`);
    return dir;
  }

  it('maps user names back to the fleet roles', () => {
    expect(roleOf('coordinator')).toEqual({ kind: 'coordinator' });
    expect(roleOf('worker-buildah')).toEqual({ kind: 'worker', pool: 'buildah' });
    expect(roleOf('tenant-acme')).toEqual({ kind: 'tenant', tenant: 'acme' });
    expect(() => roleOf('root')).toThrow(/not a NATS user of the fleet/);
  });

  it('renders JetStream, routes, TLS and one nkey user per role with its allow-lists', async () => {
    const coordinator = nkeys.createUser().getPublicKey();
    const worker = nkeys.createUser().getPublicKey();
    const dir = await nkeysDir({ coordinator, 'worker-buildah': worker });
    const conf = await renderNatsConfig(dir, { serverName: 'nats-1', routes: ['nats://nats-0.h:6222', 'nats://nats-2.h:6222'], tlsDir: '/etc/nats-tls', storeDir: '/data/js' });
    expect(conf).toContain('server_name: "nats-1"');
    expect(conf).toContain('routes: ["nats://nats-0.h:6222", "nats://nats-2.h:6222"]');
    expect(conf).toContain('cert_file: "/etc/nats-tls/tls.crt"');
    expect(conf).toContain('store_dir: "/data/js"');
    expect(conf).toContain(`nkey: "${coordinator}"`);
    expect(conf).toContain(`nkey: "${worker}"`);
    expect(conf).toMatch(/fleet\.v[0-9]+\.api\.claim\.buildah/);
  });

  it('refuses a seed and a set without the coordinator', async () => {
    const pair = nkeys.createUser();
    await expect(renderNatsConfig(await nkeysDir({ coordinator: new TextDecoder().decode(pair.getSeed()) }), { serverName: 'n', routes: [], storeDir: '/d' })).rejects.toThrow(/never put a seed here/);
    await expect(renderNatsConfig(await nkeysDir({ 'worker-a': pair.getPublicKey() }), { serverName: 'n', routes: [], storeDir: '/d' })).rejects.toThrow(/no coordinator/);
  });
});
