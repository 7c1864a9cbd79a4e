import { startLocalFleet } from '../deploy/local/fleet.ts';
import { createLogger } from '../adapters/logger.ts';
import { storedEvents } from '../client/index.ts';
import { waitFor } from '../node/host.ts';
const APP = new URL('../test/fixtures/apps/multi-stage', import.meta.url).pathname;
const builder = (process.env.PROBE_BUILDER ?? 'buildkit') as 'buildkit' | 'kaniko' | 'buildah';
const pool = builder === 'buildah' ? 'default' : builder;
const fleet = await startLocalFleet({ workers: 0, coordinator: { pools: ['buildkit', 'kaniko'] } }, createLogger('probe', { level: 'warn', pretty: false }));
try {
  const worker = await fleet.addWorker({ pool, builder });
  await waitFor('idle', async () => ((await fleet.client.workers()).some((w) => w.workerId === worker.workerId && w.state === 'idle') ? true : null), 30_000);
  const { digest } = await fleet.client.uploadContext(APP);
  const t0 = Date.now();
  await fleet.client.submit({ id: 'probe-1', context: { digest }, pool, target: 'runtime', image: { repository: 'probe/app', tags: ['1'] } });
  const lines: string[] = [];
  const done = await fleet.client.follow('probe-1', { line: (l) => lines.push(`${l.at} ${l.text.slice(0, 100)}`) });
  const t1 = Date.now();
  console.log('phase', done.state.phase, 'total', t1 - t0, 'ms; submit at', new Date(t0).toISOString());
  for (const e of await storedEvents(fleet.client.nc, 'probe-1')) console.log(e.at, e.type);
  console.log(lines.slice(0, 8).join('\n'));
  console.log('...');
  console.log(lines.slice(-8).join('\n'));
  console.log('follow returned', new Date(t1).toISOString());
  await worker.stop();
} finally {
  await fleet.stop();
}
