import { RegistryClient } from '../../adapters/registry-client.ts';
import type { LocalFleet } from '../../deploy/local/fleet.ts';
import { BUILDER_KINDS, type BuilderKind } from '../../protocol/index.ts';
import { startTestFleet } from '../helpers/fleet.ts';
import { compareEntry, staleDifferences, type BuildFacts, type EntryComparison } from './compare.ts';
import { loadCorpus, type CorpusEntry } from './corpus.ts';
import type { DocumentedDifference } from './differences.ts';
import { readImageFacts } from './image-facts.ts';
import { buildSetupImages } from './setup.ts';

export const GATE_POLICY = new URL('./gate-policy.json', import.meta.url).pathname;

export interface CorpusRunOptions {
  /** only these corpus entries (names); default all */
  only?: readonly string[];
  /**
   * kaniko workers (its pool is the slowest: it unpacks each base into its own root); one each for
   * buildah and BuildKit. Builds in flight = 2 + this; default 1 (the machine has 2 cores).
   */
  kanikoWorkers?: number;
  /** per-build run timeout */
  timeoutSeconds?: number;
  /** progress, one line per finished build */
  progress?: (line: string) => void;
  signal?: AbortSignal;
}

export interface CorpusReport {
  builders: BuilderKind[];
  entries: { name: string; expect: CorpusEntry['expect']; facts: Partial<Record<BuilderKind, BuildFacts>> }[];
  comparisons: EntryComparison[];
  stale: DocumentedDifference[];
  summary: CorpusSummary;
}

export interface CorpusSummary {
  dockerfiles: number;
  builds: number;
  /** Dockerfiles on which every builder agrees (with the expectation and each other) */
  agreements: number;
  /** Dockerfile × builder cells whose every difference is documented */
  documentedDifferences: number;
  /** Dockerfile × builder cells with a difference not documented (target 0) */
  unexplainedDifferences: number;
  staleDocumented: number;
  seconds: { setup: number; builds: number; total: number };
}

/** The pool serving each builder in the corpus fleet (buildah serves `default`). */
export const poolOf = (b: BuilderKind): string => (b === 'buildah' ? 'default' : b);

/**
 * Builds every corpus Dockerfile on every builder through a whole local fleet (real NATS,
 * registry, S3, coordinator and one rootless worker per builder: the real builder classes, as
 * production runs them), then compares per Dockerfile the outcome, failure code and image. One
 * delivery per job (maxDeliver 1): a failure is what the builder said, not the retry policy's.
 */
export async function runCorpus(opts: CorpusRunOptions = {}): Promise<CorpusReport> {
  const started = performance.now();
  const corpus = await loadCorpus(opts.only);
  const fleet = await startTestFleet({ workers: 1, coordinator: { pools: ['buildkit', 'kaniko'], maxDeliver: 1 }, gatePolicyPath: GATE_POLICY });
  try {
    await fleet.addWorker({ pool: 'buildkit', builder: 'buildkit' });
    for (let i = 0; i < (opts.kanikoWorkers ?? 1); i++) await fleet.addWorker({ pool: 'kaniko', builder: 'kaniko' });
    return await runOn(fleet, corpus, opts, started);
  } finally {
    await fleet.stop();
  }
}

