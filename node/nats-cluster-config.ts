/**
 * The nats-server config of one member of the fleet's NATS cluster (deploy/kubernetes renders it
 * in NATS's init container with scripts/render-nats-config.ts; the local fleet's cluster mode runs
 * the same text): JetStream, the cluster routes, TLS for clients and routes, the monitoring port,
 * and the authorization block with one nkey user per fleet role, from nats-authorization.ts.
 *
 * The nkeys dir holds one file per NATS user, named as the user (admin, coordinator,
 * worker-<pool>, tenant-<name>), containing that user's PUBLIC nkey (U…): the Secret
 * `fleet-nats-nkeys` the operator creates. Seeds never reach the server.
 */
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { natsUser, type NatsRole } from '../protocol/index.ts';
import { renderAuthorization } from './nats-authorization.ts';

/** The role a NATS user name stands for (the inverse of natsUser). */
export function roleOf(user: string): NatsRole {
  const role: NatsRole = user.startsWith('worker-')
    ? { kind: 'worker', pool: user.slice('worker-'.length) }
    : user.startsWith('tenant-')
      ? { kind: 'tenant', tenant: user.slice('tenant-'.length) }
      : ({ kind: user } as NatsRole);
  let back: string | undefined;
  try {
    back = natsUser(role);
  } catch {
    back = undefined;
  }
  if (back !== user) throw new Error(`${user}: not a NATS user of the fleet (admin, coordinator, worker-<pool>, tenant-<name>)`);
  return role;
}

export interface ClusterOptions {
  serverName: string;
  routes: string[];
  /** tls.crt, tls.key and ca.crt (a cert-manager or kubernetes.io/tls Secret) */
  tlsDir?: string;
  storeDir: string;
}

export async function renderNatsConfig(nkeysDir: string, cluster: ClusterOptions): Promise<string> {
  const names = (await readdir(nkeysDir)).filter((n) => !n.startsWith('.')).sort();
  const users = await Promise.all(
    names.map(async (name) => {
      const publicKey = (await readFile(join(nkeysDir, name), 'utf8')).trim();
      if (!/^U[A-Z2-7]{55}$/.test(publicKey)) throw new Error(`${name}: not a public user nkey (U…, 56 characters); never put a seed here`);
      return { role: roleOf(name), publicKey };
    }),
  );
  if (!users.some((u) => u.role.kind === 'coordinator')) throw new Error(`${nkeysDir}: no coordinator user`);
  const tls = (indent: string, verify: boolean): string =>
    cluster.tlsDir === undefined
      ? ''
      : `${indent}tls {\n${indent}  cert_file: ${JSON.stringify(join(cluster.tlsDir, 'tls.crt'))}\n${indent}  key_file: ${JSON.stringify(join(cluster.tlsDir, 'tls.key'))}\n` +
        `${indent}  ca_file: ${JSON.stringify(join(cluster.tlsDir, 'ca.crt'))}\n${verify ? `${indent}  verify: true\n` : ''}${indent}}\n`;
  return [
    `server_name: ${JSON.stringify(cluster.serverName)}`,
    'port: 4222',
    'http_port: 8222',
    // the preStop hook signals lame duck mode through it
    'pid_file: "/var/run/nats/nats.pid"',
    `jetstream {\n  store_dir: ${JSON.stringify(cluster.storeDir)}\n}`,
    tls('', false).trimEnd(),
    'cluster {',
    '  name: "fleet"',
    '  port: 6222',
    `  routes: [${cluster.routes.map((r) => JSON.stringify(r)).join(', ')}]`,
    tls('  ', true).trimEnd(),
    '}',
    'lame_duck_duration: "30s"',
    renderAuthorization(users),
  ]
    .filter((l) => l !== '')
    .join('\n');
}
