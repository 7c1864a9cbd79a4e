/**
 * Renders the nats-server config of one member of the fleet's NATS cluster (NATS's init
 * container in deploy/kubernetes; see node/nats-cluster-config.ts for what it holds):
 *
 *   node scripts/render-nats-config.js --nkeys DIR --out FILE
 *     [--server-name NAME] [--routes nats://a:6222,nats://b:6222] [--tls-dir DIR] [--store-dir DIR]
 */
import { writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { renderNatsConfig } from '../node/nats-cluster-config.ts';

export { renderNatsConfig, roleOf } from '../node/nats-cluster-config.ts';

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      nkeys: { type: 'string' },
      out: { type: 'string' },
      'server-name': { type: 'string' },
      routes: { type: 'string' },
      'tls-dir': { type: 'string' },
      'store-dir': { type: 'string', default: '/data/jetstream' },
    },
  });
  if (values.nkeys === undefined || values.out === undefined) throw new Error('usage: render-nats-config.ts --nkeys DIR --out FILE [--server-name N] [--routes URLS] [--tls-dir DIR]');
  const config = await renderNatsConfig(values.nkeys, {
    serverName: values['server-name'] ?? process.env.POD_NAME ?? 'nats-0',
    routes: (values.routes ?? '').split(',').filter((r) => r !== ''),
    ...(values['tls-dir'] === undefined ? {} : { tlsDir: values['tls-dir'] }),
    storeDir: values['store-dir'],
  });
  if (values.out === '-') process.stdout.write(config);
  else await writeFile(values.out, config, { mode: 0o644 });
}

if (import.meta.url === `file://${process.argv[1] ?? ''}`) {
  main().catch((e: unknown) => {
    process.stderr.write(`render-nats-config: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  });
}