async function runOn(fleet: LocalFleet, corpus: CorpusEntry[], opts: CorpusRunOptions, started: number): Promise<CorpusReport> {
  const runId = `c${Date.now().toString(36)}`;
  const registry = new RegistryClient({ host: fleet.registry.host, insecure: true });
  const setupStart = performance.now();
  await buildSetupImages(fleet, runId, opts.signal);
  const buildsStart = performance.now();
  const builders = [...BUILDER_KINDS];
  const facts = new Map<string, Map<BuilderKind, BuildFacts>>(corpus.map((e) => [e.name, new Map()]));
  // Each context is uploaded once, before any lane starts: the three builders' lanes would
  // otherwise race to put the same content-addressed key.
  const contexts = new Map<string, string>();
  for (const entry of corpus) contexts.set(entry.name, (await fleet.client.uploadContext(entry.dir)).digest);
  // One lane per worker: a pool's worker builds one job at a time, so more in flight would only queue.
  await Promise.all(
    builders.flatMap((builder) => {
      const queue = [...corpus];
      const lanes = builder === 'kaniko' ? (opts.kanikoWorkers ?? 1) : 1;
      return Array.from({ length: lanes }, async () => {
        for (let entry = queue.shift(); entry !== undefined; entry = queue.shift()) {
          opts.signal?.throwIfAborted();
          const f = await buildOne(fleet, registry, runId, entry, contexts.get(entry.name) ?? '', builder, opts);
          facts.get(entry.name)?.set(builder, f);
          opts.progress?.(`${entry.name} × ${builder}: ${f.outcome === 'failed' ? `failed ${f.code}` : f.outcome} (${f.seconds.toFixed(1)} s)`);
        }
      });
    }),
  );
  const buildsEnd = performance.now();
  const comparisons = corpus.map((entry) => compareEntry(entry, facts.get(entry.name) ?? new Map()));
  const stale = staleDifferences(comparisons, new Set(corpus.map((e) => e.name)));
  const cells = comparisons.flatMap((c) => c.cells);
  return {
    builders,
    entries: corpus.map((e) => ({ name: e.name, expect: e.expect, facts: Object.fromEntries(facts.get(e.name) ?? []) })),
    comparisons,
    stale,
    summary: {
      dockerfiles: corpus.length,
      builds: cells.length,
      agreements: comparisons.filter((c) => c.cells.every((x) => x.verdict === 'agrees')).length,
      documentedDifferences: cells.filter((x) => x.verdict === 'documented').length,
      unexplainedDifferences: cells.filter((x) => x.verdict === 'differs').length,
      staleDocumented: stale.length,
      seconds: { setup: secs(buildsStart - setupStart), builds: secs(buildsEnd - buildsStart), total: secs(performance.now() - started) },
    },
  };
}

async function buildOne(fleet: LocalFleet, registry: RegistryClient, runId: string, entry: CorpusEntry, digest: string, builder: BuilderKind, opts: CorpusRunOptions): Promise<BuildFacts> {
  const t0 = performance.now();
  const id = `${runId}-${entry.name}-${builder}`;
  const repository = `corpus/${entry.name}`;
  await fleet.client.submit({
    id,
    context: { digest },
    pool: poolOf(builder),
    image: { repository, tags: [builder] },
    buildArgs: entry.expect.buildArgs,
    timeoutSeconds: opts.timeoutSeconds ?? 180,
    ...(entry.expect.target === undefined ? {} : { target: entry.expect.target }),
  });
  const done = await fleet.client.follow(id, {}, opts.signal);
  const state = done.state;
  if (state.phase === 'pushed') {
    const image = await readImageFacts(registry, repository, state.digest, entry.expect.files, opts.signal);
    return { outcome: 'pushed', seconds: secs(performance.now() - t0), attempt: state.attempt, image };
  }
  if (state.phase === 'failed') {
    const d = state.error.details;
    return {
      outcome: 'failed',
      seconds: secs(performance.now() - t0),
      attempt: state.attempt,
      code: state.error.code,
      message: state.error.message,
      ...(typeof d?.exitCode === 'number' ? { exitCode: d.exitCode } : {}),
      ...(typeof d?.step === 'string' ? { step: d.step } : {}),
      ...(Array.isArray(d?.logTail) ? { logTail: d.logTail.slice(-8).map(String) } : {}),
    };
  }
  return { outcome: 'other', seconds: secs(performance.now() - t0), phase: state.phase };
}

function secs(ms: number): number {
  return Math.round(ms / 100) / 10;
}

