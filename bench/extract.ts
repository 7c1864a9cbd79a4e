/**
 * `node --import tsx bench/extract.ts`: the worker's safe extraction on a 200 MB context and on 50,000
 * small files (MB/s and entries/s, against `tar xzf` of the same archive), and on hostile archives:
 * a path 10,000 levels deep (wall time, worst event-loop lag), 200,000 empty entries (peak RSS
 * growth), hard-link amplification (bytes written). Printed, not asserted: numbers belong to the machine.
 */
import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import { execa } from 'execa';
import * as tar from 'tar';
import { packContext } from '../client/index.ts';
import { extractContext, DEFAULT_EXTRACT_LIMITS } from '../worker/context-extract.ts';
import { printTable } from './table.ts';

const MB = Number(process.env.BENCH_CONTEXT_MB ?? 200);
const SMALL = Number(process.env.BENCH_SMALL_FILES ?? 50_000);
const DEEP = Number(process.env.BENCH_DEEP_LEVELS ?? 10_000);
const MANY = Number(process.env.BENCH_MANY_ENTRIES ?? 200_000);

interface Run {
  ms: number;
  maxLagMs: number;
  peakRssGrowthMB: number;
  result: { entries: number; bytes: number } | null;
  refusal: string | null;
}

/** One extraction, with the event loop's worst delay and RSS sampled while it runs. */
async function measure(file: string, out: string): Promise<Run> {
  const lag = monitorEventLoopDelay({ resolution: 10 });
  const rss0 = process.memoryUsage.rss();
  let peak = rss0;
  const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage.rss())), 10);
  lag.enable();
  const t0 = performance.now();
  const outcome = await extractContext(file, out).then(
    (r) => ({ result: r, refusal: null }),
    (e: unknown) => ({ result: null, refusal: e instanceof Error ? e.message : String(e) }),
  );
  const ms = performance.now() - t0;
  lag.disable();
  clearInterval(sampler);
  peak = Math.max(peak, process.memoryUsage.rss());
  return { ms, maxLagMs: lag.max / 1e6, peakRssGrowthMB: (peak - rss0) / 1024 ** 2, ...outcome };
}

/** A tar.gz from raw headers, streamed so a large one is never held in memory. */
async function rawTar(file: string, entries: () => Iterable<{ path: string; type: string; linkpath?: string; body?: Buffer }>): Promise<void> {
  async function* blocks() {
    for (const e of entries()) {
      const body = e.body ?? Buffer.alloc(0);
      const paxPath = Buffer.byteLength(e.path) > 100 ? e.path : undefined;
      if (paxPath !== undefined) {
        const pax = new tar.Pax({ path: paxPath }).encode();
        yield pax;
      }
      const header = Buffer.alloc(512);
      new tar.Header({ path: paxPath === undefined ? e.path : 'long', type: e.type as never, linkpath: e.linkpath ?? '', mode: 0o644, size: body.length, mtime: new Date(0) }).encode(header);
      yield header;
      if (body.length > 0) yield Buffer.concat([body, Buffer.alloc((512 - (body.length % 512)) % 512)]);
    }
    yield Buffer.alloc(1024);
  }
  await pipeline(blocks, createGzip(), createWriteStream(file));
}

const work = await mkdtemp(join(tmpdir(), 'fleet-bench-extract-'));
const rows: Array<[string, string]> = [];
const rate = (r: Run, mb: number): string =>
  r.result === null ? `refused after ${(r.ms / 1000).toFixed(2)} s: ${r.refusal ?? ''}` : `${(r.ms / 1000).toFixed(2)} s, ${(mb / (r.ms / 1000)).toFixed(0)} MB/s, ${(r.result.entries / (r.ms / 1000)).toFixed(0)} entries/s`;
