import { mkdtemp, readdir, rm, utimes } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { scopeName, TenantState } from '../../../worker/builders/tenant-state.ts';

let root: string;
let removed: string[];
let state: TenantState;

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'fleet-tenant-state-'));
  removed = [];
  state = new TenantState(root, async (dir) => {
    removed.push(basename(dir));
    await rm(dir, { recursive: true, force: true });
  }, 3);
});

afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

/** Marks a scope's directory used at a given second, as a use that long ago would have. */
async function usedAt(scope: string, second: number): Promise<void> {
  const t = new Date(second * 1000);
  await utimes(join(root, scopeName(scope)), t, t);
}

describe('TenantState', () => {
  it('gives each scope a directory of its own and the same one again', async () => {
    const a = await state.dir('tenant:alpha');
    const b = await state.dir('tenant:beta');
    expect(a.created && b.created).toBe(true);
    expect(a.dir).not.toBe(b.dir);
    expect(await state.dir('tenant:alpha')).toEqual({ dir: a.dir, created: false });
    expect(basename(a.dir)).toMatch(/^[0-9a-f]{16}$/);
  });

  it('keeps at most its bound, removing the least recently used (not the one asked for)', async () => {
    await state.dir('tenant:a');
    await state.dir('tenant:b');
    await state.dir('tenant:c');
    await usedAt('tenant:a', 1_000);
    await usedAt('tenant:b', 3_000);
    await usedAt('tenant:c', 2_000);
    await state.dir('tenant:d');
    expect(removed).toEqual([scopeName('tenant:a')]);
    expect((await readdir(root)).sort()).toEqual([scopeName('tenant:b'), scopeName('tenant:c'), scopeName('tenant:d')].sort());
    // a scope used long ago is still kept when asked for: the others make room
    await usedAt('tenant:d', 10);
    await state.dir('tenant:d');
    expect(removed).toHaveLength(1);
  });

  it('names a scope without path characters, whatever the tenant is called', () => {
    for (const scope of ['../../etc', 'tenant:a/b', undefined, '']) expect(scopeName(scope)).toMatch(/^[0-9a-f]{16}$/);
    expect(scopeName(undefined)).toBe(scopeName(''));
  });
});
