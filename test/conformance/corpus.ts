import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { ErrorCode, parseWith } from '../../protocol/index.ts';

/** What one corpus Dockerfile is expected to do; `expect.json` beside it, all fields optional. */
export const Expectation = z.strictObject({
  /** what a correct builder does with it; default `pushed` */
  outcome: z.enum(['pushed', 'failed']).default('pushed'),
  /** for a failing one: the FleetError code every builder should end with */
  code: z.enum(ErrorCode).optional(),
  /** for a failing RUN: its exit code, as details.exitCode */
  exitCode: z.number().int().optional(),
  target: z.string().optional(),
  buildArgs: z.record(z.string(), z.string()).default({}),
  /**
   * Paths of the result whose file tree is compared (the path itself and everything under it):
   * type, mode, owner, symlink target, content hash. Empty: only the image config is compared.
   */
  files: z.array(z.string().startsWith('/')).default([]),
});
export type Expectation = z.infer<typeof Expectation>;

export interface CorpusEntry {
  name: string;
  dir: string;
  expect: Expectation;
}

export const CORPUS_DIR = new URL('./corpus/', import.meta.url).pathname;
/** Images the corpus builds on, built once per run before the corpus (see setup.ts). */
export const SETUP_DIR = new URL('./setup/', import.meta.url).pathname;

/** Every corpus entry, sorted by name; `only` (names) narrows it. */
export async function loadCorpus(only?: readonly string[]): Promise<CorpusEntry[]> {
  const names = (await readdir(CORPUS_DIR, { withFileTypes: true })).filter((d) => d.isDirectory()).map((d) => d.name).sort();
  const unknown = only?.filter((n) => !names.includes(n)) ?? [];
  if (unknown.length > 0) throw new Error(`no corpus entry named ${unknown.join(', ')}`);
  const entries: CorpusEntry[] = [];
  for (const name of names.filter((n) => only === undefined || only.includes(n))) {
    const dir = join(CORPUS_DIR, name);
    const raw = await readFile(join(dir, 'expect.json'), 'utf8').catch(() => '{}');
    entries.push({ name, dir, expect: parseWith(Expectation, JSON.parse(raw) as unknown, `${name}/expect.json`) });
  }
  return entries;
}