const tarRate = async (file: string, out: string, mb: number, entries: number): Promise<string> => {
  await mkdir(out);
  const t0 = performance.now();
  await execa('tar', ['-xzf', file, '-C', out]);
  const s = (performance.now() - t0) / 1000;
  return `${s.toFixed(2)} s, ${(mb / s).toFixed(0)} MB/s, ${(entries / s).toFixed(0)} entries/s`;
};
try {
  // Half random (incompressible), half text-like, as bench/context.ts.
  const big = join(work, 'big');
  await mkdir(big);
  for (let i = 0; i < MB; i++) {
    const body = i % 2 === 0 ? randomBytes(1024 ** 2) : Buffer.from('const answer = 42; // some source code\n'.repeat(26_000)).subarray(0, 1024 ** 2);
    await writeFile(join(big, `file-${i}.bin`), body);
  }
  await writeFile(join(big, 'Dockerfile'), 'FROM scratch\n');
  const bigTgz = await packContext(big, 'Dockerfile', join(work, 'big.tgz'));
  await rm(big, { recursive: true });
  rows.push([`${MB} MB context, ${MB + 1} files: safe extract`, rate(await measure(bigTgz.file, join(work, 'big-out')), MB)]);
  await rm(join(work, 'big-out'), { recursive: true, force: true });
  rows.push([`${MB} MB context: tar xzf`, await tarRate(bigTgz.file, join(work, 'big-tar'), MB, MB + 1)]);
  await rm(join(work, 'big-tar'), { recursive: true, force: true });

  // Source-tree-like: 100 files a directory, 0-2 KB each.
  const small = join(work, 'small');
  let smallBytes = 0;
  for (let i = 0; i < SMALL; i++) {
    if (i % 100 === 0) await mkdir(join(small, `pkg-${i / 100}`), { recursive: true });
    const body = Buffer.from('x'.repeat((i * 7919) % 2048));
    smallBytes += body.length;
    await writeFile(join(small, `pkg-${Math.floor(i / 100)}`, `f-${i}.ts`), body);
  }
  await writeFile(join(small, 'Dockerfile'), 'FROM scratch\n');
  const smallTgz = await packContext(small, 'Dockerfile', join(work, 'small.tgz'));
  await rm(small, { recursive: true });
  const smallMB = smallBytes / 1024 ** 2;
  rows.push([`${SMALL} small files (${smallMB.toFixed(0)} MB): safe extract`, rate(await measure(smallTgz.file, join(work, 'small-out')), smallMB)]);
  await rm(join(work, 'small-out'), { recursive: true, force: true });
  rows.push([`${SMALL} small files: tar xzf`, await tarRate(smallTgz.file, join(work, 'small-tar'), smallMB, SMALL + 1)]);
  await rm(join(work, 'small-tar'), { recursive: true, force: true });

  const deep = join(work, 'deep.tgz');
  await rawTar(deep, () => [{ path: `${'d/'.repeat(DEEP)}f`, type: 'File', body: Buffer.from('x') }]);
  const d = await measure(deep, join(work, 'deep-out'));
  rows.push([`a path ${DEEP} levels deep`, `${d.result === null ? `refused (${d.refusal ?? ''})` : 'extracted'} in ${d.ms.toFixed(0)} ms, worst event-loop lag ${d.maxLagMs.toFixed(0)} ms`]);
  await rm(join(work, 'deep-out'), { recursive: true, force: true });

  const many = join(work, 'many.tgz');
  await rawTar(many, function* () {
    for (let i = 0; i < MANY; i++) yield { path: `e${i}`, type: 'File' };
  });
  const m = await measure(many, join(work, 'many-out'));
  rows.push([
    `${MANY} empty entries (cap ${DEFAULT_EXTRACT_LIMITS.maxEntries})`,
    `${m.result === null ? `refused (${(m.refusal ?? '').slice(0, 80)})` : 'extracted'} in ${(m.ms / 1000).toFixed(1)} s, peak RSS growth ${m.peakRssGrowthMB.toFixed(0)} MB, worst lag ${m.maxLagMs.toFixed(0)} ms`,
  ]);
  await rm(join(work, 'many-out'), { recursive: true, force: true });

  // 64 MiB budget (the ratio floor), one 1 MiB file hard-linked 1,000 times.
  const links = join(work, 'links.tgz');
  await rawTar(links, function* () {
    yield { path: 'f', type: 'File', body: Buffer.alloc(1024 ** 2) };
    for (let i = 0; i < 1000; i++) yield { path: `l${i}`, type: 'Link', linkpath: 'f' };
  });
  const l = await measure(links, join(work, 'links-out'));
  const { stdout } = await execa('du', ['-sb', join(work, 'links-out')], { reject: false });
  rows.push(['1 MiB file hard-linked 1,000 times', `${l.result === null ? 'refused' : 'extracted'} in ${l.ms.toFixed(0)} ms; ${stdout === '' ? 'nothing left' : `${(Number(stdout.split('\t')[0]) / 1024 ** 2).toFixed(0)} MiB written`}`]);
  printTable(rows);
} finally {
  await rm(work, { recursive: true, force: true });
}
