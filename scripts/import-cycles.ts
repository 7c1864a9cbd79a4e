/**
 * Fails when relative imports form a cycle. Our imports always name the file (`./x.ts`), so a
 * plain scan resolves them exactly. Run: node --import tsx scripts/import-cycles.ts
 */
import { readFile, readdir } from 'node:fs/promises';
import { dirname, join, relative, resolve } from 'node:path';

const IMPORT = /^\s*(?:import|export)\s[^'"]*?from\s+['"](\.{1,2}\/[^'"]+\.ts)['"]/gm;
const SKIP = new Set(['node_modules', '.git']);

export type ImportGraph = Map<string, string[]>;

/** Every elementary cycle found by depth-first search, each as a path ending where it began. */
export function findCycles(graph: ImportGraph): string[][] {
  const cycles: string[][] = [];
  const state = new Map<string, 'active' | 'done'>();
  const stack: string[] = [];
  const visit = (node: string): void => {
    state.set(node, 'active');
    stack.push(node);
    for (const next of graph.get(node) ?? []) {
      if (state.get(next) === 'active') cycles.push([...stack.slice(stack.indexOf(next)), next]);
      else if (!state.has(next)) visit(next);
    }
    stack.pop();
    state.set(node, 'done');
  };
  for (const node of graph.keys()) if (!state.has(node)) visit(node);
  return cycles;
}

async function tsFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    if (SKIP.has(entry.name)) continue;
    const p = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await tsFiles(p)));
    else if (entry.name.endsWith('.ts')) out.push(p);
  }
  return out;
}

export async function importGraph(root: string): Promise<ImportGraph> {
  const graph: ImportGraph = new Map();
  for (const file of await tsFiles(root)) {
    const text = await readFile(file, 'utf8');
    const deps = [...text.matchAll(IMPORT)].map((m) => relative(root, resolve(dirname(file), m[1] ?? '')));
    graph.set(relative(root, file), deps);
  }
  return graph;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const cycles = findCycles(await importGraph(resolve(dirname(new URL(import.meta.url).pathname), '..')));
  for (const c of cycles) process.stderr.write(`import cycle: ${c.join(' -> ')}\n`);
  process.exit(cycles.length === 0 ? 0 : 1);
}
