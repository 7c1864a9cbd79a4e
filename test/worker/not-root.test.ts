import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { ErrorCode, isFleetError } from '../../protocol/index.ts';
import { assertNotRoot } from '../../worker/not-root.ts';

const MAIN = new URL('../../worker/main.ts', import.meta.url).pathname;

describe('worker privilege', () => {
  it('refuses uid 0 with E_WORKER_AS_ROOT', () => {
    let thrown: unknown = null;
    try {
      assertNotRoot(0);
    } catch (e) {
      thrown = e;
    }
    expect(isFleetError(thrown, ErrorCode.E_WORKER_AS_ROOT)).toBe(true);
    expect(() => assertNotRoot(1000)).not.toThrow();
  });

  it.runIf(process.getuid?.() === 0)('exits non-zero with the reason when started as root', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fleet-root-'));
    const config = join(dir, 'w.json');
    await writeFile(config, JSON.stringify({ natsUrl: 'nats://127.0.0.1:1', stateDir: dir }));
    const r = await execa(process.execPath, ['--import', 'tsx', MAIN, '--config', config], { reject: false, env: { FLEET_LOG_JSON: '1' } });
    await rm(dir, { recursive: true, force: true });
    expect(r.exitCode).toBe(3);
    expect(r.stderr).toContain('refusing to run as root');
  });
});
