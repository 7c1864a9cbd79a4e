import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { buildUiIfMissing } from '../../ui/build.ts';

const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

describe('buildUiIfMissing', () => {
  it('builds the console where there is none, and leaves a built one as it is', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fleet-ui-build-'));
    dirs.push(dir);
    const out = join(dir, 'dist');
    expect(await buildUiIfMissing(out)).toBe(true);
    const page = await readFile(join(out, 'index.html'), 'utf8');
    const script = /src="\/ui\/assets\/([^"]+\.js)"/.exec(page)?.[1];
    expect(script, page).toBeDefined();
    expect((await stat(join(out, 'assets', script ?? ''))).size).toBeGreaterThan(0);
    const built = (await stat(join(out, 'index.html'))).mtimeMs;
    expect(await buildUiIfMissing(out)).toBe(false);
    expect((await stat(join(out, 'index.html'))).mtimeMs).toBe(built);
  }, 60_000);
});
