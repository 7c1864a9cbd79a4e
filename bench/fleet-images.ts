/**
 * `npm run bench -- images`: the fleet builds its own images (images/fleet/) through itself on a
 * local fleet, as custom builds on the official base past its own gates, and prints each image's
 * size (compressed layers, as a registry stores them) and build time; then the coordinator's
 * start-to-ready time from the compiled app the images run (node, no TypeScript loader) beside
 * the same coordinator through tsx. Worker images install their builder's Debian packages in a
 * RUN step, so they need the Debian archive reachable. Printed, not asserted.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir, loadavg } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { z } from 'zod';
import { createLogger } from '../adapters/logger.ts';
import { RegistryClient } from '../adapters/registry-client.ts';
import { startLocalFleet } from '../deploy/local/fleet.ts';
import { FLEET_IMAGES, buildApp, imageContext, type FleetImage } from '../images/fleet/app-context.ts';
import { freePort } from '../node/host.ts';
import { printTable } from './table.ts';

const ONLY = process.env.BENCH_IMAGES?.split(',') as FleetImage[] | undefined;
const ImageManifest = z.object({ config: z.object({ size: z.number() }), layers: z.array(z.object({ size: z.number() })) });
const MiB = (n: number): string => `${(n / 1024 ** 2).toFixed(1)} MiB`;

const fleet = await startLocalFleet({}, createLogger('bench', { level: 'warn', pretty: false }));
const scratch = await mkdtemp(join(tmpdir(), 'fleet-bench-images-'));
const rows: Array<[string, string]> = [];
try {
  const registry = new RegistryClient({ host: fleet.registry.host, insecure: true });
  const app = join(scratch, 'app');
  let t = performance.now();
  await buildApp(app);
  rows.push(['compiled app (tsc + npm ci --omit=dev)', `${((performance.now() - t) / 1000).toFixed(1)} s`]);
  for (const image of ONLY ?? (Object.keys(FLEET_IMAGES) as FleetImage[])) {
    const context = await imageContext(image, app, join(scratch, `ctx-${image}`));
    t = performance.now();
    const { digest } = await fleet.client.uploadContext(context.dir);
    await fleet.client.submit({ id: `self-${image}`, context: { digest }, buildArgs: context.buildArgs, image: { repository: `fleet/${image}`, tags: ['bench'] } });
    const final = await fleet.client.follow(`self-${image}`, {});
    const seconds = ((performance.now() - t) / 1000).toFixed(1);
    if (final.state.phase !== 'pushed') {
      rows.push([`${image}`, `${final.state.phase} after ${seconds} s: ${JSON.stringify(final.state).slice(0, 300)}`]);
      continue;
    }
    const manifest = await registry.manifest(`fleet/${image}`, 'bench');
    const parsed = ImageManifest.parse(JSON.parse(new TextDecoder().decode(manifest?.bytes)));
    const size = parsed.layers.reduce((a, l) => a + l.size, parsed.config.size);
    rows.push([`${image}: size (compressed) · submit → pushed`, `${MiB(size)} · ${seconds} s`]);
  }
  for (const [how, argv] of [
    ['compiled (the images)', [join(app, 'coordinator/main.js')]],
    ['tsx (npm run, development)', ['--import', 'tsx', new URL('../coordinator/main.ts', import.meta.url).pathname]],
  ] as const) {
    const port = await freePort();
    const config = join(scratch, `coordinator-${port}.json`);
    await writeFile(config, JSON.stringify({ ...fleet.coordinatorOptions, http: { host: '127.0.0.1', port } }), { mode: 0o600 });
    t = performance.now();
    const proc = execa(process.execPath, [...argv, '--config', config], { reject: false, cwd: new URL('..', import.meta.url).pathname });
    for (;;) {
      const ok = await fetch(`http://127.0.0.1:${port}/readyz`).then((r) => r.ok, () => false);
      if (ok) break;
      await new Promise((r) => setTimeout(r, 25));
    }
    rows.push([`coordinator start → /readyz 200, ${how}`, `${Math.round(performance.now() - t)} ms`]);
    proc.kill('SIGTERM');
    await proc;
  }
  rows.push(['load average (1 min) at the end', loadavg()[0]?.toFixed(1) ?? '?']);
  printTable(rows);
} finally {
  await fleet.stop();
  await rm(scratch, { recursive: true, force: true });
}
