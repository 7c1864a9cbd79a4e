import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { natsPermissions } from '../../protocol/index.ts';
import type { IssuedUser } from '../../node/nats-authorization.ts';
import { renderNatsConfig } from '../../node/nats-cluster-config.ts';
import { freePort, waitFor } from '../../node/host.ts';
import { runNatsServer, type NatsServer } from './nats-server.ts';

export interface NatsCluster extends NatsServer {
  /** the members, `nats-0`…, each its own process and store */
  members: NatsServer[];
  /** the member's server name (what JetStream's `cluster.leader` says) → its index */
  indexOf(serverName: string): number;
}

/**
 * A JetStream cluster of `size` nats-servers on loopback, each running the config the Kubernetes
 * manifests run (node/nats-cluster-config.ts, from the users' public nkeys) with loopback ports in
 * place of 4222/6222/8222: the same accounts, permissions and routes, so the fleet's tests run on
 * what production runs. Every member serves monitoring (KEDA asks the consumer leader's /jsz).
 */
export async function startNatsCluster(dir: string, users: readonly IssuedUser[], size: number): Promise<NatsCluster> {
  const nkeys = join(dir, 'nkeys');
  await mkdir(nkeys, { recursive: true, mode: 0o700 });
  for (const u of users) await writeFile(join(nkeys, natsPermissions(u.role).user), `${u.publicKey}\n`);
  const ports = await Promise.all(Array.from({ length: size }, async () => ({ client: await freePort(), cluster: await freePort(), monitor: await freePort() })));
  const routes = ports.map((p) => `nats://127.0.0.1:${p.cluster}`);
  const members = await Promise.all(
    ports.map(async (p, i) => {
      const memberDir = join(dir, `nats-${i}`);
      const config = await renderNatsConfig(nkeys, { serverName: `nats-${i}`, routes, storeDir: join(memberDir, 'jetstream') });
      return runNatsServer(memberDir, config, {
        monitoring: true,
        port: p.client,
        monitorPort: p.monitor,
        args: ['--cluster', `nats://127.0.0.1:${p.cluster}`, '-P', join(memberDir, 'nats.pid')],
      });
    }),
  );
  const first = members[0];
  if (first === undefined) throw new Error('a cluster needs at least one member');
  // Routes connect and a meta leader is elected a few seconds after the processes start; until
  // then every JetStream request times out.
  await waitFor('the JetStream cluster electing a meta leader', async () => {
    const jsz = (await fetch(`${first.monitoringUrl ?? ''}/jsz`).then((r) => r.json(), () => null)) as { meta_cluster?: { leader?: string; cluster_size?: number } } | null;
    return jsz?.meta_cluster?.leader !== undefined && jsz.meta_cluster.cluster_size === size ? true : null;
  }, 60_000);
  return {
    members,
    indexOf: (name) => Number(/^nats-(\d+)$/.exec(name)?.[1] ?? -1),
    get url() {
      return members.map((m) => m.url).join(',');
    },
    get port() {
      return first.port;
    },
    get monitoringUrl() {
      return first.monitoringUrl;
    },
    restart: (opts) => first.restart(opts),
    stop: async () => {
      await Promise.all(members.map((m) => m.stop()));
    },
  };
}
