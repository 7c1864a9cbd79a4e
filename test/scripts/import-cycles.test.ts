import { describe, expect, it } from 'vitest';
import { findCycles, importGraph } from '../../scripts/import-cycles.ts';

describe('import cycle check', () => {
  it('finds a cycle and names its path', () => {
    const graph = new Map([
      ['a.ts', ['b.ts']],
      ['b.ts', ['c.ts']],
      ['c.ts', ['a.ts']],
      ['d.ts', ['a.ts']],
    ]);
    expect(findCycles(graph)).toEqual([['a.ts', 'b.ts', 'c.ts', 'a.ts']]);
  });

  it('finds none in a tree', () => {
    expect(findCycles(new Map([['a.ts', ['b.ts', 'c.ts']], ['b.ts', ['c.ts']], ['c.ts', []]]))).toEqual([]);
  });

  it('finds none in this project', async () => {
    const root = new URL('../../', import.meta.url).pathname;
    const graph = await importGraph(root);
    expect(graph.get('coordinator/coordinator.ts')).toContain('coordinator/intake.ts');
    expect(findCycles(graph)).toEqual([]);
  });
});
