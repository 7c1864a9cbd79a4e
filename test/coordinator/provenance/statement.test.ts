import { describe, expect, it } from 'vitest';
import { BuildRecord, ProvenanceStatement, type Verdict } from '../../../protocol/index.ts';
import { provenanceStatement } from '../../../coordinator/provenance/statement.ts';

const D = (c: string) => `sha256:${c.repeat(64)}`;
const record = BuildRecord.parse({
  id: 'b-1',
  requestHash: 'h',
  tenant: 'payments',
  createdAt: '2026-11-29T10:00:00.000Z',
  updatedAt: '2026-11-29T10:00:00.000Z',
  request: {
    id: 'b-1',
    context: { digest: D('c') },
    target: 'runtime',
    buildArgs: { TOKEN: 'hunter2-secret', MODE: 'mode-value-xyz' },
    image: { repository: 'payments/api', tags: ['1', 'latest'] },
  },
  state: { phase: 'queued' },
});
const verdict: Verdict = {
  digest: D('d'),
  promoted: true,
  gates: [
    { gate: 'non-root', outcome: 'pass', code: 'NON_ROOT_OK', reason: 'runs as 1000' },
    {
      gate: 'vulnerabilities', outcome: 'pass', code: 'VULNERABILITIES_OK', reason: 'none',
      scan: { scanner: { name: 'grype', version: '0.80', dbBuilt: '2026-11-28T00:00:00.000Z' }, blocking: [], allowlisted: [], total: 3 },
    },
  ],
};

describe('provenance statement', () => {
  const statement = provenanceStatement({
    record, registry: 'r:5000', digest: D('d'), attempt: 2, workerId: 'w-7', builder: { kind: 'kaniko', version: '1.23.2' },
    bases: [{ name: 'r:5000/official/jre17:1', digest: D('b') }], startedOn: '2026-11-29T10:01:00.000Z', finishedOn: '2026-11-29T10:02:00.000Z', verdict,
  });

  it('is an in-toto v1 statement with a SLSA v1 predicate about the image digest', () => {
    expect(ProvenanceStatement.parse(statement)).toEqual(statement);
    expect(statement.subject).toEqual([{ name: 'r:5000/payments/api', digest: { sha256: 'd'.repeat(64) } }]);
  });

  it('records the request with build-arg names only, never their values', () => {
    expect(statement.predicate.buildDefinition.externalParameters.request).toMatchObject({ id: 'b-1', tenant: 'payments', kind: 'custom', target: 'runtime', buildArgNames: ['MODE', 'TOKEN'] });
    expect(JSON.stringify(statement)).not.toContain('hunter2-secret');
    expect(JSON.stringify(statement)).not.toContain('mode-value-xyz');
  });

  it('resolves the context and every base by digest; names builder, pool, worker, attempt, times, gates and scan', () => {
    expect(statement.predicate.buildDefinition.resolvedDependencies.map((d) => [d.name, d.digest])).toEqual([
      ['context', { sha256: 'c'.repeat(64) }],
      ['r:5000/official/jre17:1', { sha256: 'b'.repeat(64) }],
    ]);
    const run = statement.predicate.runDetails;
    expect(run.builder.version).toEqual({ builder: 'kaniko', kaniko: '1.23.2', pool: 'default', workerId: 'w-7' });
    expect(run.metadata).toEqual({ invocationId: 'b-1/attempt-2', startedOn: '2026-11-29T10:01:00.000Z', finishedOn: '2026-11-29T10:02:00.000Z' });
    expect(run.byproducts?.[0]?.annotations).toMatchObject({ promoted: true, scan: { total: 3, blocking: 0, scanner: { name: 'grype' } } });
  });
});
