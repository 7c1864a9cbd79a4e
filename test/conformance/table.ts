import type { CorpusReport } from './run-corpus.ts';

const MARK = { agrees: '✓', documented: 'doc', differs: '✗' } as const;

/** The agreement table (Dockerfile × builder), the differences under it, and the summary line. */
export function formatReport(report: CorpusReport): string {
  const width = Math.max(10, ...report.comparisons.map((c) => c.name.length));
  const lines = [`${'Dockerfile'.padEnd(width)}  ${report.builders.map((b) => b.padEnd(9)).join(' ')}`];
  for (const c of report.comparisons) {
    lines.push(`${c.name.padEnd(width)}  ${report.builders.map((b) => MARK[c.cells.find((x) => x.builder === b)?.verdict ?? 'differs'].padEnd(9)).join(' ')}`);
  }
  const notes: string[] = [];
  for (const c of report.comparisons) {
    for (const cell of c.cells) {
      for (const d of cell.differences) {
        const tag = d.documented === undefined ? 'UNEXPLAINED' : `documented (${d.documented.kind}, ${d.documented.upstream})`;
        notes.push(`${c.name} × ${cell.builder}: ${d.aspect}: got ${clip(d.got)}; others/expected ${clip(d.wanted)} — ${tag}`);
      }
    }
  }
  for (const s of report.stale) notes.push(`STALE documented difference (no longer happens): ${s.corpus} × ${s.builder}: ${s.aspects.join(', ')} — ${s.what}`);
  const s = report.summary;
  return [
    ...lines,
    '',
    ...notes,
    '',
    `Dockerfiles: ${s.dockerfiles}, builds: ${s.builds}, agreements: ${s.agreements}, documented differences: ${s.documentedDifferences}, unexplained differences: ${s.unexplainedDifferences}, stale documented: ${s.staleDocumented} (set-up ${s.seconds.setup} s, builds ${s.seconds.builds} s, total ${s.seconds.total} s)`,
  ].join('\n');
}

function clip(text: string): string {
  return text.length > 400 ? `${text.slice(0, 400)}…` : text;
}
