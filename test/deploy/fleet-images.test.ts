import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LocalFleet } from '../../deploy/local/fleet.ts';
import { buildApp, imageContext } from '../../images/fleet/app-context.ts';
import { freePort } from '../../node/host.ts';
import { eventuallyValue } from '../helpers/eventually.ts';
import { startTestFleet } from '../helpers/fleet.ts';
import { runImage } from '../helpers/podman.ts';

let fleet: LocalFleet;
let dir: string;
let app: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'fleet-images-'));
  app = join(dir, 'app');
  [fleet] = await Promise.all([startTestFleet({}), buildApp(app)]);
}, 600_000);
afterAll(async () => {
  await fleet?.stop();
  await rm(dir, { recursive: true, force: true });
});

describe("the fleet's own images", () => {
  it('the compiled app has no TypeScript and no dev dependencies, and its worker and scanner load, and its coordinator serves /healthz, /readyz, /metrics and the web console against a real fleet', async () => {
    const files = await readdir(app, { recursive: true });
    expect(files.filter((f) => f.endsWith('.ts') && !f.startsWith('node_modules'))).toEqual([]);
    const modules = await readdir(join(app, 'node_modules'));
    for (const dev of ['typescript', 'vitest', 'eslint']) expect(modules).not.toContain(dev);
    // the worker's and the scanner's entries load too: without --config, the usage error (2),
    // which means every import of theirs resolved in the compiled app
    for (const main of ['worker/main.js', 'scanner/main.js']) {
      const run = await execa(process.execPath, [join(app, main)], { reject: false, env: { FLEET_LOG_JSON: '1' } });
      expect({ main, exitCode: run.exitCode }, run.stderr).toEqual({ main, exitCode: 2 });
    }

    const port = await freePort();
    const config = join(dir, 'coordinator.json');
    await writeFile(config, JSON.stringify({ ...fleet.coordinatorOptions, http: { host: '127.0.0.1', port } }), { mode: 0o600 });
    const proc = execa(process.execPath, [join(app, 'coordinator/main.js'), '--config', config], { reject: false, env: { FLEET_LOG_JSON: '1' }, forceKillAfterDelay: false });
    try {
      const base = `http://127.0.0.1:${port}`;
      const health = await eventuallyValue(async () => (await fetch(`${base}/healthz`).catch(() => null))?.status, 60_000, 'the compiled coordinator answering /healthz');
      expect(health).toBe(200);
      expect((await fetch(`${base}/readyz`)).status).toBe(200);
      const metrics = await (await fetch(`${base}/metrics`)).text();
      expect(metrics).toMatch(/^# HELP /m);
      // the console the image ships: its page, and the script that page names
      const page = await fetch(`${base}/ui/`);
      expect(page.status).toBe(200);
      const html = await page.text();
      const script = /src="(\/ui\/assets\/[^"]+\.js)"/.exec(html)?.[1];
      expect(script, html).toBeDefined();
      const asset = await fetch(`${base}${script ?? ''}`);
      expect(asset.status).toBe(200);
      expect(asset.headers.get('content-type')).toMatch(/javascript/);
    } finally {
      proc.kill('SIGTERM');
      const ended = await proc;
      // SIGTERM is the coordinator's orderly close (two phases), then exit 0
      expect({ exitCode: ended.exitCode, signal: ended.signal }).toEqual({ exitCode: 0, signal: undefined });
    }
  }, 120_000);

  it('builds its coordinator image through itself: pushed past its own gates, Node 24 and the compiled app inside, non-root', async () => {
    const context = await imageContext('coordinator', app, join(dir, 'ctx-coordinator'));
    const { digest } = await fleet.client.uploadContext(context.dir);
    await fleet.client.submit({ id: 'self-coordinator', context: { digest }, image: { repository: 'fleet/coordinator', tags: ['test'] } });
    const final = await fleet.client.follow('self-coordinator', {});
    expect(final.state.phase, JSON.stringify(final.state)).toBe('pushed');

    const ref = `${fleet.registry.host}/fleet/coordinator:test`;
    const out = await runImage(ref, fleet.registry.host, {
      shell: 'id -u; node --version; node /app/coordinator/main.js >/dev/null 2>&1; echo "exit=$?"; ls /app/coordinator/main.js; find /app -name "*.ts" -not -path "*/node_modules/*" | wc -l; ls /app/ui/dist/index.html',
    });
    const [uid, version, exit, main, tsFiles, consolePage] = out.stdout.trim().split('\n');
    expect(uid).toBe('10001');
    expect(version).toBe(process.version);
    // no --config: the usage error (2), which means every import of the app resolved
    expect(exit).toBe('exit=2');
    expect(main).toBe('/app/coordinator/main.js');
    expect(tsFiles).toBe('0');
    expect(consolePage).toBe('/app/ui/dist/index.html');
  }, 600_000);
});
