/**
 * `npm run bench -- standard`: a standard Java build (java17, .paas hooks, wget option) on a
 * fresh worker (cold: official bases pulled, nothing cached), then the same app with one source
 * file changed on the same worker (warm: unchanged steps come from the layer cache), then the
 * same again with no change. Also how long the gates took on each digest (verifying → verdict)
 * and how long promotion took (verdict → pushed). Printed, not asserted.
 */
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startLocalFleet } from '../deploy/local/fleet.ts';
import { createLogger } from '../adapters/logger.ts';
import { storedEvents } from '../client/index.ts';
import { printTable } from './table.ts';

const APP = new URL('../test/fixtures/apps/java-hooks', import.meta.url).pathname;
const log = createLogger('bench', { level: 'warn', pretty: false });
const fleet = await startLocalFleet({}, log);
const scratch = await mkdtemp(join(tmpdir(), 'fleet-bench-std-'));
try {
  const app = join(scratch, 'app');
  await cp(APP, app, { recursive: true });
  const rows: Array<[string, string]> = [];
  const build = async (name: string): Promise<void> => {
    const { digest } = await fleet.client.uploadContext(app, null);
    const id = `std-${name}`;
    const t0 = performance.now();
    await fleet.client.submit({ id, kind: 'standard', context: { digest }, standard: { runtime: 'java17', environment: 'prod', options: ['wget'] }, image: { repository: 'bench/std', tags: [name] } });
    const done = await fleet.client.follow(id, {});
    const wall = performance.now() - t0;
    if (done.state.phase !== 'pushed') throw new Error(`${id} ended ${done.state.phase}`);
    const events = await storedEvents(fleet.client.nc, id);
    const at = (type: string): number => Date.parse(events.find((e) => e.type === type)?.at ?? '');
    rows.push([`${name}: submit → promoted`, `${(wall / 1000).toFixed(1)} s`]);
    rows.push([`${name}: gates (verifying → verdict)`, `${at('verdict') - at('verifying')} ms`]);
    rows.push([`${name}: promotion (verdict → pushed)`, `${at('pushed') - at('verdict')} ms`]);
  };
  await build('cold');
  const main = join(app, 'src', 'Main.java');
  await writeFile(main, (await readFile(main, 'utf8')).replace('hello from java-hooks', 'hello again from java-hooks'));
  await build('warm-one-file-changed');
  await build('warm-unchanged');
  printTable(rows);
} finally {
  await rm(scratch, { recursive: true, force: true });
  await fleet.stop();
}
