import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BUILDER_KINDS } from '../../protocol/index.ts';
import { DOCUMENTED_DIFFERENCES } from '../conformance/differences.ts';
import { runCorpus, type CorpusReport } from '../conformance/run-corpus.ts';
import { formatReport } from '../conformance/table.ts';

/**
 * The Dockerfile conformance corpus (test/conformance/corpus) on buildah, BuildKit and kaniko
 * through a real local fleet: every difference between builders, or from an entry's expected
 * outcome and failure code, is either absent or listed in test/conformance/differences.ts.
 */
let report: CorpusReport;
let seconds = 0;
// The budget is 5 minutes on an idle 2-core machine (61 Dockerfiles × 3 builders); the hook's
// limit is a safety cap for a machine shared with other builds, not the budget.

beforeAll(async () => {
  const t0 = performance.now();
  // One line per finished build: on a loaded machine the run takes minutes, and a reader of the
  // test output sees where it is.
  report = await runCorpus({ progress: (line) => process.stderr.write(`conformance corpus: ${line}\n`) });
  seconds = (performance.now() - t0) / 1000;
  // The table is the evidence a reader wants when an assertion below fails.
  process.stderr.write(`${formatReport(report)}\n`);
}, 1_200_000);

afterAll(() => {
  process.stderr.write(`conformance corpus: ${seconds.toFixed(0)} s\n`);
});

describe('conformance corpus', () => {
  it('builds at least 40 Dockerfiles, each on every builder, to an end (pushed or failed)', () => {
    expect(report.summary.dockerfiles).toBeGreaterThanOrEqual(40);
    for (const entry of report.entries) {
      expect(Object.keys(entry.facts).sort(), entry.name).toEqual([...BUILDER_KINDS].sort());
      for (const f of Object.values(entry.facts)) expect(f.outcome, entry.name).not.toBe('other');
    }
  });

  it('every difference between builders (or from the expectation) is documented', () => {
    const unexplained = report.comparisons.flatMap((c) =>
      c.cells.flatMap((cell) => cell.differences.filter((d) => d.documented === undefined).map((d) => `${c.name} × ${cell.builder}: ${d.aspect}: got ${d.got}; wanted ${d.wanted}`)),
    );
    expect(unexplained).toEqual([]);
    expect(report.summary.unexplainedDifferences).toBe(0);
  });

  it('every documented difference still happens (the list cannot outlive a fix)', () => {
    expect(report.stale.map((s) => `${s.corpus} × ${s.builder}: ${s.aspects.join(', ')}`)).toEqual([]);
  });

  it('every documented difference names a corpus entry and an upstream issue', () => {
    const names = new Set(report.entries.map((e) => e.name));
    for (const d of DOCUMENTED_DIFFERENCES) {
      expect(names.has(d.corpus), d.corpus).toBe(true);
      expect(d.upstream, `${d.corpus} × ${d.builder}`).toMatch(/^https:\/\/github\.com\/[^/]+\/[^/]+\/(issues|pull)\/\d+$|^issue \d+$/);
    }
  });
});
