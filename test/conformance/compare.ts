import { isDeepStrictEqual } from 'node:util';
import type { BuilderKind } from '../../protocol/index.ts';
import type { CorpusEntry } from './corpus.ts';
import { DOCUMENTED_DIFFERENCES, documentedFor, type DocumentedDifference } from './differences.ts';
import { COMPARED_FIELDS, treeLine, type ImageFacts } from './image-facts.ts';

/** What one builder did with one corpus Dockerfile. */
export type BuildFacts =
  | { outcome: 'pushed'; seconds: number; attempt: number; image: ImageFacts }
  | { outcome: 'failed'; seconds: number; attempt: number; code: string; message: string; exitCode?: number; step?: string; logTail?: string[] }
  | { outcome: 'other'; seconds: number; phase: string };

export interface AspectDifference {
  /** `outcome`, `code`, `exitCode`, `tree`, `missing` (a compared path absent) or `config.<Field>` */
  aspect: string;
  /** this builder's value and what the others (or the expectation) had, as short text */
  got: string;
  wanted: string;
  documented?: DocumentedDifference;
}

export type Verdict = 'agrees' | 'documented' | 'differs';

export interface Cell {
  builder: BuilderKind;
  verdict: Verdict;
  differences: AspectDifference[];
}

export interface EntryComparison {
  name: string;
  cells: Cell[];
}

/**
 * Compares one Dockerfile's builds. Outcome, failure code and exit code are held against the
 * entry's expectation; the image config fields and the file tree are held against what the
 * majority of builders that pushed produced (with three builders, two agreeing make the reference;
 * with no majority every builder differs).
 */
export function compareEntry(entry: CorpusEntry, facts: ReadonlyMap<BuilderKind, BuildFacts>): EntryComparison {
  const builders = [...facts.keys()];
  const diffs = new Map<BuilderKind, AspectDifference[]>(builders.map((b) => [b, []]));
  const add = (b: BuilderKind, aspect: string, got: unknown, wanted: unknown): void => {
    const documented = documentedFor(entry.name, b, aspect);
    diffs.get(b)?.push({ aspect, got: show(got), wanted: show(wanted), ...(documented === undefined ? {} : { documented }) });
  };
  for (const [b, f] of facts) {
    if (f.outcome !== entry.expect.outcome) {
      add(b, 'outcome', f.outcome === 'failed' ? `failed ${f.code}: ${f.message}` : f.outcome === 'other' ? f.phase : 'pushed', entry.expect.outcome);
      continue;
    }
    if (f.outcome !== 'failed') continue;
    if (entry.expect.code !== undefined && f.code !== entry.expect.code) add(b, 'code', `${f.code}: ${f.message}`, entry.expect.code);
    if (entry.expect.exitCode !== undefined && f.exitCode !== entry.expect.exitCode) add(b, 'exitCode', f.exitCode ?? 'none', entry.expect.exitCode);
  }
  const pushed = new Map<BuilderKind, ImageFacts>();
  for (const [b, f] of facts) if (f.outcome === 'pushed') pushed.set(b, f.image);
  for (const field of COMPARED_FIELDS) {
    for (const [b, odd, reference] of outliers(pushed, (i) => i.config[field])) add(b, `config.${field}`, odd, reference ?? 'no two builders agree');
  }
  // The tree path by path: each path's entry (or its absence) against the majority's.
  const paths = [...new Set([...pushed.values()].flatMap((i) => i.tree.map((e) => e.path)))].sort();
  const treeDiffs = new Map<BuilderKind, string[]>();
  for (const path of paths) {
    for (const [b, odd, reference] of outliers(pushed, (i) => lineAt(i, path))) {
      treeDiffs.set(b, [...(treeDiffs.get(b) ?? []), `${odd ?? `${path} absent`} (majority: ${reference ?? 'none'})`]);
    }
  }
  for (const [b, lines] of treeDiffs) add(b, 'tree', lines.join('; '), 'the majority\'s tree');
  // A compared path every pushed image must have: a builder that silently skipped the step that
  // makes it (and a corpus entry that tests nothing) shows here even when the others agree.
  for (const [b, i] of pushed) {
    const missing = entry.expect.files.filter((p) => !i.tree.some((e) => e.path === p || e.path.startsWith(`${p}/`)));
    if (missing.length > 0) add(b, 'missing', missing.join(', '), 'present');
  }
  return {
    name: entry.name,
    cells: builders.map((builder) => {
      const d = diffs.get(builder) ?? [];
      const verdict: Verdict = d.length === 0 ? 'agrees' : d.every((x) => x.documented !== undefined) ? 'documented' : 'differs';
      return { builder, verdict, differences: d };
    }),
  };
}

/**
 * Builders whose value differs from the majority's, with their value and the reference value.
 * With no majority (two builders pushed and disagree, or three disagree) BuildKit's value is the
 * reference when it pushed: it is Docker's own builder, so its behaviour is the Dockerfile
 * reference's; otherwise every builder differs (reference null).
 */
function outliers<T>(values: ReadonlyMap<BuilderKind, ImageFacts>, pick: (i: ImageFacts) => T): [BuilderKind, T, T | null][] {
  const picked = [...values].map(([b, i]) => [b, pick(i)] as const);
  if (picked.length < 2) return [];
  const majority = picked.find(([, v]) => picked.filter(([, w]) => isDeepStrictEqual(v, w)).length * 2 > picked.length) ?? picked.find(([b]) => b === 'buildkit');
  return picked.filter(([, v]) => majority === undefined || !isDeepStrictEqual(v, majority[1])).map(([b, v]) => [b, v, majority?.[1] ?? null]);
}

function lineAt(image: ImageFacts, path: string): string | undefined {
  const e = image.tree.find((x) => x.path === path);
  return e === undefined ? undefined : treeLine(e);
}

function show(v: unknown): string {
  if (v === undefined) return '(not set)';
  return typeof v === 'string' ? v : JSON.stringify(v);
}

/** Documented differences that no cell used: the difference is gone, so its entry must go too. */
export function staleDifferences(comparisons: readonly EntryComparison[], ran: ReadonlySet<string>): DocumentedDifference[] {
  const used = new Set<DocumentedDifference>();
  for (const c of comparisons) for (const cell of c.cells) for (const d of cell.differences) if (d.documented !== undefined) used.add(d.documented);
  return DOCUMENTED_DIFFERENCES.filter((d) => ran.has(d.corpus) && !used.has(d));
}
