import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { DOCUMENTED_DIFFERENCES } from './differences.ts';
import { loadCorpus } from './corpus.ts';

const DOC = new URL('../../docs/builders.md', import.meta.url).pathname;

describe('documented builder differences', () => {
  it('docs/builders.md lists exactly the differences of test/conformance/differences.ts, each with its upstream issue', async () => {
    const doc = await readFile(DOC, 'utf8');
    const section = doc.slice(doc.indexOf('## Dockerfile conformance corpus'));
    const rows = section.split('\n').filter((l) => /^\| `[a-z0-9-]+` \|/.test(l));
    const key = (corpus: string, builder: string): string => `${corpus} ${builder}`;
    expect(rows.map((r) => r.split('|').slice(1, 3).map((c) => c.trim().replace(/`/g, '')).join(' ')).sort()).toEqual(DOCUMENTED_DIFFERENCES.map((d) => key(d.corpus, d.builder)).sort());
    for (const d of DOCUMENTED_DIFFERENCES) {
      const row = rows.find((r) => r.startsWith(`| \`${d.corpus}\` | ${d.builder} |`));
      expect(row, key(d.corpus, d.builder)).toContain(d.upstream.startsWith('https://') ? `(${d.upstream})` : d.upstream);
    }
  });

  it('every documented difference names a corpus entry', async () => {
    const names = new Set((await loadCorpus()).map((e) => e.name));
    expect(DOCUMENTED_DIFFERENCES.filter((d) => !names.has(d.corpus)).map((d) => d.corpus)).toEqual([]);
  });
});
